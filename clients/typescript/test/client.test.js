// The Node client against the real server: ingest, subscribe with a
// snapshot, resume with after_sequence, and read the BadRequest details of a
// rejected payload.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  CallState,
  CheckpointReason,
  Code,
  ConnectError,
  IngestOutcome,
  Vendor,
  createSwitchboardClient,
  fieldViolations,
} from "../src/index.js";
import { startServer } from "../testing/server.js";

const encoder = new TextEncoder();
const sf = (type, detail) => encoder.encode(JSON.stringify({ type, detail }));

let server;
let client;

before(async () => {
  server = await startServer("--store", "memory");
  client = createSwitchboardClient({ baseUrl: server.baseUrl });
});

after(async () => {
  await server?.stop();
});

/** Reads a stream until `stop(message)` says so; returns what it read. */
async function readUntil(stream, stop) {
  const seen = [];
  for await (const msg of stream) {
    seen.push(msg);
    if (stop(msg)) break;
  }
  return seen;
}

const isCheckpoint = (reason) => (m) => m.response.case === "checkpoint" && m.response.value.reason === reason;

test("ingests, subscribes with a snapshot and resumes with after_sequence", async () => {
  const started = await client.ingest.ingest({
    vendor: Vendor.VENDOR_SALESFORCE_VOICE,
    payload: sf("callstarted", { callId: "node-1", callType: "inbound", participant: "+1 (415) 555-0132" }),
    agentId: "agent-node",
  });
  assert.equal(started.outcome, IngestOutcome.ACCEPTED);
  assert.equal(started.events[0].callId, "sf:node-1");
  assert.equal(started.events[0].parties[0].e164, "+14155550132");

  // A snapshot of the active call, then live updates.
  const abort = new AbortController();
  const stream = client.calls.subscribe({ includeSnapshot: true }, { signal: abort.signal });
  const iterator = stream[Symbol.asyncIterator]();
  const first = (await iterator.next()).value;
  assert.equal(first.response.case, "snapshot");
  assert.equal(first.response.value.callId, "sf:node-1");
  const complete = (await iterator.next()).value;
  assert.equal(complete.response.value.reason, CheckpointReason.SNAPSHOT_COMPLETE);
  const cursor = complete.response.value.sequence;

  const connected = await client.ingest.ingest({ payload: sf("callconnected", { callId: "node-1" }) }); // vendor detected
  assert.equal(connected.vendor, Vendor.VENDOR_SALESFORCE_VOICE);
  let live = (await iterator.next()).value;
  while (live.response.case === "checkpoint") live = (await iterator.next()).value; // CAUGHT_UP, heartbeats
  assert.equal(live.response.case, "update");
  assert.equal(live.response.value.event.sequence, connected.events[0].sequence);
  assert.equal(live.response.value.call.state, CallState.CONNECTED);
  abort.abort();

  // While nobody listens the call ends; resuming after the cursor gives exactly the rest.
  const ended = await client.ingest.ingest({ payload: sf("callended", { callId: "node-1" }) });
  const resumed = await readUntil(
    client.calls.subscribe({ start: { case: "afterSequence", value: cursor } }),
    isCheckpoint(CheckpointReason.CAUGHT_UP),
  );
  const updates = resumed.filter((m) => m.response.case === "update").map((m) => m.response.value.event.sequence);
  assert.deepEqual(updates, [connected.events[0].sequence, ended.events[0].sequence]);

  const { call } = await client.calls.getCall({ callId: "sf:node-1" });
  assert.equal(call.state, CallState.ENDED);
  assert.deepEqual(call.agentIds, ["agent-node"]);

  const duplicate = await client.ingest.ingest({ payload: sf("callended", { callId: "node-1" }) });
  assert.equal(duplicate.outcome, IngestOutcome.DUPLICATE);
});

test("a rejected payload carries BadRequest field violations", async () => {
  await assert.rejects(
    client.ingest.ingest({ vendor: Vendor.VENDOR_SALESFORCE_VOICE, payload: sf("hold", { participant: "x" }) }),
    (err) => {
      assert.ok(err instanceof ConnectError);
      assert.equal(err.code, Code.InvalidArgument);
      const violations = fieldViolations(err);
      assert.ok(violations.some((v) => v.field === "detail.callId"), JSON.stringify(violations));
      return true;
    },
  );
});
