//! Xelion PBX WebSocket notifications (`{notificationType, notification}`).
//!
//! Xelion is a cloud PBX, not a contact center: there are users (with object
//! ids, "oids") and phone numbers, but no agents, queues or directions. What
//! this adapter has to get right:
//!
//! * **Shapes.** A notification arrives as `{notificationType, notification:
//!   {CallEvent fields}}` (the envelope is inferred from public client code,
//!   not documented). A bridge may also forward the bare `CallEvent` object
//!   and name its type in the request's `vendor_event_type`; a bare CallEvent
//!   without it is rejected naming `vendor_event_type`, because the object
//!   alone does not say whether the call started, connected or ended. JSON
//!   paths in errors follow the shape (`notification.callId` or `callId`).
//!   When both the envelope and `vendor_event_type` name a type and they
//!   differ, the request is rejected rather than guessing which one is right.
//! * **Two identities.** `callId` is one call (leg); `callerFlowId` /
//!   `calleeFlowId` "follow the flow of the call … the same during the whole
//!   call flow (transfer, fall back)". The call id is `xelion:<callId>`
//!   (callIds are opaque and vary in format, `SIP/wes-000001d8`,
//!   `caller_186ba647df1ef222`; kept verbatim) and the conversation id is
//!   `xelion:flow:<callerFlowId>` (else the callee flow id), so the C→B leg
//!   after an attended transfer (a new callId) shares the C→A leg's
//!   conversation. Both flow ids stay in the attributes.
//! * **The documented duplicate.** In an attended transfer Xelion sends the
//!   hang-up of the consult call A→B twice with the same callId ("it is needed
//!   to compare the callId"), so the one-shot events are identified by their
//!   natural key `xelion:<notificationType>:<callId>` and the repeat comes
//!   back DUPLICATE.
//! * **Times.** `date` (UTC `yyyy-MM-dd HH:mm:ss`) is when the call was
//!   initiated, on every event of the call: it feeds the call's `started_at`,
//!   never the event time. There is no event timestamp, so `occurred_at` is
//!   left to the bridge's or the server's receive time. `duration` is a
//!   string of seconds, only filled on `callHungUpEvent`; whether it counts
//!   from initiation or from answer is not documented, so it is kept as the
//!   vendor duration and no end time is computed from it.
//! * **Channels are not calls.** `channelHungUpEvent` is one ringing channel
//!   of line hunting or group ringing going away while the call goes on;
//!   only the caller *or* the callee side is filled. It becomes
//!   PARTICIPANT_LEFT for that side and never infers a direction, sets the
//!   conversation from a callee flow, or overwrites the call's caller/callee
//!   attributes (its attributes are prefixed `channel.`).
//! * **Direction** is not a CallEvent field. It is inferred conservatively
//!   from which sides are PBX users (have a `callerUser` / `calleeUser`
//!   oid): both → INTERNAL, only the caller → OUTBOUND, only the callee →
//!   INBOUND, neither → unknown. A later event may still fill an unknown
//!   direction (the call's direction is set once). Parties follow the same
//!   oids: a user is an AGENT, a non-user caller the CUSTOMER, and a
//!   non-user callee the CUSTOMER of a user's outbound call or, when neither
//!   side is a user (a hunt group, an IVR), a THIRD_PARTY.
//! * **Hunt groups and transferred legs** (DESIGN §3.6). `missedCallEvent`
//!   is its callee's step: while another user is on the call (a group member
//!   answered), it is the callee's PARTICIPANT_LEFT, not the call's end. A leg
//!   first seen at its `callHungUpEvent` with a `duration` above zero (a
//!   transferred leg that arrives only as a hang-up) ends COMPLETED, not
//!   MISSED: nothing says it rang unanswered.
//! * **Unconfirmed parts.** `initiation` values are undocumented and pass
//!   through verbatim as an attribute. The field lists of
//!   `callTransferredEvent` / `twinTransferredEvent` were not retrievable, so
//!   they become CALL_TRANSFERRED only when they carry a `callId` (no other
//!   field is interpreted) and are otherwise IGNORED with a reason.
//!
//! Every other notification on the socket (tenant status, wallboard,
//! presence, do-not-disturb, voicemail, chat, `test` echoes, active-channel
//! sync, anything unknown) is acknowledged as IGNORED, never an error.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::lenient::{flatten, opt_text, opt_xelion_date, parse_duration};
use super::{Adapter, AdapterError, NormalizeContext, from_value, join_path};
use crate::domain::identity::canonical_json_hash;
use crate::domain::{
    CallRef, Detail, Direction, Ended, EventDraft, EventType, Identity, Normalized, Party, PartyRole, Vendor,
};

/// How a call-event row's identity (dedup key) is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Identify {
    /// One-shot per call: `xelion:<notificationType>:<callId>`.
    Natural,
    /// Repeatable: a hash of the notification's canonical JSON.
    Hash,
}

/// Which CallEvent fields a call-event row reads besides `callId`, `date`
/// and the flow ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fields {
    /// Both sides → parties (caller, callee) and the inferred direction.
    Call,
    /// As `Call`, plus `duration` → call duration and the Ended detail.
    HungUp,
    /// The one filled side → the participant who left; no direction.
    Channel,
}

/// What a row does with a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// A CallEvent notification: one canonical event.
    Call(EventType, Identify, Fields),
    /// A transfer notification with an unconfirmed field list:
    /// CALL_TRANSFERRED (content-hash identity) when it carries a `callId`,
    /// else IGNORED.
    Transfer,
    /// Acknowledged and ignored, with this reason.
    Ignore(&'static str),
}

/// One row of the mapping table.
struct Row {
    /// The `notificationType` (matched case-insensitively).
    name: &'static str,
    /// What it becomes.
    action: Action,
}

/// MAPPING: every Xelion notification type in vendors.md §2.3 (and the
/// non-call ones named there) → canonical event type, identity, and the
/// CallEvent fields that feed it. Common to every call row: `callId` →
/// call id `xelion:<callId>`; `callerFlowId` (else `calleeFlowId`) →
/// conversation id `xelion:flow:<id>`; `date` → the call's `started_at`;
/// `callerPhoneNumber`/`callerUser` and `calleePhoneNumber`/`calleeUser` →
/// parties (roles in [`roles`]) and, except for channels, the direction;
/// every other field (oids, sync ids, call-log oids, phone-line oid, flow
/// ids, `initiation`) → attributes, verbatim. Natural keys are per callId:
/// a second `callConnectedEvent` or `missedCallEvent` for the same callId
/// is a duplicate, like the documented repeated hang-up.
const MAPPING: &[Row] = &[
    Row { name: "newCallEvent", action: Action::Call(EventType::CallStarted, Identify::Natural, Fields::Call) },
    Row { name: "callConnectedEvent", action: Action::Call(EventType::CallConnected, Identify::Natural, Fields::Call) },
    Row { name: "callHungUpEvent", action: Action::Call(EventType::CallEnded, Identify::Natural, Fields::HungUp) },
    // A user-facing "you missed a call" notification, about its callee. It is
    // the callee's step (`party_scope`): in a hunt group another member may
    // have answered, and then it is that member's miss (PARTICIPANT_LEFT of
    // their party), never the end of the answered call. Its natural key adds
    // `calleeUser`, so two members' misses are two misses.
    Row { name: "missedCallEvent", action: Action::Call(EventType::CallMissed, Identify::Natural, Fields::Call) },
    Row {
        name: "channelHungUpEvent",
        action: Action::Call(EventType::ParticipantLeft, Identify::Hash, Fields::Channel),
    },
    Row { name: "callTransferredEvent", action: Action::Transfer },
    Row { name: "twinTransferredEvent", action: Action::Transfer },
    Row {
        name: "activeChannelEvent",
        action: Action::Ignore(
            "active-channel list sync (insert/remove with a version counter) is a separate model; \
             call state comes from the CallEvent notifications",
        ),
    },
    Row { name: "tenantStatusEvent", action: Action::Ignore("tenant status, not a call event") },
    Row { name: "wallboardEvent", action: Action::Ignore("wallboard statistics, not a call event") },
    Row { name: "presenceListEvent", action: Action::Ignore("user presence, not a call event") },
    Row { name: "doNotDisturbEvent", action: Action::Ignore("a user's do-not-disturb setting, not a call event") },
    Row { name: "newVoicemailEvent", action: Action::Ignore("a new voicemail message, not a call event") },
    Row { name: "newExternalChatEvent", action: Action::Ignore("chat, not a call event") },
    Row { name: "chatTypingEvent", action: Action::Ignore("chat, not a call event") },
    Row { name: "test", action: Action::Ignore("`test` echo (keepalive or probe), not a call event") },
];

/// Fields that feed canonical fields and are therefore not repeated in the
/// attributes.
const CONSUMED: &[&str] = &["callId", "date", "duration", "callerPhoneNumber", "calleePhoneNumber"];

/// Attribute-key prefix of `channelHungUpEvent`, whose one-sided fields
/// describe a channel, not the call.
const CHANNEL_PREFIX: &str = "channel.";

/// The CallEvent fields the adapter interprets (the rest go to attributes).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallEventFields {
    #[serde(default, deserialize_with = "opt_text")]
    call_id: Option<String>,
    #[serde(default, deserialize_with = "opt_xelion_date")]
    date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_text")]
    caller_flow_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    callee_flow_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    caller_user: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    caller_phone_number: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    callee_user: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    callee_phone_number: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    duration: Option<String>,
}

/// One side of a call as a CallEvent describes it.
struct Side<'a> {
    number: Option<&'a str>,
    user: Option<&'a str>,
}

impl Side<'_> {
    fn is_user(&self) -> bool {
        self.user.is_some()
    }

    /// The side as a party: a PBX user is an AGENT, anyone else `other`.
    /// `None` when the event says nothing about this side.
    fn party(&self, ctx: &NormalizeContext<'_>, other: PartyRole) -> Option<Party> {
        if self.number.is_none() && self.user.is_none() {
            return None;
        }
        let role = if self.is_user() { PartyRole::Agent } else { other };
        let mut party = match self.number {
            Some(n) => ctx.phone.party(n, role),
            None => Party { role: Some(role), ..Party::default() },
        };
        party.user_id = self.user.unwrap_or_default().to_string();
        Some(party)
    }
}

/// The Xelion adapter.
pub struct Xelion;

fn row(name: &str) -> Option<&'static Row> {
    let name = name.trim();
    MAPPING.iter().find(|r| r.name.eq_ignore_ascii_case(name))
}

/// The direction implied by which sides are PBX users (see the module doc).
fn direction(caller_is_user: bool, callee_is_user: bool) -> Option<Direction> {
    match (caller_is_user, callee_is_user) {
        (true, true) => Some(Direction::Internal),
        (true, false) => Some(Direction::Outbound),
        (false, true) => Some(Direction::Inbound),
        (false, false) => None,
    }
}

/// The roles of the caller and the callee when they are *not* PBX users (a
/// user is always an AGENT). A non-user caller is the customer. A non-user
/// callee is the customer when a user called out; when neither side is a
/// user (a call to a hunt group, an IVR, or forwarded to an outside number)
/// the caller is the customer and the callee is what they reached, a
/// THIRD_PARTY, so a call never shows two customers.
fn roles(caller_is_user: bool) -> (PartyRole, PartyRole) {
    (PartyRole::Customer, if caller_is_user { PartyRole::Customer } else { PartyRole::ThirdParty })
}

/// A bare CallEvent: an object with a `callId` and a flow id.
fn is_bare_call_event(obj: &Map<String, Value>) -> bool {
    let scalar = |v: &Value| v.is_string() || v.is_number();
    obj.get("callId").is_some_and(scalar)
        && (obj.get("callerFlowId").is_some_and(scalar) || obj.get("calleeFlowId").is_some_and(scalar))
}

/// The text of a scalar field, `None` when absent, null, blank or not a
/// scalar.
fn scalar_text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        v @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => Some(flatten(v)).filter(|s| !s.trim().is_empty()),
        _ => None,
    }
}

/// Every field except `skip` as a flat string attribute, verbatim (objects
/// and arrays as JSON text; nulls and empty strings left out).
fn attributes(obj: &Map<String, Value>, skip: &[&str], prefix: &str) -> BTreeMap<String, String> {
    obj.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| ([prefix, k].concat(), flatten(v)))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// The conversation id of a flow id.
fn flow_conversation(flow: Option<&str>) -> Option<String> {
    flow.map(|f| [Vendor::Xelion.call_id_prefix(), ":flow:", f].concat())
}

/// Where a payload's notification comes from.
enum Shape<'a> {
    /// The envelope, or a bare object typed by the request's
    /// `vendor_event_type`; `prefix` is the JSON path of the notification.
    Notification { name: String, notification: Option<&'a Value>, prefix: &'static str },
    /// A websocket message with a `messageType` (a `test` echo).
    Control(&'a str),
}

/// Tells the envelope, a bare CallEvent and a control message apart, and
/// rejects what is none of them (see the module doc).
fn shape_of<'a>(
    obj: &'a Map<String, Value>,
    payload: &'a Value,
    hint: Option<&str>,
) -> Result<Shape<'a>, AdapterError> {
    let hint = hint.map(str::trim).filter(|t| !t.is_empty());
    match obj.get("notificationType") {
        Some(Value::String(t)) if !t.trim().is_empty() => {
            if let Some(h) = hint
                && !h.eq_ignore_ascii_case(t.trim())
            {
                return Err(AdapterError::field(
                    "vendor_event_type",
                    format!("names {h:?} but the payload's notificationType is {t:?}"),
                ));
            }
            Ok(Shape::Notification {
                name: t.trim().to_string(),
                notification: obj.get("notification"),
                prefix: "notification",
            })
        }
        Some(_) => Err(AdapterError::field("notificationType", "must be a non-empty string")),
        None => {
            if let Some(m) = obj.get("messageType").and_then(Value::as_str) {
                return Ok(Shape::Control(m));
            }
            match hint {
                Some(t) => Ok(Shape::Notification { name: t.to_string(), notification: Some(payload), prefix: "" }),
                None if obj.contains_key("callId") => Err(AdapterError::field(
                    "vendor_event_type",
                    "required for a bare CallEvent: name its notification type (newCallEvent, \
                     callConnectedEvent, callHungUpEvent, missedCallEvent, channelHungUpEvent)",
                )),
                None => Err(AdapterError::field(
                    "notificationType",
                    "required: expected {notificationType, notification}, or a bare CallEvent with the type in \
                     vendor_event_type",
                )),
            }
        }
    }
}

impl Adapter for Xelion {
    fn vendor(&self) -> Vendor {
        Vendor::Xelion
    }

    fn shape(&self) -> &'static str {
        "Xelion {notificationType, notification} or a bare CallEvent {callId, callerFlowId|calleeFlowId} \
         with vendor_event_type"
    }

    fn event_types(&self) -> Vec<&'static str> {
        MAPPING.iter().map(|r| r.name).collect()
    }

    /// The envelope (`notificationType` is a string: no other vendor uses the
    /// key), a bare CallEvent (`callId` plus a flow id, whatever the request's
    /// `vendor_event_type`, so that a missing type is reported as such rather
    /// than as an undetectable payload), or a Xelion `test` echo.
    fn detect(&self, payload: &Value, _vendor_event_type: Option<&str>) -> bool {
        let Some(obj) = payload.as_object() else { return false };
        obj.get("notificationType").is_some_and(Value::is_string)
            || is_bare_call_event(obj)
            || obj.get("messageType").and_then(Value::as_str).is_some_and(|m| m.eq_ignore_ascii_case("test"))
    }

    fn normalize(&self, payload: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, AdapterError> {
        let vendor = Vendor::Xelion;
        let Some(obj) = payload.as_object() else {
            return Err(AdapterError::field(
                "payload",
                "expected a JSON object: {notificationType, notification} or a bare CallEvent",
            ));
        };
        let hash = || Identity::ContentHash(canonical_json_hash(payload));
        let (name, notification, prefix) = match shape_of(obj, payload, ctx.vendor_event_type)? {
            Shape::Notification { name, notification, prefix } => (name, notification, prefix),
            Shape::Control(m) => {
                let why = match row(m) {
                    Some(Row { action: Action::Ignore(why), .. }) => (*why).to_string(),
                    _ => format!("Xelion websocket message {m:?} is a request or control message, not a call event"),
                };
                return Ok(Normalized::ignored(vendor, row(m).map_or(m, |r| r.name), why, hash()));
            }
        };

        let Some(row) = row(&name) else {
            let why = if name.to_ascii_lowercase().contains("chat") {
                format!("Xelion chat notification {name:?}, not a call event")
            } else {
                format!("unknown Xelion notification type {name:?}, not a call event")
            };
            return Ok(Normalized::ignored(vendor, name, why, hash()));
        };
        // Envelope and bare deliveries of one notification hash alike.
        let content_hash = || {
            Identity::ContentHash(canonical_json_hash(
                &json!({"notificationType": row.name, "notification": notification.cloned().unwrap_or(Value::Null)}),
            ))
        };
        match row.action {
            Action::Ignore(why) => Ok(Normalized::ignored(vendor, row.name, why, content_hash())),
            Action::Transfer => Ok(transfer(row, notification.and_then(Value::as_object), content_hash())),
            Action::Call(canonical, id, fields) => {
                let (value, n) = match notification {
                    Some(v @ Value::Object(n)) => (v, n),
                    Some(_) => return Err(AdapterError::field("notification", "must be an object")),
                    None => return Err(AdapterError::field("notification", "required")),
                };
                let f: CallEventFields = from_value(value, prefix)?;
                let call_id =
                    f.call_id.clone().ok_or_else(|| AdapterError::field(join_path(prefix, "callId"), "required"))?;
                let identity = match id {
                    Identify::Natural => {
                        let member = match (canonical, f.callee_user.as_deref()) {
                            (EventType::CallMissed, Some(user)) => [":", user].concat(),
                            _ => String::new(),
                        };
                        Identity::Natural([vendor.call_id_prefix(), ":", row.name, ":", &call_id, &member].concat())
                    }
                    Identify::Hash => content_hash(),
                };
                let draft = call_event(canonical, fields, &call_id, &f, n, prefix, ctx)?;
                Ok(Normalized::single(vendor, row.name, identity, draft))
            }
        }
    }
}

/// One CallEvent notification → its canonical draft.
fn call_event(
    canonical: EventType,
    fields: Fields,
    call_id: &str,
    f: &CallEventFields,
    raw: &Map<String, Value>,
    prefix: &str,
    ctx: &NormalizeContext<'_>,
) -> Result<EventDraft, AdapterError> {
    let call = [Vendor::Xelion.call_id_prefix(), ":", call_id].concat();
    let mut draft = EventDraft::new(canonical, Some(CallRef::Id(call)));
    draft.facts.started_at = f.date;
    let caller = Side { number: f.caller_phone_number.as_deref(), user: f.caller_user.as_deref() };
    let callee = Side { number: f.callee_phone_number.as_deref(), user: f.callee_user.as_deref() };
    match fields {
        Fields::Call | Fields::HungUp => {
            let (caller_role, callee_role) = roles(caller.is_user());
            draft.conversation_id = flow_conversation(f.caller_flow_id.as_deref().or(f.callee_flow_id.as_deref()));
            draft.direction = direction(caller.is_user(), callee.is_user());
            draft.attributes = attributes(raw, CONSUMED, "");
            let mut parties: Vec<Party> =
                [caller.party(ctx, caller_role), callee.party(ctx, callee_role)].into_iter().flatten().collect();
            // Customer first (the Call contract), then the users in caller, callee order.
            parties.sort_by_key(|p| p.role != Some(PartyRole::Customer));
            draft.parties = parties;
            if canonical == EventType::CallMissed {
                draft.party_scope = callee.party(ctx, callee_role);
            }
            if fields == Fields::HungUp {
                let duration = match &f.duration {
                    Some(d) => parse_duration(d).map_err(|e| AdapterError::field(join_path(prefix, "duration"), e))?,
                    None => None,
                };
                draft.facts.duration = duration;
                draft.detail = Some(Detail::Ended(Ended { duration, ..Ended::default() }));
            }
        }
        Fields::Channel => {
            // Only the side whose channel went away is filled; a callee flow
            // id here is that channel's, not necessarily the call's.
            draft.conversation_id = flow_conversation(f.caller_flow_id.as_deref());
            draft.attributes = attributes(raw, CONSUMED, CHANNEL_PREFIX);
            // A non-user channel is a forwarding target (mobile twin, external
            // number in a hunt group), not the customer: the customer's own
            // hang-up ends the call with callHungUpEvent.
            let left = callee.party(ctx, PartyRole::ThirdParty).or_else(|| caller.party(ctx, PartyRole::ThirdParty));
            draft.detail = left.map(Detail::Participant);
        }
    }
    Ok(draft)
}

/// `callTransferredEvent` / `twinTransferredEvent`: the field lists are
/// unconfirmed, so only `callId` (and the flow ids, when they are there) are
/// interpreted; everything else is kept as attributes.
fn transfer(row: &Row, notification: Option<&Map<String, Value>>, identity: Identity) -> Normalized {
    let vendor = Vendor::Xelion;
    let Some((n, call_id)) = notification.and_then(|n| scalar_text(n, "callId").map(|id| (n, id))) else {
        let why =
            format!("{} carries no callId (its field list is undocumented), so it cannot be tied to a call", row.name);
        return Normalized::ignored(vendor, row.name, why, identity);
    };
    let call = [vendor.call_id_prefix(), ":", &call_id].concat();
    let mut draft = EventDraft::new(EventType::CallTransferred, Some(CallRef::Id(call)));
    draft.conversation_id =
        flow_conversation(scalar_text(n, "callerFlowId").or_else(|| scalar_text(n, "calleeFlowId")).as_deref());
    draft.attributes = attributes(n, &["callId"], "");
    if row.name == "callTransferredEvent" {
        // This leg was handed on (the transferred party continues on another
        // leg of the flow): a transfer detail that names nobody who joined
        // this leg, so the leg ends TRANSFERRED. A twin transfer moves the
        // same call to the user's mobile: no detail, the call goes on as is.
        draft.detail = Some(Detail::Transfer(Box::default()));
    }
    Normalized::single(vendor, row.name, identity, draft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::PhoneNormalizer;
    use std::time::Duration;

    fn norm_with(json: &str, hint: Option<&str>) -> Result<Normalized, AdapterError> {
        let phone = PhoneNormalizer::new("NL").unwrap();
        let v: Value = serde_json::from_str(json).unwrap();
        Xelion.normalize(&v, &NormalizeContext::new(hint, &phone))
    }

    fn norm(json: &str) -> Result<Normalized, AdapterError> {
        norm_with(json, None)
    }

    const HUNG_UP: &str = r#"{"notificationType":"callHungUpEvent","notification":{
        "initiation":"DIRECT","date":"2025-07-02 08:39:51","callId":"SIP/trunk-000001d8",
        "callerFlowId":"186ba647df1ef222","calleeFlowId":"186ba647df1ef223",
        "callerPhoneNumber":"+31642060837","calleePhoneNumber":"1001","calleeUser":"1816134",
        "calleeCallLogOid":"2045869","calleePhoneLineOid":"1816140","duration":"95"}}"#;

    #[test]
    fn every_documented_notification_type_has_a_mapping_row() {
        for name in [
            "newCallEvent",
            "callConnectedEvent",
            "callHungUpEvent",
            "missedCallEvent",
            "channelHungUpEvent",
            "callTransferredEvent",
            "twinTransferredEvent",
            "activeChannelEvent",
            "tenantStatusEvent",
            "wallboardEvent",
            "presenceListEvent",
            "doNotDisturbEvent",
            "newVoicemailEvent",
            "test",
        ] {
            assert!(row(name).is_some(), "{name}");
        }
        assert_eq!(row("CALLHUNGUPEVENT").map(|r| r.name), Some("callHungUpEvent"));
    }

    #[test]
    fn a_hang_up_keeps_the_string_duration_the_start_date_and_a_natural_key() {
        let n = norm(HUNG_UP).unwrap();
        assert_eq!(n.identity, Identity::Natural("xelion:callHungUpEvent:SIP/trunk-000001d8".into()));
        let e = &n.events[0];
        assert_eq!(e.event_type, EventType::CallEnded);
        assert_eq!(e.call, Some(CallRef::Id("xelion:SIP/trunk-000001d8".into())));
        assert_eq!(e.conversation_id.as_deref(), Some("xelion:flow:186ba647df1ef222"));
        assert_eq!(e.facts.duration, Some(Duration::from_secs(95)));
        assert_eq!(e.facts.started_at.unwrap().to_rfc3339(), "2025-07-02T08:39:51+00:00");
        assert_eq!(e.occurred_at, None, "date is the call start, not the event time");
        let Some(Detail::Ended(ended)) = &e.detail else { panic!("{:?}", e.detail) };
        assert_eq!(ended.duration, Some(Duration::from_secs(95)));
    }

    #[test]
    fn the_user_side_is_the_agent_and_the_other_the_customer_listed_first() {
        let e = &norm(HUNG_UP).unwrap().events[0];
        assert_eq!(e.direction, Some(Direction::Inbound));
        assert_eq!(e.parties.len(), 2);
        assert_eq!(e.parties[0].role, Some(PartyRole::Customer));
        assert_eq!(e.parties[0].e164, "+31642060837");
        assert_eq!(e.parties[1].role, Some(PartyRole::Agent));
        assert_eq!((e.parties[1].phone_number.as_str(), e.parties[1].user_id.as_str()), ("1001", "1816134"));
    }

    #[test]
    fn oids_flow_ids_and_initiation_are_kept_verbatim_as_attributes() {
        let e = &norm(HUNG_UP).unwrap().events[0];
        for (k, v) in [
            ("initiation", "DIRECT"),
            ("callerFlowId", "186ba647df1ef222"),
            ("calleeFlowId", "186ba647df1ef223"),
            ("calleeUser", "1816134"),
            ("calleeCallLogOid", "2045869"),
            ("calleePhoneLineOid", "1816140"),
        ] {
            assert_eq!(e.attributes.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert!(!e.attributes.contains_key("duration") && !e.attributes.contains_key("callId"));
    }

    #[test]
    fn direction_is_inferred_only_from_user_oids() {
        assert_eq!(direction(true, true), Some(Direction::Internal));
        assert_eq!(direction(true, false), Some(Direction::Outbound));
        assert_eq!(direction(false, true), Some(Direction::Inbound));
        assert_eq!(direction(false, false), None);
    }

    #[test]
    fn a_bare_call_event_needs_its_type_in_vendor_event_type() {
        let bare = r#"{"callId":"caller_186ba647df1ef222","callerFlowId":"f1","date":"2025-07-02 08:39:51"}"#;
        let err = norm(bare).unwrap_err();
        assert_eq!(err.violations()[0].field, "vendor_event_type");
        let n = norm_with(bare, Some("newCallEvent")).unwrap();
        assert_eq!(n.events[0].event_type, EventType::CallStarted);
        assert_eq!(n.identity, Identity::Natural("xelion:newCallEvent:caller_186ba647df1ef222".into()));
    }

    #[test]
    fn bare_errors_name_top_level_paths_and_enveloped_errors_name_notification_paths() {
        let err = norm_with(r#"{"callerFlowId":"f1","date":"yesterday"}"#, Some("newCallEvent")).unwrap_err();
        assert_eq!(err.violations()[0].field, "date");
        let err = norm(r#"{"notificationType":"newCallEvent","notification":{"callerFlowId":"f1"}}"#).unwrap_err();
        assert_eq!(err.violations()[0].field, "notification.callId");
        let err = norm(r#"{"notificationType":"callHungUpEvent","notification":{"callId":"c","duration":"long"}}"#)
            .unwrap_err();
        assert_eq!(err.violations()[0].field, "notification.duration");
        let err = norm(r#"{"notificationType":"newCallEvent"}"#).unwrap_err();
        assert_eq!(err.violations()[0].field, "notification");
    }

    #[test]
    fn an_envelope_type_that_contradicts_vendor_event_type_is_rejected() {
        let err = norm_with(HUNG_UP, Some("newCallEvent")).unwrap_err();
        assert_eq!(err.violations()[0].field, "vendor_event_type");
        assert!(norm_with(HUNG_UP, Some("callhungupevent")).is_ok());
    }

    #[test]
    fn a_channel_hang_up_names_the_one_filled_side_and_infers_nothing() {
        let n = norm(
            r#"{"notificationType":"channelHungUpEvent","notification":{"callId":"c7","date":"2025-07-02 08:39:51",
            "calleeFlowId":"ringing-a","calleePhoneNumber":"1002","calleeUser":"1816135"}}"#,
        )
        .unwrap();
        assert!(n.identity.is_content_hash());
        let e = &n.events[0];
        assert_eq!(e.event_type, EventType::ParticipantLeft);
        assert_eq!((e.direction, e.conversation_id.as_deref()), (None, None));
        let Some(Detail::Participant(p)) = &e.detail else { panic!("{:?}", e.detail) };
        assert_eq!((p.role, p.user_id.as_str()), (Some(PartyRole::Agent), "1816135"));
        assert_eq!(e.attributes.get("channel.calleeUser").map(String::as_str), Some("1816135"));
        assert!(!e.attributes.contains_key("calleeUser"));
    }

    #[test]
    fn transfers_map_only_when_they_carry_a_call_id() {
        let t = norm(r#"{"notificationType":"callTransferredEvent","notification":{"callId":"c9","target":"1003"}}"#)
            .unwrap();
        assert_eq!(t.events[0].event_type, EventType::CallTransferred);
        assert_eq!(t.events[0].attributes.get("target").map(String::as_str), Some("1003"));
        let ignored = norm(r#"{"notificationType":"twinTransferredEvent","notification":{"user":"1816134"}}"#).unwrap();
        assert!(ignored.ignored.as_deref().unwrap().contains("no callId"));
    }

    #[test]
    fn non_call_unknown_and_test_messages_are_ignored_not_rejected() {
        for json in [
            r#"{"notificationType":"wallboardEvent","notification":{"calls":3}}"#,
            r#"{"notificationType":"someFutureEvent","notification":{}}"#,
            r#"{"notificationType":"chatMessageReadEvent"}"#,
            r#"{"messageType":"test","message":"ping"}"#,
        ] {
            assert!(norm(json).unwrap().ignored.is_some(), "{json}");
        }
    }

    #[test]
    fn detection_claims_both_shapes_and_nothing_else() {
        let d = |s: &str| Xelion.detect(&serde_json::from_str::<Value>(s).unwrap(), None);
        assert!(d(HUNG_UP));
        assert!(d(r#"{"callId":"SIP/wes-000001d8","calleeFlowId":"f"}"#));
        assert!(d(r#"{"messageType":"test"}"#));
        assert!(!d(r#"{"type":"callended","detail":{"callId":"c1"}}"#));
        assert!(!d(r#"{"eventType":"mashell-voice-phone-offered-cc-event-v1","status":"success","data":{}}"#));
        assert!(!d(r#"{"messageId":"CAEQAQ==","payload":"e30=","publishTime":"2025-10-15T09:30:00.000Z"}"#));
        assert!(!d(r#"{"Interaction":{"interactionGUID":"int-1","event":"InteractionCreated"}}"#));
        assert!(!d(r#"{"type":"isEndOfTopic","endOfTopic":"true"}"#));
        assert!(!d(r#"{"callId":"no-flow-id"}"#));
    }

    #[test]
    fn an_international_callee_number_gets_its_e164_whatever_the_default_region() {
        let phone = PhoneNormalizer::new("US").unwrap();
        let v: Value = serde_json::from_str(
            r#"{"notificationType":"newCallEvent","notification":{"callId":"c1","callerFlowId":"f1",
            "callerPhoneNumber":"201","callerUser":"1816134","calleePhoneNumber":"+31152511411"}}"#,
        )
        .unwrap();
        let n = Xelion.normalize(&v, &NormalizeContext::new(None, &phone)).unwrap();
        let customer = &n.events[0].parties[0];
        assert_eq!(customer.role, Some(PartyRole::Customer));
        assert_eq!(customer.e164, "+31152511411");
    }

    #[test]
    fn a_call_between_two_non_users_has_one_customer_and_a_third_party() {
        let n = norm(
            r#"{"notificationType":"newCallEvent","notification":{"callId":"c2","callerFlowId":"f2",
            "callerPhoneNumber":"+31642060837","calleePhoneNumber":"200"}}"#,
        )
        .unwrap();
        let roles: Vec<_> = n.events[0].parties.iter().map(|p| p.role).collect();
        assert_eq!(roles, vec![Some(PartyRole::Customer), Some(PartyRole::ThirdParty)]);
        assert_eq!(n.events[0].direction, None);
    }
}
