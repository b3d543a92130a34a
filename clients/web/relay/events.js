// Turns the browser events of the two browser-born vendors into Ingest
// payloads: the vendor JSON as the server's adapters read it
// (src/adapters/salesforce.rs, src/adapters/agent_panel.rs).

/** The Service Cloud Voice toolkit's LWC telephony events (API 67.0), the names `addEventListener` takes. */
export const SALESFORCE_LWC_EVENTS = [
  "callstarted", "callconnected", "callended", "hold", "resume", "mute", "unmute",
  "participantadded", "participantremoved", "conference", "swap", "pauserecording",
  "resumerecording", "transcript", "wrapupended", "flagraise", "flaglower", "note", "audiostats",
];

/** The Aura toolkit's names for the same events (`CALL_STARTED`, …), for `addTelephonyEventListener`. */
export const SALESFORCE_AURA_EVENTS = [
  "CALL_STARTED", "CALL_CONNECTED", "CALL_ENDED", "HOLD", "RESUME", "MUTE", "UNMUTE",
  "PARTICIPANT_ADDED", "PARTICIPANT_REMOVED", "CONFERENCE", "SWAP", "PAUSE_RECORDING",
  "RESUME_RECORDING", "TRANSCRIPT", "WRAP_UP_ENDED", "FLAG_RAISE", "FLAG_LOWER", "NOTE", "AUDIO_STATS",
];

/**
 * A Salesforce toolkit event as `{type, detail}` JSON. Takes an LWC
 * `CustomEvent` (`event.type`, `event.detail`), an Aura event (`getParams()`
 * / `getName()`), or a plain `{type, detail}` object. Returns null for
 * anything without a type and a detail object.
 */
export function salesforcePayload(event, auraType) {
  if (!event || typeof event !== "object") return null;
  let type = event.type;
  let detail = event.detail;
  if (typeof event.getParams === "function") {
    const params = event.getParams() ?? {};
    type = params.type ?? auraType ?? (typeof event.getName === "function" ? event.getName() : undefined);
    detail = params.detail ?? params;
  }
  type = type ?? auraType;
  if (typeof type !== "string" || type === "" || !detail || typeof detail !== "object") return null;
  const callId = typeof detail.callId === "string" ? detail.callId : "";
  const id = typeof detail.id === "string" ? detail.id : "";
  return { json: JSON.stringify({ type, detail }), hint: [type, id || callId] };
}

/**
 * An 8x8 agent-panel (Maestro "mashell") `postMessage` payload as JSON. Takes
 * the message's `data` (a structured-cloned object, or a JSON string).
 * Returns null for messages that are not mashell events (other frames on the
 * page post too).
 */
export function agentPanelPayload(data) {
  let value = data;
  if (typeof data === "string") {
    try {
      value = JSON.parse(data);
    } catch {
      return null;
    }
  }
  if (!value || typeof value !== "object" || typeof value.eventType !== "string") return null;
  if (!value.eventType.startsWith("mashell-")) return null;
  const d = value.data && typeof value.data === "object" ? value.data : {};
  const eventId = typeof d.eventId === "string" ? d.eventId : "";
  return {
    json: typeof data === "string" ? data : JSON.stringify(value),
    hint: [typeof d.eventName === "string" ? d.eventName : value.eventType, eventId],
  };
}
