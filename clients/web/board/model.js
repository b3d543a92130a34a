// What the board knows: the active calls and the recently ended ones, each
// keyed by call id, so a replayed or repeated message never doubles a row.

import { CallState } from "@switchboard/client/gen/switchboard/v1/call_pb.js";
import { timeMs } from "./format.js";

/** How many ended calls the recent list keeps. */
export const RECENT_LIMIT = 50;

/** When a call ended, for ordering the recent list (newest first). */
function endedMs(call) {
  return timeMs(call.endedAt) ?? timeMs(call.updatedAt) ?? 0;
}

/** The calls on the board. Every change goes through `apply`. */
export class CallBoard {
  constructor() {
    /** @type {Map<string, import("@switchboard/client/gen/switchboard/v1/call_pb.js").Call>} */
    this.active = new Map();
    /** Ended calls by id; `recent()` orders them. */
    this.ended = new Map();
  }

  /**
   * Takes a call's latest state (from a snapshot, an update or a listing).
   * Returns what changed — `"new"`, `"changed"` (state or hold, worth
   * telling people), `"updated"` (other details), `"ended"` — or
   * `null` when the board already had this state or a later one (a replay
   * after a reconnect, a listing that raced the stream).
   */
  apply(call) {
    const id = call.callId;
    const known = this.active.get(id) ?? this.ended.get(id);
    if (known && known.callSequence >= call.callSequence) return null;
    if (call.state === CallState.ENDED) {
      this.active.delete(id);
      this.ended.set(id, call);
      this.trimRecent();
      return known && known.state === CallState.ENDED ? "updated" : "ended";
    }
    // An ended call is never reopened (DESIGN §3.5): a later state would be a bug upstream.
    if (known && known.state === CallState.ENDED) return null;
    this.active.set(id, call);
    if (!known) return "new";
    return known.state !== call.state || known.onHold !== call.onHold ? "changed" : "updated";
  }

  /** Forgets the active calls before a fresh snapshot replaces them; ended ones stay. */
  clearActive() {
    this.active.clear();
  }

  /** Active calls, longest-running first. */
  activeCalls() {
    const started = (c) => timeMs(c.startedAt) ?? timeMs(c.queuedAt) ?? timeMs(c.updatedAt) ?? 0;
    return [...this.active.values()].sort((a, b) => started(a) - started(b) || a.callId.localeCompare(b.callId));
  }

  /** Ended calls, most recently ended first, at most RECENT_LIMIT. */
  recent() {
    return [...this.ended.values()].sort((a, b) => endedMs(b) - endedMs(a) || a.callId.localeCompare(b.callId));
  }

  trimRecent() {
    if (this.ended.size <= RECENT_LIMIT) return;
    for (const call of this.recent().slice(RECENT_LIMIT)) this.ended.delete(call.callId);
  }
}
