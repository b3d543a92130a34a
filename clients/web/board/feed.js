// The board's subscription: one gRPC-Web `Subscribe` stream, resumed after
// any break (a server restart, a network blip) from the last sequence seen,
// so no update is lost and none is applied twice.

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema } from "@switchboard/client/gen/google/rpc/error_details_pb.js";
import {
  CallService,
  CallStateFilter,
  CheckpointReason,
} from "@switchboard/client/gen/switchboard/v1/call_service_pb.js";

/** Reconnect delays: doubling from the first to the last, with jitter. */
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;

/** How many recently ended calls the board loads when it first connects. */
const RECENT_ON_START = 25;

/**
 * Follows the call stream and hands every call state to `onCall`.
 *
 * Callbacks: `onCall(call)`; `onReset({ ended })` before a fresh snapshot
 * replaces the active calls (`ended`: the log itself was reset, so forget the
 * ended ones too); `onStatus(state, detail)` with state one of `connecting`,
 * `live`, `retrying`, `unauthenticated`, `stopped`.
 */
export class CallFeed {
  constructor({ baseUrl, token, onCall, onReset, onStatus }) {
    this.transport = createGrpcWebTransport({ baseUrl });
    this.client = createClient(CallService, this.transport);
    this.token = token;
    this.onCall = onCall;
    this.onReset = onReset;
    this.onStatus = onStatus;
    /** The largest sequence fully seen (update or checkpoint), as a bigint; resume point. */
    this.cursor = undefined;
    this.failures = 0;
    /** Set when the server's log restarted below our cursor: the ended calls we hold are of another log. */
    this.logWasReset = false;
    this.abort = new AbortController();
    /** Aborts the current stream only (a new token). */
    this.stream = null;
    this.restart = false;
    this.tokenChanged = null;
  }

  /** Uses a new bearer token from the next request on (empty: none). */
  setToken(token) {
    this.token = token;
    this.tokenChanged?.();
    // A stream opened with the old token starts over with the new one.
    this.restart = true;
    this.stream?.abort();
  }

  /** Ends the stream for good. */
  stop() {
    this.abort.abort();
    this.tokenChanged?.();
  }

  headers() {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  /** Runs until `stop()`: subscribe, follow, and on any break resume. */
  async run() {
    let loadedRecent = false;
    while (!this.abort.signal.aborted) {
      try {
        this.onStatus("connecting");
        if (!loadedRecent) {
          await this.loadRecent();
          loadedRecent = true;
        }
        this.restart = false;
        await this.follow();
        // The server ended the stream (it is shutting down): resume at once.
        this.failures = 0;
      } catch (err) {
        if (this.abort.signal.aborted) break;
        if (this.restart) {
          this.restart = false;
          continue;
        }
        const e = ConnectError.from(err);
        if (e.code === Code.Unauthenticated || e.code === Code.PermissionDenied) {
          this.onStatus("unauthenticated", e.rawMessage);
          await new Promise((resolve) => (this.tokenChanged = resolve));
          this.tokenChanged = null;
          continue;
        }
        if (e.code === Code.OutOfRange) {
          // The cursor is older than retention (CURSOR_EXPIRED) or beyond the
          // log (CURSOR_AHEAD: a store that was reset): start over from a
          // snapshot, as the contract says.
          this.logWasReset = e.findDetails(ErrorInfoSchema).some((info) => info.reason === "CURSOR_AHEAD");
          this.cursor = undefined;
          continue;
        }
        this.failures += 1;
        const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (this.failures - 1));
        this.onStatus("retrying", `${e.code === Code.Unavailable ? "server unreachable" : e.rawMessage}; retrying`);
        await sleep(delay / 2 + Math.random() * (delay / 2), this.abort.signal);
      }
    }
    this.onStatus("stopped");
  }

  /** Fills the recent list with the last ended calls (the stream only carries what happens from now on). */
  async loadRecent() {
    const page = await this.client.listCalls(
      { filter: { state: CallStateFilter.ENDED }, pageSize: RECENT_ON_START },
      { headers: this.headers(), signal: this.abort.signal },
    );
    for (const call of page.calls) this.onCall(call);
  }

  /** One subscription, from a snapshot the first time and from the cursor after. */
  async follow() {
    const request =
      this.cursor === undefined
        ? { includeSnapshot: true }
        : { start: { case: "afterSequence", value: this.cursor } };
    if (this.cursor === undefined) {
      this.onReset({ ended: this.logWasReset });
      this.logWasReset = false;
    }
    this.stream = new AbortController();
    const signal = AbortSignal.any([this.abort.signal, this.stream.signal]);
    const stream = this.client.subscribe(request, { headers: this.headers(), signal });
    for await (const msg of stream) {
      const r = msg.response;
      if (r.case === "snapshot") {
        this.onCall(r.value);
      } else if (r.case === "update") {
        if (r.value.call) this.onCall(r.value.call);
        this.cursor = r.value.event?.sequence ?? this.cursor;
      } else if (r.case === "checkpoint") {
        this.cursor = r.value.sequence;
        if (r.value.reason !== CheckpointReason.SHUTDOWN) {
          this.failures = 0;
          this.onStatus("live");
        }
      }
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
