// switchboard browser relay: forwards Salesforce Service Cloud Voice toolkit
// events and 8x8 agent-panel (Maestro "mashell") postMessage events from the
// agent's page to switchboard's Ingest over gRPC-Web, with the logged-in
// agent's id, one request id per event kept across retries, and a bounded
// in-order outbox that loses nothing while the server is briefly away.
// See clients/web/README.md.

import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { IngestService } from "@switchboard/client/gen/switchboard/v1/ingest_service_pb.js";
import { Vendor } from "@switchboard/client/gen/switchboard/v1/types_pb.js";
import { SALESFORCE_AURA_EVENTS, SALESFORCE_LWC_EVENTS, agentPanelPayload, salesforcePayload } from "./events.js";
import { newSessionId, requestId } from "./ids.js";
import { Outbox } from "./queue.js";

export { SALESFORCE_AURA_EVENTS, SALESFORCE_LWC_EVENTS };

const encoder = new TextEncoder();

/**
 * Creates a relay.
 *
 * Options:
 * - `baseUrl` (required): the switchboard server, e.g. `https://switchboard.example.com`.
 * - `agentId` (required): the logged-in agent or user (Salesforce user id, 8x8 agent id).
 * - `token`: a bearer token, or a function returning one (called per request).
 * - `tenantId`: the tenant, when the token does not imply one.
 * - `capacity` (default 1000): events that may wait; more are refused and reported.
 * - `retryDelayMs` (250) / `maxRetryDelayMs` (10000): retry backoff.
 * - `timeoutMs` (10000): deadline of one Ingest call.
 * - `onEvent({ kind, requestId, vendor, error, response, attempt })`: kinds
 *   `sent`, `retry`, `dropped` (rejected by the server), `refused` (queue full).
 */
export function createRelay(options) {
  const { baseUrl, agentId } = options;
  if (!baseUrl) throw new TypeError("createRelay: baseUrl is required");
  if (!agentId) throw new TypeError("createRelay: agentId is required");
  const capacity = options.capacity ?? 1000;
  const timeoutMs = options.timeoutMs ?? 10000;
  const onEvent = options.onEvent ?? (() => {});
  const token = typeof options.token === "function" ? options.token : () => options.token ?? "";
  const client = createClient(
    IngestService,
    createGrpcWebTransport({ baseUrl: baseUrl.replace(/\/$/, ""), fetch: options.fetch }),
  );
  const session = newSessionId();
  let dispatched = 0;
  const stats = { sent: 0, retries: 0, dropped: 0, refused: 0 };

  const outbox = new Outbox({
    capacity,
    retryDelayMs: options.retryDelayMs ?? 250,
    maxRetryDelayMs: options.maxRetryDelayMs ?? 10000,
    send: (item) => {
      const t = token();
      return client.ingest(
        {
          vendor: item.vendor,
          payload: encoder.encode(item.json),
          tenantId: options.tenantId ?? "",
          requestId: item.requestId,
          agentId,
          receivedAt: item.receivedAt,
        },
        { headers: t ? { authorization: `Bearer ${t}` } : {}, timeoutMs },
      );
    },
    onSent: (item, response) => {
      stats.sent += 1;
      onEvent({ kind: "sent", requestId: item.requestId, vendor: item.vendor, response });
    },
    onDrop: (item, error) => {
      stats.dropped += 1;
      onEvent({ kind: "dropped", requestId: item.requestId, vendor: item.vendor, error });
    },
    onRetry: (item, error, attempt) => {
      stats.retries += 1;
      onEvent({ kind: "retry", requestId: item.requestId, vendor: item.vendor, error, attempt });
    },
  });

  const enqueue = (vendor, tag, payload) => {
    if (!payload) return null;
    dispatched += 1;
    const now = Date.now();
    const item = {
      vendor,
      json: payload.json,
      requestId: requestId(tag, payload.hint, session, dispatched),
      receivedAt: { seconds: BigInt(Math.floor(now / 1000)), nanos: (now % 1000) * 1e6 },
    };
    if (!outbox.push(item)) {
      stats.refused += 1;
      onEvent({ kind: "refused", requestId: item.requestId, vendor });
      return null;
    }
    return item.requestId;
  };

  const cleanups = [];
  const online = () => outbox.retryNow();
  globalThis.addEventListener?.("online", online);
  cleanups.push(() => globalThis.removeEventListener?.("online", online));

  return {
    /** Relays one Salesforce toolkit event (LWC CustomEvent, Aura event or `{type, detail}`); returns its request id, or null when it was not a toolkit event or the queue is full. */
    salesforce(event, auraType) {
      return enqueue(Vendor.VENDOR_SALESFORCE_VOICE, "sfv", salesforcePayload(event, auraType));
    },

    /** Relays one 8x8 agent-panel event (a `MessageEvent`'s `data`, or the message event itself). */
    agentPanel(message) {
      const data = message && typeof message === "object" && "data" in message && "origin" in message ? message.data : message;
      return enqueue(Vendor.VENDOR_8X8_AGENT_PANEL, "8x8ap", agentPanelPayload(data));
    },

    /** Listens to every telephony event of an LWC `lightning-service-cloud-voice-toolkit-api` element. */
    watchToolkit(toolkitElement) {
      const listener = (event) => this.salesforce(event);
      for (const name of SALESFORCE_LWC_EVENTS) toolkitElement.addEventListener(name, listener);
      cleanups.push(() => {
        for (const name of SALESFORCE_LWC_EVENTS) toolkitElement.removeEventListener(name, listener);
      });
    },

    /** Listens through the Aura toolkit (`lightning:serviceCloudVoiceToolkitApi`'s `addTelephonyEventListener`). */
    watchAuraToolkit(toolkitApi) {
      for (const name of SALESFORCE_AURA_EVENTS) {
        const listener = (event) => this.salesforce(event, name);
        toolkitApi.addTelephonyEventListener(name, listener);
        cleanups.push(() => toolkitApi.removeTelephonyEventListener?.(name, listener));
      }
    },

    /**
     * Listens to the agent panel's `postMessage`s on `target` (default:
     * `window`), only from `origins` (e.g. `["https://cloud8.8x8.com"]`; the
     * panel's iframe origin, which 8x8 asks integrators to check).
     */
    watchAgentPanel({ origins, target = globalThis } = {}) {
      if (!Array.isArray(origins) || origins.length === 0) {
        throw new TypeError("watchAgentPanel: origins (the agent panel's origins) are required");
      }
      const listener = (event) => {
        if (origins.includes(event.origin)) this.agentPanel(event.data);
      };
      target.addEventListener("message", listener);
      cleanups.push(() => target.removeEventListener("message", listener));
    },

    /** Resolves when every event relayed so far has been answered by the server (or dropped as rejected). */
    flush() {
      return outbox.flushed();
    },

    /** Events waiting to be sent. */
    get pending() {
      return outbox.size;
    },

    /** Counters: sent, retries, dropped (rejected), refused (queue full). */
    get stats() {
      return { ...stats };
    },

    /** Stops listening and sending; returns the request ids still unsent. */
    close() {
      for (const cleanup of cleanups.splice(0)) cleanup();
      return outbox.close().map((item) => item.requestId);
    },
  };
}
