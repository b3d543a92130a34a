// Draws the board: one keyed table row per call (rows are updated in place,
// never rebuilt, so nothing jumps under a reader), ticking wait and talk
// times, and the filters.

import { CallState } from "@switchboard/client/gen/switchboard/v1/call_pb.js";
import {
  agentNames,
  customerNumber,
  durationMs,
  formatClock,
  formatDuration,
  outcomeLabel,
  queueLabel,
  stateLabel,
  timeMs,
  vendorLabel,
} from "./format.js";

const ACTIVE_COLUMNS = ["state", "customer", "agent", "queue", "vendor", "wait", "talk", "hold"];
const RECENT_COLUMNS = ["ended", "customer", "agent", "queue", "vendor", "outcome", "duration"];

/** Time waited before an answer: queue entry (else start) to answer, or to now while unanswered. */
export function waitMs(call, now) {
  const from = timeMs(call.queuedAt) ?? timeMs(call.startedAt);
  if (from === undefined) return undefined;
  const to = timeMs(call.answeredAt) ?? timeMs(call.endedAt) ?? now;
  return to - from;
}

/** Time talked: from the answer to the end, or to now while the call goes on. */
export function talkMs(call, now) {
  if (call.talkDuration && call.state === CallState.ENDED) return durationMs(call.talkDuration);
  const from = timeMs(call.answeredAt);
  if (from === undefined) return undefined;
  return (timeMs(call.endedAt) ?? now) - from;
}

/** A call's whole duration for the recent list. */
function totalMs(call) {
  if (call.duration) return durationMs(call.duration);
  const from = timeMs(call.startedAt) ?? timeMs(call.queuedAt);
  const to = timeMs(call.endedAt);
  return from !== undefined && to !== undefined ? to - from : undefined;
}

/** Whether a call passes the filters (vendor exact; queue and agent by case-insensitive substring). */
export function matches(call, filter) {
  if (filter.vendor !== "" && String(call.vendor) !== filter.vendor) return false;
  const has = (values, needle) => needle === "" || values.some((v) => v.toLowerCase().includes(needle));
  if (!has([call.queueId, call.queueName], filter.queue)) return false;
  if (!has([...call.agentIds, ...agentNames(call)], filter.agent)) return false;
  return true;
}

/** One table of calls, rows keyed by call id. */
export class CallTable {
  constructor(table, columns, empty, count) {
    this.body = table.tBodies[0];
    this.headers = [...table.tHead.rows[0].cells].map((th) => th.textContent);
    this.columns = columns;
    this.empty = empty;
    this.count = count;
    /** @type {Map<string, HTMLTableRowElement>} */
    this.rows = new Map();
  }

  /** Shows exactly `calls`, in that order, filling each row with `fill(cells, call)`. */
  show(calls, fill) {
    const keep = new Set(calls.map((c) => c.callId));
    for (const [id, tr] of this.rows) {
      if (!keep.has(id)) {
        tr.remove();
        this.rows.delete(id);
      }
    }
    let previous = null;
    for (const call of calls) {
      let tr = this.rows.get(call.callId);
      if (!tr) {
        tr = this.newRow(call.callId);
        this.rows.set(call.callId, tr);
      }
      fill(this.cells(tr), call);
      const at = previous ? previous.nextSibling : this.body.firstChild;
      if (at !== tr) this.body.insertBefore(tr, at);
      previous = tr;
    }
    this.empty.hidden = calls.length > 0;
    this.count.textContent = String(calls.length);
  }

  newRow(callId) {
    const tr = document.createElement("tr");
    tr.dataset.callId = callId;
    this.columns.forEach((name, i) => {
      const td = document.createElement("td");
      td.className = name;
      td.dataset.column = name;
      td.dataset.label = this.headers[i];
      tr.append(td);
    });
    return tr;
  }

  cells(tr) {
    return Object.fromEntries(this.columns.map((name, i) => [name, tr.cells[i]]));
  }
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Fills an active call's row. */
export function fillActive(cells, call, now) {
  const tr = cells.state.parentElement;
  const state = stateLabel(call.state);
  tr.dataset.state = state;
  tr.dataset.vendor = String(call.vendor);
  setText(cells.state, state);
  setText(cells.customer, customerNumber(call) || "unknown");
  setText(cells.agent, agentNames(call).join(", ") || "—");
  setText(cells.queue, queueLabel(call) || "—");
  setText(cells.vendor, vendorLabel(call.vendor));
  tickActive(cells, call, now);
  const hold = call.onHold ? "on hold" : call.holdCount > 0 ? `held ${call.holdCount}×` : "—";
  setText(cells.hold, hold);
  cells.hold.classList.toggle("hold-on", call.onHold);
}

/** Refreshes only the ticking cells of an active call. */
export function tickActive(cells, call, now) {
  const wait = waitMs(call, now);
  const talk = talkMs(call, now);
  setText(cells.wait, wait === undefined ? "—" : formatDuration(wait));
  setText(cells.talk, talk === undefined ? "—" : formatDuration(talk));
}

/** Fills an ended call's row. */
export function fillRecent(cells, call) {
  const tr = cells.ended.parentElement;
  tr.dataset.outcome = outcomeLabel(call.outcome);
  tr.dataset.vendor = String(call.vendor);
  setText(cells.ended, formatClock(timeMs(call.endedAt) ?? timeMs(call.updatedAt)));
  setText(cells.customer, customerNumber(call) || "unknown");
  setText(cells.agent, agentNames(call).join(", ") || "—");
  setText(cells.queue, queueLabel(call) || "—");
  setText(cells.vendor, vendorLabel(call.vendor));
  setText(cells.outcome, outcomeLabel(call.outcome));
  const total = totalMs(call);
  setText(cells.duration, total === undefined ? "—" : formatDuration(total));
}
