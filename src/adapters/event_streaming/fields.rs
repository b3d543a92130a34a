//! The typed view of one decoded 8x8 event body: serde structs with lenient
//! readers (8x8 mixes numbers, strings and booleans for the same field), the
//! `attachedData.attachedDatum[]` list with JSON paths for every value, and
//! the media classification that keeps chat and email out of the call model.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::adapters::lenient::{flatten, opt_bool, opt_epoch_millis, opt_epoch_seconds, opt_text, opt_u64};
use crate::adapters::{AdapterError, from_value};
use crate::domain::{Direction, Media};

/// `msgInfo`: the producer instance, its sequence number and the emission
/// time (ms). Often `{}` in the newer examples, so every field is optional.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub(super) struct MsgInfo {
    /// The producing instance: the scope of `sequence_id`.
    #[serde(default, deserialize_with = "opt_text")]
    pub instance_id: Option<String>,
    /// "Event sequence number for ordering" (within one instance).
    #[serde(default, deserialize_with = "opt_u64")]
    pub sequence_id: Option<u64>,
    /// Emission time, epoch milliseconds.
    #[serde(default, deserialize_with = "opt_epoch_millis")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// Reads `msgInfo` of an event body (absent or `null` is empty).
pub(super) fn msg_info(body: &Map<String, Value>, path: &str) -> Result<MsgInfo, AdapterError> {
    match body.get("msgInfo") {
        None | Some(Value::Null) => Ok(MsgInfo::default()),
        Some(v) => from_value(v, &[path, ".msgInfo"].concat()),
    }
}

/// The fields of an `Interaction` body this adapter reads (the rest are kept
/// as attributes). Field sets of most event types are undocumented, so
/// every field is optional here and required ones are checked by the caller.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub(super) struct InteractionFields {
    /// The call id ("the only reliable way to track an interaction").
    #[serde(default, rename = "interactionGUID", deserialize_with = "opt_text")]
    pub guid: Option<String>,
    /// The event time, epoch seconds.
    #[serde(default, rename = "interactionEventTS", deserialize_with = "opt_epoch_seconds")]
    pub event_ts: Option<DateTime<Utc>>,
    /// `in` / `out`.
    #[serde(default, deserialize_with = "opt_text")]
    pub direction: Option<String>,
    /// `phone`, `chat`, `email`... (normalized by 8x8 from `resourceType`).
    #[serde(default, deserialize_with = "opt_text")]
    pub media_type: Option<String>,
    /// 0 phone, 1 email, 2 chat, 3 SMS, 4 video.
    #[serde(default, deserialize_with = "opt_u64")]
    pub resource_type: Option<u64>,
    /// The agent the event concerns.
    #[serde(default, deserialize_with = "opt_text")]
    pub agent_id: Option<String>,
    /// The agent's extension, a JSON number (`40375`).
    #[serde(default, deserialize_with = "opt_text")]
    pub agent_phone: Option<String>,
    /// The queue, a JSON number.
    #[serde(default, deserialize_with = "opt_text")]
    pub queue_id: Option<String>,
    /// A boolean or `"true"`/`"false"`.
    #[serde(default, deserialize_with = "opt_bool")]
    pub is_outbound_call: Option<bool>,
    /// InteractionDeleted: `AGENT`, `CUSTOMER`, `SYSTEM`.
    #[serde(default, deserialize_with = "opt_text")]
    pub hangup_initiator: Option<String>,
    /// InteractionDeleted: `CEC_*`.
    #[serde(default, deserialize_with = "opt_text")]
    pub call_hangup_reason: Option<String>,
    /// A number (`1000`) or a string (`"SALE"`).
    #[serde(default, deserialize_with = "opt_text")]
    pub disposition_code: Option<String>,
    /// Free text the agent typed during wrap-up.
    #[serde(default, deserialize_with = "opt_text")]
    pub agent_notes: Option<String>,
    /// InteractionRejected: 0 unknown, 1 timeout, 2 agent reject.
    #[serde(default, deserialize_with = "opt_u64")]
    pub reject_reason: Option<u64>,
}

/// The fields of an `AgentStatusChange` body.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub(super) struct AgentStatusFields {
    /// The agent.
    #[serde(default, deserialize_with = "opt_text")]
    pub agent_id: Option<String>,
    /// Numeric state code (the full table is undocumented: kept verbatim).
    #[serde(default, deserialize_with = "opt_text")]
    pub new_state: Option<String>,
    /// Sub-state, `"none"` when there is none.
    #[serde(default, deserialize_with = "opt_text")]
    pub new_sub_state: Option<String>,
    /// Sub-state reason, `"none"` when there is none.
    #[serde(default, deserialize_with = "opt_text")]
    pub new_sub_state_reason: Option<String>,
    /// The tenant's reason code (`"801=1722"`).
    #[serde(default, deserialize_with = "opt_text")]
    pub new_reason_code_user: Option<String>,
    /// The status time, epoch seconds.
    #[serde(default, rename = "statusEventTS", deserialize_with = "opt_epoch_seconds")]
    pub status_event_ts: Option<DateTime<Utc>>,
}

/// `attachedData.attachedDatum[]` as `(key, value, index)` items, so values
/// of mixed types are read leniently and errors name the item's JSON path.
/// The path is spelled out only for an error: every event has this list, few
/// have a bad value in it.
pub(super) struct Attached<'a> {
    /// The JSON path of the event body.
    body_path: &'a str,
    items: Vec<(&'a str, &'a Value, usize)>,
}

impl<'a> Attached<'a> {
    /// Reads `attachedData` of an event body. `attachedDatum` may be a list or,
    /// as XML-to-JSON bridges render a one-element list, a single object.
    pub fn parse(body: &'a Map<String, Value>, body_path: &'a str) -> Result<Attached<'a>, AdapterError> {
        let mut attached = Attached { body_path, items: Vec::new() };
        let path = || datum_path(body_path);
        let datum = match body.get("attachedData") {
            None | Some(Value::Null) => return Ok(attached),
            Some(Value::Object(o)) => o.get("attachedDatum"),
            Some(_) => return Err(AdapterError::field([body_path, ".attachedData"].concat(), "expected an object")),
        };
        let list: Vec<&Value> = match datum {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => {
                return Err(AdapterError::field(path(), "expected a list of {attachedDataKey, attachedDataValue}"));
            }
        };
        for (i, item) in list.into_iter().enumerate() {
            let key =
                item.get("attachedDataKey").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or_else(|| {
                    AdapterError::field(format!("{}[{i}].attachedDataKey", path()), "required: a non-empty string")
                })?;
            attached.items.push((key, item.get("attachedDataValue").unwrap_or(&Value::Null), i));
        }
        Ok(attached)
    }

    /// Reads the value of `key` with a lenient reader; a bad value is an error
    /// naming `...attachedDatum[i].attachedDataValue`.
    pub fn read<T>(
        &self,
        key: &str,
        reader: impl Fn(&'a Value) -> Result<Option<T>, serde_json::Error>,
    ) -> Result<Option<T>, AdapterError> {
        match self.items.iter().find(|(k, _, _)| *k == key) {
            None => Ok(None),
            Some((_, v, i)) => reader(v).map_err(|e| AdapterError::field(self.value_path(*i), e.to_string())),
        }
    }

    /// A value as text (numbers and booleans included; blank and `N/A` are
    /// `None`).
    pub fn text(&self, key: &str) -> Result<Option<String>, AdapterError> {
        self.read(key, opt_text)
    }

    /// [`Attached::text`] with the JSON path of the value, for a caller
    /// that checks the text further and names the field when it fails.
    pub fn text_at(&self, key: &str) -> Result<Option<(String, String)>, AdapterError> {
        let Some((_, v, i)) = self.items.iter().find(|(k, _, _)| *k == key) else { return Ok(None) };
        let text = opt_text(*v).map_err(|e| AdapterError::field(self.value_path(*i), e.to_string()))?;
        Ok(text.map(|t| (t, self.value_path(*i))))
    }

    /// Every item as a flat string attribute (`key → lenient::flatten(value)`).
    pub fn flatten_into(&self, out: &mut BTreeMap<String, String>) {
        for (k, v, _) in &self.items {
            if !v.is_null() {
                out.insert((*k).to_string(), flatten(v));
            }
        }
    }

    fn value_path(&self, i: usize) -> String {
        format!("{}[{i}].attachedDataValue", datum_path(self.body_path))
    }
}

/// The JSON path of the `attachedDatum` list of the body at `body_path`.
fn datum_path(body_path: &str) -> String {
    [body_path, ".attachedData.attachedDatum"].concat()
}

/// The vendor duration: `callDurationSec` (seconds, a number) or else
/// `callDuration` (`"HH:MM:SS"`).
pub(super) fn duration(attached: &Attached<'_>) -> Result<Option<Duration>, AdapterError> {
    let secs = attached.read("callDurationSec", crate::adapters::lenient::opt_duration)?;
    match secs {
        Some(d) => Ok(Some(d)),
        None => attached.read("callDuration", crate::adapters::lenient::opt_duration),
    }
}

/// `in` / `out` → direction; anything else is an error (a wrong direction
/// would flip the meaning of the whole call).
pub(super) fn direction(raw: &str, field: &str) -> Result<Direction, AdapterError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "in" => Ok(Direction::Inbound),
        "out" => Ok(Direction::Outbound),
        _ => Err(AdapterError::field(field, format!("unknown direction {raw:?}; expected \"in\" or \"out\""))),
    }
}

/// What kind of media an interaction is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum MediaKind {
    /// Phone media (voice, or video which 8x8 files under phone).
    Phone(Media),
    /// Not a call (email, chat, SMS...): named for the ignore reason.
    NonVoice(String),
    /// The event does not say.
    Unknown,
}

/// Classifies the media: `resourceType` first (8x8 derives `mediaType` from
/// it, and only it tells video apart), then `mediaType`, then the media
/// segment of the interaction GUID (`int-…-phone-00-tenant`, `…-chat-…`),
/// which the many events that carry neither field still have.
pub(super) fn media(resource_type: Option<u64>, media_type: Option<&str>, guid: Option<&str>) -> MediaKind {
    match resource_type {
        Some(0) => return MediaKind::Phone(Media::Voice),
        Some(4) => return MediaKind::Phone(Media::Video),
        Some(1) => return MediaKind::NonVoice("email (resourceType 1)".into()),
        Some(2) => return MediaKind::NonVoice("chat (resourceType 2)".into()),
        Some(3) => return MediaKind::NonVoice("SMS (resourceType 3)".into()),
        Some(n) => return MediaKind::NonVoice(format!("unknown resourceType {n}")),
        None => {}
    }
    if let Some(m) = media_type {
        return match m.trim().to_ascii_lowercase().as_str() {
            "phone" | "voice" => MediaKind::Phone(Media::Voice),
            "video" => MediaKind::Phone(Media::Video),
            other => MediaKind::NonVoice(format!("mediaType {other:?}")),
        };
    }
    // `int-<hex time>-<random>-<media>-<nn>-<tenant>`.
    match guid.and_then(|g| g.split('-').nth(3)).map(str::to_ascii_lowercase).as_deref() {
        Some("phone") => MediaKind::Phone(Media::Voice),
        Some(m @ ("chat" | "email" | "sms")) => MediaKind::NonVoice(format!("{m} (interaction GUID)")),
        _ => MediaKind::Unknown,
    }
}

/// Every other field of the body, flattened: what the adapter does not map
/// stays visible (`callState`, `transactionNum`, `participatingAgents`...).
/// `msgInfo` fields get a `msgInfo.` prefix.
pub(super) fn body_attributes(body: &Map<String, Value>, out: &mut BTreeMap<String, String>) {
    for (k, v) in body {
        match (k.as_str(), v) {
            ("event" | "interactionGUID" | "attachedData", _) | (_, Value::Null) => {}
            ("msgInfo", Value::Object(m)) => {
                for (mk, mv) in m.iter().filter(|(_, mv)| !mv.is_null()) {
                    out.insert(["msgInfo.", mk].concat(), flatten(mv));
                }
            }
            _ => {
                out.insert(k.clone(), flatten(v));
            }
        }
    }
}

/// True for a sub-state or reason that says something (`"none"` does not).
pub(super) fn meaningful(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("none"))
}
