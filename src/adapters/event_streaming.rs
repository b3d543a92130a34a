//! 8x8 Event Streaming: Contact Center events over Apache Pulsar's WebSocket
//! interface (seed 002, vendors.md §3).
//!
//! Two shapes arrive, and both are accepted:
//! * the Pulsar frame `{messageId, payload, properties, publishTime,
//!   redeliveryCount}` whose `payload` is base64 of UTF-8 JSON;
//! * the decoded event, one top-level key naming the event class:
//!   `{"Interaction": {...}}`, `{"AgentStatusChange": {...}}`,
//!   `{"AgentProvChange": {...}}`, the legacy SAPI heartbeat `{"ClientCheck": {...}}`.
//!
//! Control frames on the same socket (`{"type":"isEndOfTopic"}`) and the
//! heartbeat are acknowledged as IGNORED.
//!
//! Quirks this adapter absorbs:
//! * **The lifecycle comes from the event name, never from `callState`**: 8x8's
//!   own pages give InteractionAssigned three different call states. `callState`
//!   is kept as an attribute.
//! * **Identity** (DESIGN §4.1): the Pulsar `messageId` when there is a frame
//!   (a redelivery, `redeliveryCount > 0`, repeats it); for a decoded event,
//!   `InteractionDeleted` + `interactionGUID` (one-shot), else
//!   (`interactionGUID`, `event`, `msgInfo.instanceId`, `msgInfo.sequenceId`)
//!   when `msgInfo` has a sequence, else a hash of the event. A re-offered
//!   interaction sends InteractionAssigned again for the same GUID: that is a
//!   new offer (the state machine sees the new agent), not a duplicate.
//! * **Ordering**: `msgInfo.sequenceId` within `msgInfo.instanceId` becomes
//!   the draft's `VendorOrder`, so a late event never moves the call back
//!   (8x8: "handle out-of-order events"). `msgInfo` is often `{}`: no order.
//! * **Time** (vendors.md §3.6): `interactionEventTS` (s) ▸ `msgInfo.timestamp`
//!   (ms) ▸ the frame's `publishTime` (ISO). `eventTS` is the *queue entry*
//!   time (`otim`), not the event time, and stays an attribute. The two
//!   fallbacks are cut to whole seconds: 8x8's event clock ticks in seconds,
//!   and an event whose time came from milliseconds must not look *older*
//!   than a sibling stamped in the same second (the state machine treats an
//!   older vendor time as stale). The exact values stay in the attributes.
//! * **Mixed types**: `phoneNum` and `callingName` may be JSON numbers
//!   (`5515557212`, national, no `+`), booleans may be `"true"`,
//!   `inboundChannelid` may be `"N/A"`, `dispositionCode` a number or a
//!   string, `agentPhone` an extension number (kept without E.164).
//! * **Transfers** create a new `interactionGUID`; `attachedData`
//!   `originalInteractionGuid` links it to the first leg's conversation.
//! * **Non-voice media** (email, chat, SMS: `resourceType` 1–3) is ignored;
//!   video (`resourceType` 4) is phone media.
//!
//! Canonical fields every Interaction row fills (the MAPPING's `extra`
//! column names what a row adds):
//! call id `8x8es:<interactionGUID>`; conversation `8x8es:<originalInteractionGuid>`;
//! direction `direction` ▸ attachedData `queueDirection` (`in`/`out`, anything
//! else is INVALID_ARGUMENT) ▸ `isOutboundCall: true`; the customer from
//! attachedData `remotePhoneNum` ▸ `phoneNum` with `remoteCallingName` ▸
//! `callingName` (a numeric "name" is a number); `agentId` → agent id and an
//! AGENT party with `agentPhone`; `queueId` → queue; media from
//! `resourceType`/`mediaType`; facts `callAnsweredTime`/`callHangupTime` (ms)
//! and `callDurationSec` ▸ `callDuration`; `dispositionCode`, `agentNotes`;
//! every attachedData item and every other body field → attributes; queue
//! name attachedData `tenantSkillName` ▸ `channelName`; wrap-up codes
//! attachedData `tclSelectedItems` (`"listId|itemId,..."`, one code per
//! item); the previous leg `originalInteractionGuid` (when it is another
//! interaction).
//!
//! **More than two people** (DESIGN §3.6). 8x8 keeps the customer's
//! interaction when a call is transferred or conferenced: the consult line is
//! a new interaction linked by `originalInteractionGuid`, and the second
//! agent joins the *customer's* interaction (InteractionParticipantChange).
//! Per-agent events (InteractionPostProcess, InteractionEndPostProcess,
//! InteractionDeassigned) are that agent's step (`party_scope`): while another agent is on the interaction
//! they change that agent's party only; the last agent's post-process is the
//! call's wrap-up as before. The documented transfer reads:
//!
//! ```text
//! line 1 (customer)  Accepted(Grace) ─ TransferRequest(Grace) ─ PostProcess(Grace) ─ ParticipantChange(Ian) ─ EndPostProcess/Deassigned(Grace) ─ … ─ Deleted
//!                    call CONNECTED ───────────────────────────────────────────────────────────────────────────────────────── ENDED
//!                    Grace: CONNECTED ─ WRAP_UP ─ LEFT           Ian: CONNECTED (CALL_TRANSFERRED Grace → Ian)
//! line 2 (consult)   Created(original=line 1) ─ Assigned/Accepted(Ian) ─ … (previous_call_id = line 1)
//! ```

mod fields;
mod frame;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{Map, Value};

use self::fields::{AgentStatusFields, Attached, InteractionFields, MediaKind, MsgInfo};
use self::frame::Frame;
use super::lenient::{opt_bool, opt_epoch_millis, opt_text};
use super::{Adapter, AdapterError, NormalizeContext, PhoneNormalizer, from_value, join_path};
use crate::domain::identity::canonical_json_hash;
use crate::domain::{
    AgentState, CallOutcome, CallRef, Detail, Direction, Ended, EventDraft, EventType, Identity, Normalized, Party,
    PartyRole, QueueResult, Recording, RecordingState, Transfer, TransferKind, Vendor, VendorOrder, WrapUpCode,
};

/// What a row does with the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// One canonical event of this type.
    Emit(EventType),
    /// The boolean `status` picks the event: `true` → first, `false` → second.
    Toggle(EventType, EventType),
    /// `status` `"pause"` → RECORDING_PAUSED, `"resume"` → RECORDING_RESUMED.
    RecordingStatus,
    /// Understood, produces no event (outcome IGNORED), for this reason.
    Ignore(&'static str),
}

/// How a decoded event's identity is formed (a frame always uses `messageId`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Identify {
    /// `msgInfo` sequence key, else a content hash.
    Sequenced,
    /// One per interaction: `event` + `interactionGUID`.
    OneShot,
}

/// What a row reads beyond the common Interaction fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Extra {
    /// Nothing more.
    None,
    /// An agent event (no call): `agentId`, `newState`/`newSubState`,
    /// `newSubStateReason` ▸ `newReasonCodeUser`, `statusEventTS`.
    AgentStatus,
    /// `rejectReason` → attribute `rejectReasonText`.
    Rejected,
    /// The agent (`agentId`, `agentPhone`) is the participant who left.
    AgentLeft,
    /// A recording detail with the state the event leaves the recording in.
    Recording,
    /// `hangupInitiator`, `callHangupReason` → outcome and reason,
    /// `dispositionCode`, duration.
    Ended,
    /// The agent (`agentId`, `agentPhone`) is the participant who joined.
    AgentJoined,
    /// A `transfer` detail from the requesting agent; the target is not a
    /// documented field (only attributes keep what 8x8 sends).
    TransferRequest,
    /// A `transfer` detail of kind CONFERENCE from the agent.
    Conference,
    /// The queue gave up on the call: the visit's result is TIMEOUT.
    QueueTimeout,
}

/// One row of the mapping table.
struct Row {
    /// The vendor event name (`event`, or the class key when a body has none).
    name: &'static str,
    /// What it becomes.
    action: Action,
    /// How a decoded event of this type is identified.
    id: Identify,
    /// Extra fields read.
    extra: Extra,
    /// The event is the agent's own step (`agentId` is the party scope).
    agent_step: bool,
}

const fn row(name: &'static str, action: Action, extra: Extra) -> Row {
    Row { name, action, id: Identify::Sequenced, extra, agent_step: false }
}

/// A row whose event is one agent's step, not the interaction's: while
/// another agent is on the interaction it changes that agent's party only.
const fn agent_step(name: &'static str, action: Action, extra: Extra) -> Row {
    Row { name, action, id: Identify::Sequenced, extra, agent_step: true }
}

use Action::{Emit, Ignore, Toggle};
use EventType as E;

const SKILL: &str = "agent skill/provisioning change: not a call event";
const PROXY: &str = "media proxy change: 8x8 media infrastructure, not a step of the call lifecycle";

/// MAPPING: every event type of 8x8's Event Reference (seed 002), plus the
/// legacy spelling, the SAPI heartbeat and the Pulsar control frame →
/// canonical event, identity and the fields read. Unknown names are IGNORED.
const MAPPING: &[Row] = &[
    // --- Agent events ---
    row("AgentStatusChange", Emit(E::AgentStatusChanged), Extra::AgentStatus),
    row("AgentProvChange", Ignore(SKILL), Extra::None),
    row("AgentSkillCreated", Ignore(SKILL), Extra::None),
    row("AgentSkillChanged", Ignore(SKILL), Extra::None),
    // --- Interaction events ---
    row("InteractionCreated", Emit(E::CallStarted), Extra::None),
    row("InteractionQueued", Emit(E::CallQueued), Extra::None),
    // The offer to an agent; repeated for the same GUID after a rejection.
    row("InteractionAssigned", Emit(E::CallOffered), Extra::None),
    row("InteractionAccepted", Emit(E::CallConnected), Extra::None),
    // An outbound call answered by the customer.
    row("InteractionCustomerAccepted", Emit(E::CallConnected), Extra::None),
    // Back to the queue; the interaction may be re-offered.
    row("InteractionRejected", Emit(E::OfferRejected), Extra::Rejected),
    // Out of the queue; why is not said (an abandon if the call then ends
    // unanswered, the state machine decides).
    row("InteractionUnqueued", Emit(E::CallDequeued), Extra::None),
    // The queue's time limit passed: a TIMEOUT visit, and a call that then
    // ends unanswered is MISSED, never ABANDONED (the caller did not hang up).
    row("InteractionQueueTimeout", Emit(E::CallDequeued), Extra::QueueTimeout),
    row("LineHoldStatus", Toggle(E::CallHeld, E::CallResumed), Extra::None),
    // No documented sample: read like LineHoldStatus (`status` true = muted).
    row("LineMuteStatus", Toggle(E::CallMuted, E::CallUnmuted), Extra::None),
    row("InteractionRecordingStarted", Emit(E::RecordingStarted), Extra::Recording),
    row("RecordingStatus", Action::RecordingStatus, Extra::Recording),
    // No documented field carries the recording's URL: state only.
    row("InteractionRecordingReady", Emit(E::RecordingReady), Extra::Recording),
    // The conversation is over *for this agent* (8x8 sends it per agent: in
    // the documented transfer the first agent post-processes while the
    // customer talks to the second). The agent's wrap-up; the call's only
    // when no other agent is on it (then the state machine sets ended_at).
    agent_step("InteractionPostProcess", Emit(E::WrapUpStarted), Extra::None),
    agent_step("InteractionEndPostProcess", Emit(E::WrapUpEnded), Extra::None),
    // The agent leaves the interaction; InteractionDeleted ends it.
    agent_step("InteractionDeassigned", Emit(E::ParticipantLeft), Extra::AgentLeft),
    agent_step("InteractionDeAssigned", Emit(E::ParticipantLeft), Extra::AgentLeft),
    row("InteractionTransferRequest", Emit(E::TransferRequested), Extra::TransferRequest),
    // 8x8 documents it for "conference, supervisor join, etc.": the agent in
    // `agentId` joins. Only after a TransferRequest on this interaction does
    // the state machine read it as the transfer completing (CALL_TRANSFERRED
    // from the requesting agent to this one); read as a transfer always, a
    // supervisor join would hand the call away from an agent still on it.
    row("InteractionParticipantChange", Emit(E::ParticipantJoined), Extra::AgentJoined),
    // Someone was removed from the interaction, but whether `agentId` is the
    // removed party or the host who removed them is not documented. Marking
    // the host LEFT could later close the call while she is still on it, so
    // the event names the agent (agent id, party) without saying who left:
    // no participant detail, no party's state changes, never the call's end.
    row("InteractionParticipantRemovedByHost", Emit(E::ParticipantLeft), Extra::None),
    // Only a request: the lines are not joined yet (InteractionJoined is).
    row("InteractionJoinLinesRequest", Emit(E::CallUpdated), Extra::None),
    row("InteractionJoined", Emit(E::ConferenceStarted), Extra::Conference),
    // The agent is back on the customer line (after a consult): off hold.
    row("InteractionReconnect", Emit(E::CallResumed), Extra::None),
    row("InteractionChanged", Emit(E::CallUpdated), Extra::None),
    // The interaction is over. The seed also says "call leg left conference";
    // as the interaction's own end it ends the call (its GUID is the leg).
    Row {
        name: "InteractionDeleted",
        action: Emit(E::CallEnded),
        id: Identify::OneShot,
        extra: Extra::Ended,
        agent_step: false,
    },
    // --- Digital channel events ---
    row("GuestChatEnd", Ignore("chat session ended: chat is not call media"), Extra::None),
    // --- Media/proxy events ---
    row("MediaProxyAdded", Ignore(PROXY), Extra::None),
    row("MediaProxyRemoved", Ignore(PROXY), Extra::None),
    // --- Transport ---
    row("ClientCheck", Ignore("legacy Streaming API (SAPI) heartbeat"), Extra::None),
    row(frame::CONTROL_END_OF_TOPIC, Ignore("Pulsar control frame, not an event"), Extra::None),
];

/// Event classes (top-level keys of a decoded event) 8x8 documents.
const CLASSES: &[&str] = &["Interaction", "AgentStatusChange", "AgentProvChange", "ClientCheck"];

/// The mapping row of a vendor event name: exact, else ignoring case (8x8's
/// own docs vary the casing, `InteractionDeAssigned`).
fn find_row(name: &str) -> Option<&'static Row> {
    MAPPING.iter().find(|r| r.name == name).or_else(|| MAPPING.iter().find(|r| r.name.eq_ignore_ascii_case(name)))
}

/// The class key and body of a decoded event: an object with one key whose
/// value is an object.
fn class_of(value: &Value) -> Option<(&str, &Value, &Map<String, Value>)> {
    let Value::Object(o) = value else { return None };
    let mut entries = o.iter();
    match (entries.next(), entries.next()) {
        (Some((k, body @ Value::Object(fields))), None) => Some((k.as_str(), body, fields)),
        _ => None,
    }
}

/// The ignore reason of a MAPPING row.
fn ignore_reason(name: &str) -> &'static str {
    match find_row(name).map(|r| r.action) {
        Some(Ignore(why)) => why,
        _ => "not an event",
    }
}

/// A decoded event whose class key 8x8 documents (what detection claims).
fn is_decoded_event(value: &Value) -> bool {
    class_of(value).is_some_and(|(k, _, _)| CLASSES.contains(&k) || find_row(k).is_some())
}

const SHAPE: &str = "8x8 Event Streaming: Pulsar frame {messageId, payload (base64 JSON), publishTime, ...}, \
                     decoded event {\"Interaction\"|\"AgentStatusChange\"|\"AgentProvChange\": {...}} \
                     or control frame {\"type\":\"isEndOfTopic\"}";

/// The 8x8 Event Streaming adapter.
pub struct EventStreaming;

impl Adapter for EventStreaming {
    fn vendor(&self) -> Vendor {
        Vendor::EventStreaming8x8
    }

    fn shape(&self) -> &'static str {
        SHAPE
    }

    fn event_types(&self) -> Vec<&'static str> {
        MAPPING.iter().map(|r| r.name).collect()
    }

    /// A frame needs both `messageId` and `payload` as strings; a decoded
    /// event a single documented class key; a control frame its `type`. None
    /// of these fits another vendor's envelope (`{type, detail}`,
    /// `{notificationType, notification}`, `{eventType, status, data}`).
    fn detect(&self, payload: &Value, _: Option<&str>) -> bool {
        let Value::Object(o) = payload else { return false };
        let frame = o.get("messageId").is_some_and(Value::is_string) && o.get("payload").is_some_and(Value::is_string);
        frame || (frame::is_control(o) && !o.contains_key("detail")) || is_decoded_event(payload)
    }

    fn normalize(&self, payload: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, AdapterError> {
        let Value::Object(o) = payload else {
            return Err(AdapterError::field("payload", format!("expected a JSON object: {SHAPE}")));
        };
        if frame::is_control(o) {
            let why = ignore_reason(frame::CONTROL_END_OF_TOPIC);
            let identity = Identity::ContentHash(canonical_json_hash(payload));
            return Ok(Normalized::ignored(Vendor::EventStreaming8x8, frame::CONTROL_END_OF_TOPIC, why, identity));
        }
        if frame::looks_like_frame(o) {
            let frame = frame::decode(payload)?;
            return normalize_event(&frame.event, "payload", Some(&frame), ctx.phone);
        }
        normalize_event(payload, "", None, ctx.phone)
    }
}

/// Normalizes a decoded event (`prefix` is its JSON path: `payload` inside
/// a frame).
fn normalize_event(
    value: &Value,
    prefix: &str,
    frame: Option<&Frame>,
    phone: &PhoneNormalizer,
) -> Result<Normalized, AdapterError> {
    let vendor = Vendor::EventStreaming8x8;
    let Some((class, body_value, body)) = class_of(value) else {
        let what = if frame.is_some() { "the decoded payload is not an 8x8 event" } else { "not an 8x8 event" };
        let field = if prefix.is_empty() { "payload" } else { prefix };
        return Err(AdapterError::field(field, format!("{what}: expected one class key; {SHAPE}")));
    };
    let path = join_path(prefix, class);
    let name = match body.get("event") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        None | Some(Value::Null) if class != "Interaction" => class.to_string(),
        None | Some(Value::Null) => return Err(AdapterError::field(join_path(&path, "event"), "required")),
        Some(_) => return Err(AdapterError::field(join_path(&path, "event"), "must be a non-empty string")),
    };
    let msg = fields::msg_info(body, &path)?;
    let row = find_row(&name);
    let key = ["interactionGUID", "agentId"].iter().find_map(|k| body.get(*k).and_then(Value::as_str)).unwrap_or("");
    let identify = row.map_or(Identify::Sequenced, |r| r.id);
    let identity = identity(frame, &name, key, identify, &msg, value);
    // A framed event is also known by its inner identity, so the same event
    // read from two overlapping topics (two messageIds) is one event.
    let aliases: Vec<Identity> = match frame {
        Some(_) => Some(identity_of_event(&name, key, identify, &msg)).flatten().into_iter().collect(),
        None => Vec::new(),
    };
    let Some(row) = row else {
        let why = format!("unknown 8x8 Event Streaming event {name:?} (class {class})");
        return Ok(Normalized::ignored(vendor, name, why, identity));
    };

    let mut attributes = BTreeMap::new();
    let mut draft = match row.action {
        Ignore(why) => return Ok(Normalized::ignored(vendor, name, why, identity)),
        _ if row.extra == Extra::AgentStatus => {
            fields::body_attributes(body, &mut attributes);
            agent_status(body_value, &path, &msg, frame)?
        }
        action => {
            let f: InteractionFields = from_value(body_value, &path)?;
            let media = fields::media(f.resource_type, f.media_type.as_deref(), f.guid.as_deref());
            if let MediaKind::NonVoice(kind) = &media {
                return Ok(Normalized::ignored(vendor, name, format!("non-voice media: {kind}"), identity));
            }
            let event_type = event_type(action, body, &path)?;
            let attached = Attached::parse(body, &path)?;
            attached.flatten_into(&mut attributes);
            fields::body_attributes(body, &mut attributes);
            let mut d = interaction(event_type, row.extra, &f, &attached, &path, &msg, frame, phone)?;
            if row.agent_step
                && let Some(a) = d.parties.iter().find(|p| p.role == Some(PartyRole::Agent))
            {
                d.party_scope = Some(a.clone());
            }
            if let MediaKind::Phone(m) = media {
                d.media = Some(m);
            }
            d
        }
    };
    if let Some(frame) = frame {
        attributes.extend(frame.attributes.clone());
    }
    attributes.append(&mut draft.attributes);
    draft.attributes = attributes;
    draft.order =
        msg.sequence_id.map(|position| VendorOrder { scope: msg.instance_id.clone().unwrap_or_default(), position });
    Ok(Normalized { vendor, vendor_event_type: name, identity, aliases, events: vec![draft], ignored: None })
}

/// The canonical type of a non-ignored row; `status` picks it for toggles.
fn event_type(action: Action, body: &Map<String, Value>, path: &str) -> Result<EventType, AdapterError> {
    let status = body.get("status").unwrap_or(&Value::Null);
    // Named only when it is wrong: most rows never read it.
    let field = || join_path(path, "status");
    match action {
        Emit(t) => Ok(t),
        Toggle(on, off) => match opt_bool(status).map_err(|e| AdapterError::field(field(), e.to_string()))? {
            Some(true) => Ok(on),
            Some(false) => Ok(off),
            None => Err(AdapterError::field(field(), "required: true or false")),
        },
        Action::RecordingStatus => match opt_text(status).ok().flatten().map(|s| s.to_ascii_lowercase()).as_deref() {
            Some("pause") => Ok(E::RecordingPaused),
            Some("resume") => Ok(E::RecordingResumed),
            _ => Err(AdapterError::field(field(), format!("expected \"pause\" or \"resume\", got {status}"))),
        },
        Ignore(why) => Err(AdapterError::field(path, why)),
    }
}

/// `rejectReason` 0/1/2 → unknown / timeout (the agent did not answer in
/// time) / agent_reject.
fn reject_reason(code: u64) -> Option<&'static str> {
    match code {
        0 => Some("unknown"),
        1 => Some("timeout"),
        2 => Some("agent_reject"),
        _ => None,
    }
}

/// The dedup identity (DESIGN §4.1; see the module comment).
fn identity(frame: Option<&Frame>, name: &str, key: &str, id: Identify, msg: &MsgInfo, event: &Value) -> Identity {
    if let Some(f) = frame {
        return Identity::VendorId(["8x8es:msg:", &f.message_id].concat());
    }
    identity_of_event(name, key, id, msg).unwrap_or_else(|| Identity::ContentHash(canonical_json_hash(event)))
}

/// The event's own natural key, when it has one: one-shot events by their
/// interaction, others by producer instance and sequence.
fn identity_of_event(name: &str, key: &str, id: Identify, msg: &MsgInfo) -> Option<Identity> {
    match (id, msg.sequence_id) {
        (Identify::OneShot, _) if !key.is_empty() => Some(Identity::Natural(["8x8es:", name, ":", key].concat())),
        (_, Some(seq)) => {
            let instance = msg.instance_id.as_deref().unwrap_or_default();
            Some(Identity::Natural(format!("8x8es:{name}:{key}:{instance}:{seq}")))
        }
        _ => None,
    }
}

/// The event time: the event's own seconds ▸ `msgInfo.timestamp` ▸ the
/// frame's `publishTime`, the fallbacks cut to the second (module comment).
fn event_time(own: Option<DateTime<Utc>>, msg: &MsgInfo, frame: Option<&Frame>) -> Option<DateTime<Utc>> {
    let second = |t: DateTime<Utc>| t.duration_trunc(TimeDelta::seconds(1)).unwrap_or(t);
    own.or(msg.timestamp.map(second)).or(frame.and_then(|f| f.publish_time).map(second))
}

/// An AGENT party for an agent id and extension (no E.164: `40375` is an
/// extension, not a phone number).
fn agent_party(agent_id: &str, extension: Option<&str>) -> Party {
    Party {
        role: Some(PartyRole::Agent),
        agent_id: agent_id.to_string(),
        phone_number: extension.unwrap_or_default().to_string(),
        ..Party::default()
    }
}

/// `AgentStatusChange` → an agent event (no call).
fn agent_status(body: &Value, path: &str, msg: &MsgInfo, frame: Option<&Frame>) -> Result<EventDraft, AdapterError> {
    let a: AgentStatusFields = from_value(body, path)?;
    let agent = a.agent_id.clone().ok_or_else(|| AdapterError::field(join_path(path, "agentId"), "required"))?;
    let state = a.new_state.clone().ok_or_else(|| AdapterError::field(join_path(path, "newState"), "required"))?;
    let state = match fields::meaningful(&a.new_sub_state) {
        Some(sub) => format!("{state}/{sub}"),
        None => state,
    };
    let reason = fields::meaningful(&a.new_sub_state_reason)
        .or(fields::meaningful(&a.new_reason_code_user))
        .unwrap_or_default()
        .to_string();
    let agent_state = agent_state_of(&state);
    let mut d = EventDraft::new(E::AgentStatusChanged, None);
    d.occurred_at = event_time(a.status_event_ts, msg, frame);
    d.parties.push(agent_party(&agent, None));
    d.agent_id = agent;
    d.detail = Some(Detail::AgentStatus { state, reason, agent_state });
    Ok(d)
}

/// `newState` (with `/newSubState`) → agent state. 8x8 documents only
/// `newState: 5` = AVAILABLE (the lifecycle page; the login-state and
/// presence tables number something else), so every other code is
/// UNSPECIFIED and only the raw `state` says it.
fn agent_state_of(state: &str) -> Option<AgentState> {
    match state.split('/').next().map(str::trim) {
        Some("5") => Some(AgentState::Available),
        _ => None,
    }
}

/// `tclSelectedItems` `"listId|itemId,..."` → one code per item, as given.
fn wrap_up_codes(raw: &str) -> Vec<WrapUpCode> {
    raw.split([',', ';'])
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| WrapUpCode { code: item.to_string(), label: String::new() })
        .collect()
}

/// An Interaction event → one draft for call `8x8es:<interactionGUID>`.
#[allow(clippy::too_many_arguments)]
fn interaction(
    event_type: EventType,
    extra: Extra,
    f: &InteractionFields,
    attached: &Attached<'_>,
    path: &str,
    msg: &MsgInfo,
    frame: Option<&Frame>,
    phone: &PhoneNormalizer,
) -> Result<EventDraft, AdapterError> {
    let prefix = Vendor::EventStreaming8x8.call_id_prefix();
    let guid = f.guid.as_deref().ok_or_else(|| AdapterError::field(join_path(path, "interactionGUID"), "required"))?;
    let mut d = EventDraft::new(event_type, Some(CallRef::Id([prefix, ":", guid].concat())));
    d.occurred_at = event_time(f.event_ts, msg, frame);
    d.direction = direction(f, attached, path)?;
    if let Some(original) = attached.text("originalInteractionGuid")? {
        d.conversation_id = Some([prefix, ":", &original].concat());
        if original != guid {
            d.facts.previous_call_id = Some([prefix, ":", &original].concat());
        }
    }
    d.facts.queue_name = match attached.text("tenantSkillName")? {
        Some(name) => Some(name),
        None => attached.text("channelName")?,
    };
    if let Some(items) = attached.text("tclSelectedItems")? {
        d.facts.wrap_up_codes = wrap_up_codes(&items);
    }
    if let Some(customer) = customer(attached, phone)? {
        d.parties.push(customer);
    }
    let agent = f.agent_id.as_deref().map(|a| agent_party(a, f.agent_phone.as_deref()));
    if let Some(a) = &agent {
        d.parties.push(a.clone());
        d.agent_id = a.agent_id.clone();
    }
    d.queue_id = f.queue_id.clone().unwrap_or_default();

    d.facts.answered_at = attached.read("callAnsweredTime", opt_epoch_millis)?;
    d.facts.ended_at = attached.read("callHangupTime", opt_epoch_millis)?;
    d.facts.duration = fields::duration(attached)?;
    d.facts.disposition = f.disposition_code.clone();
    d.facts.notes = f.agent_notes.iter().cloned().collect();

    extra_detail(&mut d, extra, f, agent);
    Ok(d)
}

/// What the row's [`Extra`] adds to an interaction draft: the detail of a
/// join, departure, recording, end, transfer or conference, a rejection's
/// reason, a queue timeout's result.
fn extra_detail(d: &mut EventDraft, extra: Extra, f: &InteractionFields, agent: Option<Party>) {
    let event_type = d.event_type;
    match extra {
        Extra::AgentLeft => d.detail = agent.map(Detail::Participant),
        Extra::Recording => {
            let state = match event_type {
                E::RecordingPaused => RecordingState::Paused,
                E::RecordingReady => RecordingState::Ready,
                _ => RecordingState::Active,
            };
            d.detail = Some(Detail::Recording(Recording { state: Some(state), url: String::new() }));
        }
        Extra::Ended => {
            let reason = f.call_hangup_reason.clone();
            d.facts.outcome = reason.as_deref().and_then(outcome_of);
            d.facts.hangup_initiator = f.hangup_initiator.as_deref().and_then(initiator_of);
            d.facts.end_reason = reason.clone();
            d.detail = Some(Detail::Ended(Ended {
                outcome: d.facts.outcome,
                hangup_initiator: d.facts.hangup_initiator,
                reason: reason.unwrap_or_default(),
                duration: d.facts.duration,
                talk_duration: None,
                disposition: d.facts.disposition.clone().unwrap_or_default(),
            }));
        }
        Extra::Rejected => {
            if let Some(text) = f.reject_reason.and_then(reject_reason) {
                d.attributes.insert("rejectReasonText".into(), text.into());
            }
        }
        Extra::AgentJoined => d.detail = agent.map(Detail::Participant),
        Extra::TransferRequest => {
            d.detail = Some(Detail::Transfer(Box::new(Transfer { from: agent, ..Transfer::default() })));
        }
        Extra::Conference => {
            d.detail = Some(Detail::Transfer(Box::new(Transfer {
                kind: Some(TransferKind::Conference),
                from: agent,
                ..Transfer::default()
            })));
        }
        Extra::QueueTimeout => d.facts.queue_result = Some(QueueResult::Timeout),
        Extra::None | Extra::AgentStatus => {}
    }
}

/// `direction` ▸ attachedData `queueDirection` ▸ `isOutboundCall: true`.
/// Both direction fields are checked when present: a value other than
/// `in`/`out` is an error naming the field.
fn direction(f: &InteractionFields, attached: &Attached<'_>, path: &str) -> Result<Option<Direction>, AdapterError> {
    let top = f.direction.as_deref().map(|d| fields::direction(d, &join_path(path, "direction"))).transpose()?;
    let queue = match attached.text_at("queueDirection")? {
        Some((d, field)) => Some(fields::direction(&d, &field)?),
        None => None,
    };
    Ok(top.or(queue).or((f.is_outbound_call == Some(true)).then_some(Direction::Outbound)))
}

/// The customer: number from `remotePhoneNum` (E.164 string) ▸ `phoneNum`
/// (a JSON number, maybe national); name from `remoteCallingName` ▸
/// `callingName` when it is a name (8x8 puts numbers there too; a numeric
/// `callingName` is the number when no number field is present).
fn customer(attached: &Attached<'_>, phone: &PhoneNormalizer) -> Result<Option<Party>, AdapterError> {
    let number = match attached.text("remotePhoneNum")? {
        Some(n) => Some(n),
        None => attached.text("phoneNum")?,
    };
    let mut name = None;
    let mut numeric_name = None;
    for key in ["remoteCallingName", "callingName"] {
        if let Some(n) = attached.text(key)? {
            if n.chars().any(char::is_alphabetic) {
                name.get_or_insert(n);
            } else {
                numeric_name.get_or_insert(n);
            }
        }
    }
    let Some(raw) = number.or(numeric_name) else {
        return Ok(name.map(|n| Party { role: Some(PartyRole::Customer), display_name: n, ..Party::default() }));
    };
    let mut party = phone.party(&raw, PartyRole::Customer);
    if let Some(n) = name {
        party.display_name = n;
    }
    Ok(Some(party))
}

/// `callHangupReason` → outcome; `CEC_DISCONNECT_NORMAL`, `CEC_NONE` and
/// unknown codes leave it to the state machine (COMPLETED when answered,
/// ABANDONED when queued and never answered).
fn outcome_of(reason: &str) -> Option<CallOutcome> {
    match reason.trim().to_ascii_uppercase().as_str() {
        "CEC_DISCONNECT_BUSY" => Some(CallOutcome::Busy),
        "CEC_DISCONNECT_BADADDRESS" => Some(CallOutcome::BadAddress),
        "CEC_DISCONNECT_NOANSWER" => Some(CallOutcome::NoAnswer),
        "CEC_DISCONNECT_CANCELLED" => Some(CallOutcome::Cancelled),
        "CEC_DISCONNECT_REJECTED" => Some(CallOutcome::Rejected),
        "CEC_DISCONNECT_FAILED" => Some(CallOutcome::Failed),
        "CEC_DISCONNECT_BLOCKED" => Some(CallOutcome::Blocked),
        _ => None,
    }
}

/// `hangupInitiator` → party role; other values stay only in the attributes.
fn initiator_of(s: &str) -> Option<PartyRole> {
    match s.trim().to_ascii_uppercase().as_str() {
        "AGENT" => Some(PartyRole::Agent),
        "CUSTOMER" => Some(PartyRole::Customer),
        "SYSTEM" => Some(PartyRole::System),
        _ => None,
    }
}
