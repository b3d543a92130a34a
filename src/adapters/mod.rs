//! Vendor adapters: one module per vendor behind [`Adapter`], each with its
//! mapping table (search for `MAPPING` to find where a vendor field is
//! mapped).
//!
//! [`Normalizer`] parses the payload once, picks the adapter by an exhaustive
//! match on [`Vendor`] (or detects it from the payload's shape), and returns
//! canonical [`EventDraft`](crate::domain::EventDraft)s or a typed error that
//! names every bad field by JSON path.

pub mod agent_panel;
pub mod event_streaming;
pub mod lenient;
pub mod phone;
pub mod salesforce;
pub mod xelion;

use serde_json::Value;

use crate::domain::{Normalized, Vendor};
pub use phone::PhoneNormalizer;

/// One problem with one field of a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// JSON path of the field (`detail.callId`, `notification.date`).
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation { field: field.into(), description: description.into() }
    }
}

/// Why a payload could not be normalized. Every variant is the client's
/// fault and maps to `INVALID_ARGUMENT`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// Not JSON.
    #[error("payload is not valid JSON at line {line} column {column}: {message}")]
    InvalidJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// JSON, but fields are missing or malformed.
    #[error("{} invalid field(s): {}", .0.len(), describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// `VENDOR_UNSPECIFIED` and no vendor's shape fits.
    #[error("cannot detect the vendor; shapes tried: {}", .tried.join("; "))]
    Undetected {
        /// The shapes that were tried.
        tried: Vec<&'static str>,
    },
    /// The payload plainly belongs to another vendor than the one named.
    #[error("payload looks like {detected:?}, not {given:?}")]
    VendorMismatch {
        /// The vendor the request named.
        given: Vendor,
        /// The vendor the payload looks like.
        detected: Vendor,
    },
}

fn describe(v: &[FieldViolation]) -> String {
    v.iter().map(|f| format!("{}: {}", f.field, f.description)).collect::<Vec<_>>().join("; ")
}

impl AdapterError {
    /// A single-field violation.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> AdapterError {
        AdapterError::Invalid(vec![FieldViolation::new(field, description)])
    }

    /// The field violations to report in a `google.rpc.BadRequest`.
    pub fn violations(&self) -> Vec<FieldViolation> {
        match self {
            AdapterError::InvalidJson { line, column, message } => {
                vec![FieldViolation::new("payload", format!("invalid JSON at line {line} column {column}: {message}"))]
            }
            AdapterError::Invalid(v) => v.clone(),
            AdapterError::Undetected { tried } => {
                vec![FieldViolation::new("payload", format!("matches no vendor shape; tried: {}", tried.join("; ")))]
            }
            AdapterError::VendorMismatch { given, detected } => vec![FieldViolation::new(
                "vendor",
                format!("payload has the shape of VENDOR_{}, not VENDOR_{}", detected.name(), given.name()),
            )],
        }
    }

    /// A short label for metrics and audit logs.
    pub fn reason(&self) -> &'static str {
        match self {
            AdapterError::InvalidJson { .. } => "invalid_json",
            AdapterError::Invalid(_) => "invalid_fields",
            AdapterError::Undetected { .. } => "vendor_undetected",
            AdapterError::VendorMismatch { .. } => "vendor_mismatch",
        }
    }
}

impl From<serde_path_to_error::Error<serde_json::Error>> for AdapterError {
    fn from(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        let field = if path == "." { "payload".to_string() } else { path };
        AdapterError::field(field, e.into_inner().to_string())
    }
}

/// What an adapter gets besides the payload.
#[derive(Clone, Copy)]
pub struct NormalizeContext<'a> {
    /// The request's `vendor_event_type`, for envelopes without a type.
    pub vendor_event_type: Option<&'a str>,
    /// Phone-number normalization (default region).
    pub phone: &'a PhoneNormalizer,
    /// The agent a browser relay forwards for (`IngestRequest.agent_id`):
    /// browser-born vendors (agent panel, Salesforce) put it on the agent
    /// party and into their one-shot natural keys and correlation key.
    pub agent_id: Option<&'a str>,
}

impl<'a> NormalizeContext<'a> {
    /// A context without a relay agent.
    pub fn new(vendor_event_type: Option<&'a str>, phone: &'a PhoneNormalizer) -> Self {
        NormalizeContext { vendor_event_type, phone, agent_id: None }
    }
}

/// One vendor's translation into the canonical model.
pub trait Adapter: Send + Sync {
    /// The vendor this adapter reads.
    fn vendor(&self) -> Vendor;

    /// The payload shapes this adapter accepts, for error messages.
    fn shape(&self) -> &'static str;

    /// Every vendor event type in the mapping table (tests check each has a
    /// fixture).
    fn event_types(&self) -> Vec<&'static str>;

    /// True when the payload plainly has this vendor's shape.
    fn detect(&self, payload: &Value, vendor_event_type: Option<&str>) -> bool;

    /// Turns the payload into canonical drafts.
    fn normalize(&self, payload: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, AdapterError>;
}

/// Picks the adapter for a payload and runs it.
pub struct Normalizer {
    agent_panel: agent_panel::AgentPanel,
    event_streaming: event_streaming::EventStreaming,
    xelion: xelion::Xelion,
    salesforce: salesforce::Salesforce,
    phone: PhoneNormalizer,
}

impl Normalizer {
    /// A normalizer using `phone` for phone numbers.
    pub fn new(phone: PhoneNormalizer) -> Normalizer {
        Normalizer {
            agent_panel: agent_panel::AgentPanel,
            event_streaming: event_streaming::EventStreaming,
            xelion: xelion::Xelion,
            salesforce: salesforce::Salesforce,
            phone,
        }
    }

    /// The adapter of a vendor. Exhaustive: a new vendor does not compile
    /// until it has an adapter.
    pub fn adapter(&self, vendor: Vendor) -> &dyn Adapter {
        match vendor {
            Vendor::AgentPanel8x8 => &self.agent_panel,
            Vendor::EventStreaming8x8 => &self.event_streaming,
            Vendor::Xelion => &self.xelion,
            Vendor::SalesforceVoice => &self.salesforce,
        }
    }

    /// The vendor whose shape the payload has, if exactly one fits.
    pub fn detect(&self, payload: &Value, vendor_event_type: Option<&str>) -> Option<Vendor> {
        let mut fits = Vendor::ALL.iter().copied().filter(|v| self.adapter(*v).detect(payload, vendor_event_type));
        match (fits.next(), fits.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    }

    /// Normalizes one payload. `vendor` `None` means detect it.
    pub fn normalize(
        &self,
        vendor: Option<Vendor>,
        payload: &[u8],
        vendor_event_type: Option<&str>,
    ) -> Result<Normalized, AdapterError> {
        self.normalize_for(vendor, payload, vendor_event_type, None)
    }

    /// Normalizes one payload a relay forwarded on behalf of `agent_id`
    /// (`IngestRequest.agent_id`; `None` when the request named none).
    pub fn normalize_for(
        &self,
        vendor: Option<Vendor>,
        payload: &[u8],
        vendor_event_type: Option<&str>,
        agent_id: Option<&str>,
    ) -> Result<Normalized, AdapterError> {
        let value: Value = parse_json(payload).map_err(|e| AdapterError::InvalidJson {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let ctx = NormalizeContext { vendor_event_type, phone: &self.phone, agent_id };
        let vendor = match vendor {
            Some(v) => {
                if !self.adapter(v).detect(&value, vendor_event_type)
                    && let Some(other) = self.detect(&value, vendor_event_type)
                {
                    return Err(AdapterError::VendorMismatch { given: v, detected: other });
                }
                v
            }
            None => self.detect(&value, vendor_event_type).ok_or_else(|| AdapterError::Undetected {
                tried: Vendor::ALL.iter().map(|v| self.adapter(*v).shape()).collect(),
            })?,
        };
        let n = self.adapter(vendor).normalize(&value, &ctx)?;
        check_id_lengths(&n)?;
        Ok(n)
    }
}

/// Parses a JSON payload. Read from bytes, `serde_json` checks the UTF-8 of
/// every string on its own (3 % of S12's instructions, most of it the cost
/// of each call); the whole payload is checked once instead and read as
/// text. Bytes that are not UTF-8 go to the byte reader, so the error and
/// its position are the ones it always gave.
pub fn parse_json(payload: &[u8]) -> Result<Value, serde_json::Error> {
    match std::str::from_utf8(payload) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(payload),
    }
}

/// The longest id (call, conversation, agent, queue) a payload may carry.
/// Ids end up in log subjects, keys and every event of the call; a vendor id
/// longer than this is broken data, not an id.
pub const MAX_ID_LEN: usize = 256;

fn check_id_lengths(n: &Normalized) -> Result<(), AdapterError> {
    let mut violations = Vec::new();
    let mut check = |what: &str, id: &str| {
        if id.len() > MAX_ID_LEN {
            violations.push(FieldViolation::new("payload", format!("the {what} is longer than {MAX_ID_LEN} bytes")));
        }
    };
    for d in &n.events {
        if let Some(crate::domain::CallRef::Id(id)) = &d.call {
            check("call id", id);
        }
        if let Some(c) = &d.conversation_id {
            check("conversation id", c);
        }
        check("agent id", &d.agent_id);
        check("queue id", &d.queue_id);
    }
    if violations.is_empty() { Ok(()) } else { Err(AdapterError::Invalid(violations)) }
}

/// The JSON path of `field` inside the object at `prefix` (`""`: the
/// payload itself), for the field an error names.
pub fn join_path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() { field.to_string() } else { [prefix, ".", field].concat() }
}

/// An envelope's required type field: a string that is not empty (`trim`:
/// not blank either, and trimmed), or an error naming the field.
pub fn required_text<'a>(payload: &'a Value, field: &str, trim: bool) -> Result<&'a str, AdapterError> {
    match payload.get(field) {
        Some(Value::String(t)) if !(if trim { t.trim() } else { t.as_str() }).is_empty() => {
            Ok(if trim { t.trim() } else { t.as_str() })
        }
        Some(_) => Err(AdapterError::field(field, "must be a non-empty string")),
        None => Err(AdapterError::field(field, "required")),
    }
}

/// An envelope's required body: an object, or an error naming the field.
pub fn required_object<'a>(payload: &'a Value, field: &str) -> Result<&'a Value, AdapterError> {
    match payload.get(field) {
        Some(d @ Value::Object(_)) => Ok(d),
        Some(_) => Err(AdapterError::field(field, "must be an object")),
        None => Err(AdapterError::field(field, "required")),
    }
}

/// Deserializes a typed vendor struct from a JSON value, reporting the JSON
/// path of the first bad field. `prefix` is the path of `value` itself.
pub fn from_value<'de, T: serde::Deserialize<'de>>(value: &'de Value, prefix: &str) -> Result<T, AdapterError> {
    // Tracking the path costs a third of the deserialization: only a payload
    // that fails pays for it, on a second pass that names the field.
    if let Ok(t) = T::deserialize(value) {
        return Ok(t);
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = match (prefix.is_empty(), inner == ".") {
            (true, true) => "payload".to_string(),
            (true, false) => inner,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{inner}"),
        };
        AdapterError::field(field, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalizer() -> Normalizer {
        Normalizer::new(PhoneNormalizer::new("US").unwrap())
    }

    #[test]
    fn invalid_json_reports_the_parser_position() {
        let err = normalizer().normalize(None, b"{\n \"type\": \"hold\"\n \"detail\": {}}", None).unwrap_err();
        assert!(matches!(err, AdapterError::InvalidJson { line: 3, .. }), "{err:?}");
    }

    #[test]
    fn an_undetectable_payload_names_every_shape_tried() {
        let err = normalizer().normalize(None, br#"{"hello": "world", "x": 1}"#, None).unwrap_err();
        let AdapterError::Undetected { tried } = err else { panic!("{err:?}") };
        assert_eq!(tried.len(), Vendor::ALL.len());
    }

    #[test]
    fn a_payload_of_another_vendor_is_a_mismatch() {
        let sf = br#"{"type":"callended","detail":{"callId":"c1"}}"#;
        let err = normalizer().normalize(Some(Vendor::Xelion), sf, None).unwrap_err();
        assert_eq!(err, AdapterError::VendorMismatch { given: Vendor::Xelion, detected: Vendor::SalesforceVoice });
    }

    #[test]
    fn an_absurdly_long_call_id_is_refused() {
        let payload = format!(r#"{{"type":"hold","detail":{{"callId":"{}"}}}}"#, "/".repeat(2000));
        let err = normalizer().normalize(Some(Vendor::SalesforceVoice), payload.as_bytes(), None).unwrap_err();
        assert!(err.violations()[0].description.contains("call id"), "{err:?}");
    }

    #[test]
    fn invalid_utf8_is_invalid_json_at_its_position() {
        let err = normalizer().normalize(None, b"{\n \"type\": \"hold\xff\"}", None).unwrap_err();
        assert!(matches!(err, AdapterError::InvalidJson { line: 2, .. }), "{err:?}");
        assert!(err.to_string().contains("invalid unicode"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_by_the_parser() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(normalizer().normalize(None, deep.as_bytes(), None), Err(AdapterError::InvalidJson { .. })));
    }
}
