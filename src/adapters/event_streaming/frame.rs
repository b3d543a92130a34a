//! The Apache Pulsar WebSocket frame around an 8x8 event:
//! `{messageId, payload (base64 of UTF-8 JSON), properties, publishTime,
//! redeliveryCount}`, and the control frames that share the socket.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::adapters::lenient::{flatten, opt_iso8601, opt_text, opt_u64};
use crate::adapters::{AdapterError, from_value, parse_json};

/// A decoded Pulsar frame.
#[derive(Debug)]
pub(super) struct Frame {
    /// Pulsar's unique id of the message (opaque base64; the dedup key).
    pub message_id: String,
    /// When the broker stored the message: the last-resort event time.
    pub publish_time: Option<DateTime<Utc>>,
    /// `messageId`, `publishTime`, `redeliveryCount` and `properties.<key>`,
    /// kept so a consumer can see a redelivery.
    pub attributes: BTreeMap<String, String>,
    /// The event inside, parsed.
    pub event: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FrameFields {
    #[serde(default, deserialize_with = "opt_text")]
    message_id: Option<String>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "opt_iso8601")]
    publish_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_u64")]
    redelivery_count: Option<u64>,
}

/// True for an object that has the frame's own keys.
pub(super) fn looks_like_frame(o: &Map<String, Value>) -> bool {
    o.contains_key("messageId") || o.contains_key("payload")
}

/// True for a Pulsar control frame (`{"type":"isEndOfTopic","endOfTopic":"true"}`),
/// which is not an event: the examples say not to print or ack it.
pub(super) fn is_control(o: &Map<String, Value>) -> bool {
    let end_of_topic = o.get("type").and_then(Value::as_str) == Some(CONTROL_END_OF_TOPIC);
    let only_control_keys = o.contains_key("endOfTopic") && o.keys().all(|k| k == "type" || k == "endOfTopic");
    end_of_topic || only_control_keys
}

/// The `type` of the only documented control frame (and its MAPPING row).
pub(super) const CONTROL_END_OF_TOPIC: &str = "isEndOfTopic";

/// Checks and decodes a frame. `messageId` and `payload` are required; the
/// payload must be base64 (padding optional, whitespace ignored) of JSON.
pub(super) fn decode(value: &Value) -> Result<Frame, AdapterError> {
    let f: FrameFields = from_value(value, "")?;
    let message_id = f.message_id.ok_or_else(|| AdapterError::field("messageId", "required: the Pulsar message id"))?;
    let payload = f.payload.ok_or_else(|| AdapterError::field("payload", "required: base64 of the event JSON"))?;
    let compact: String = payload.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = STANDARD_PAD_INDIFFERENT
        .decode(compact.as_bytes())
        .map_err(|e| AdapterError::field("payload", format!("not valid base64: {e}")))?;
    let event: Value = parse_json(&bytes).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let message = e.to_string();
        let message = message.strip_suffix(&format!(" at line {line} column {column}")).unwrap_or(&message);
        AdapterError::field(
            "payload",
            format!("decoded payload is not valid JSON at line {line} column {column}: {message}"),
        )
    })?;

    let mut attributes = BTreeMap::new();
    attributes.insert("messageId".to_string(), message_id.clone());
    if let Some(t) = value.get("publishTime").and_then(Value::as_str) {
        attributes.insert("publishTime".to_string(), t.to_string());
    }
    if let Some(n) = f.redelivery_count {
        attributes.insert("redeliveryCount".to_string(), n.to_string());
    }
    for (k, v) in f.properties.iter().flatten().filter(|(_, v)| !v.is_null()) {
        attributes.insert(format!("properties.{k}"), flatten(v));
    }
    Ok(Frame { message_id, publish_time: f.publish_time, attributes, event })
}
