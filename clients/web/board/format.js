// How the board writes numbers, durations and enum values for people.

import { timestampMs } from "@bufbuild/protobuf/wkt";
import { CallOutcome, CallState } from "@switchboard/client/gen/switchboard/v1/call_pb.js";
import { PartyRole, Vendor } from "@switchboard/client/gen/switchboard/v1/types_pb.js";

/** Country calling codes of two digits (ITU-T E.164 assignment); 1 and 7 are one digit, all others three. */
const TWO_DIGIT_CC =
  /^(20|27|30|31|32|33|34|36|39|40|41|43|44|45|46|47|48|49|51|52|53|54|55|56|57|58|60|61|62|63|64|65|66|81|82|84|86|90|91|92|93|94|95|98)/;

/**
 * An E.164 number grouped for reading: `+1 (415) 555-0132` for the North
 * American plan, `+44 207 946 0018` (blocks of 3 and 4 from the end) elsewhere. Anything that is
 * not E.164 is returned as given (a Quick Connect name, an extension).
 */
export function formatPhone(e164, asGiven = "") {
  if (!/^\+\d{6,15}$/.test(e164 || "")) return asGiven || e164 || "";
  const digits = e164.slice(1);
  if (digits.startsWith("1") && digits.length === 11) {
    return `+1 (${digits.slice(1, 4)}) ${digits.slice(4, 7)}-${digits.slice(7)}`;
  }
  const ccLength = digits.startsWith("7") ? 1 : TWO_DIGIT_CC.test(digits) ? 2 : 3;
  const cc = digits.slice(0, ccLength);
  const national = digits.slice(ccLength);
  // Blocks counted from the end (…-3-4), the way most national plans read.
  const n = national.length;
  const sizes = n <= 4 ? [n] : n <= 8 ? [n - 4, 4] : n <= 11 ? [n - 7, 3, 4] : [n - 8, 4, 4];
  const groups = [];
  let at = 0;
  for (const size of sizes) {
    groups.push(national.slice(at, at + size));
    at += size;
  }
  return `+${cc} ${groups.join(" ")}`;
}

/** `m:ss`, or `h:mm:ss` from an hour on; never negative (clocks of vendors and browsers differ). */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** Milliseconds of a `google.protobuf.Duration`, 0 when unset. */
export function durationMs(d) {
  return d ? Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6) : 0;
}

/** Milliseconds since the epoch of a `google.protobuf.Timestamp`, or undefined. */
export function timeMs(ts) {
  return ts ? timestampMs(ts) : undefined;
}

/** A wall-clock time for the recent list, in the reader's locale. */
export function formatClock(ms) {
  return ms === undefined ? "" : new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

const VENDOR_LABELS = new Map([
  [Vendor.VENDOR_8X8_AGENT_PANEL, "8x8 agent panel"],
  [Vendor.VENDOR_8X8_EVENT_STREAMING, "8x8 Event Streaming"],
  [Vendor.VENDOR_XELION, "Xelion"],
  [Vendor.VENDOR_SALESFORCE_VOICE, "Salesforce Voice"],
]);

/** The vendors a filter offers, in a stable order. */
export const VENDORS = [...VENDOR_LABELS.entries()];

/** A vendor's name for people. */
export function vendorLabel(v) {
  return VENDOR_LABELS.get(v) ?? "unknown vendor";
}

/** `CALL_STATE_ON_HOLD` → `on hold`. */
export function stateLabel(s) {
  return (CallState[s] ?? "unknown").toLowerCase().replaceAll("_", " ");
}

/** `CALL_OUTCOME_NO_ANSWER` → `no answer`; unset → `ended`. */
export function outcomeLabel(o) {
  return o === CallOutcome.UNSPECIFIED ? "ended" : (CallOutcome[o] ?? "ended").toLowerCase().replaceAll("_", " ");
}

/** The customer's number as the board shows it (the first customer party, else the first party with a number). */
export function customerNumber(call) {
  const party =
    call.parties.find((p) => p.role === PartyRole.CUSTOMER && (p.e164 || p.phoneNumber)) ??
    call.parties.find((p) => p.e164 || p.phoneNumber);
  return party ? formatPhone(party.e164, party.phoneNumber) : "";
}

/** The agents on a call: display names where the vendor gave them, else their ids. */
export function agentNames(call) {
  const named = new Map();
  for (const p of call.parties) {
    if (p.role === PartyRole.AGENT && (p.agentId || p.displayName)) named.set(p.agentId || p.displayName, p.displayName || p.agentId);
  }
  for (const id of call.agentIds) if (!named.has(id)) named.set(id, id);
  return [...named.values()];
}

/** The queue as people know it: its name, else its id. */
export function queueLabel(call) {
  return call.queueName || call.queueId || "";
}
