//! Distinct, realistic Ingest payloads from the vendor fixtures.
//!
//! Every `tests/fixtures/<vendor>/<name>.json` whose golden
//! (`<name>.expected.json`) says `accepted` becomes a [`Template`]: the
//! fixture's JSON with its identities turned into slots. Rendering a template
//! with a counter `n` fills every slot from `n`, so each request carries its
//! own call ids, event ids, message ids, phone numbers and timestamps and the
//! server sees a new vendor event (not a DUPLICATE) every time:
//!
//! * ids (`callId`, `eventId`, `interactionGUID`, Salesforce `id`, …): the
//!   first run of 8 hex digits is replaced by `n` in hex (the rest of the id,
//!   which tells legs apart, is kept); other ids get `-<n>` appended;
//! * Pulsar `messageId`: base64 of `n`;
//! * numeric ids and vendor timestamps: the original plus `n`;
//! * customers' phone numbers (strings of at least ten digits): the last
//!   seven digits become `2` and six digits of `n`, so every call has its
//!   own caller (the 8x8 agent panel correlates calls by number);
//! * the base64 `payload` of an 8x8 Pulsar frame is a template of its own.
//!
//! Rendering is a copy of the fixed segments plus a few formatted numbers, so
//! the load generator spends little CPU per request.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use switchboard::domain::Vendor;
use switchboard::proto::v1 as pb;

/// Keys whose string value is a vendor id.
const ID_KEYS: &[&str] = &[
    "callId",
    "callerFlowId",
    "calleeFlowId",
    "interactionGUID",
    "originalInteractionGUID",
    "originalInteractionGuid",
    "eventId",
    "id",
    "voiceCallId",
    "agentGUID",
];
/// Keys whose number (or numeric string) is a time or a counter the vendor
/// uses for identity.
const NUM_KEYS: &[&str] = &[
    "callerFlowId",
    "calleeFlowId",
    "transactionNum",
    "startTime",
    "endTime",
    "statusEventTS",
    "interactionEventTS",
    "eventTS",
    "timestamp",
    "clientSentTimestamp",
    "serverReceivedTimestamp",
    "sequenceId",
];
/// Keys holding a customer's phone number: distinct callers, as in real
/// traffic (and the 8x8 agent panel correlates calls by number).
const PHONE_KEYS: &[&str] = &[
    "searchContext",
    "participant",
    "callerPhoneNumber",
    "calleePhoneNumber",
    "phoneNum",
    "remotePhoneNum",
    "attachedDataValue",
];

#[derive(Clone, Debug)]
enum Slot {
    /// A string id: `prefix`, 8 hex digits of n, `suffix`.
    HexId { prefix: String, suffix: String },
    /// A string id without a hex run: `orig-<n>`.
    AppendId(String),
    /// A Pulsar message id: base64 of n.
    MessageId,
    /// original + n, as a JSON number or as a string.
    Num { orig: i64, quoted: bool },
    /// A phone number: the last seven digits replaced.
    Phone(String),
    /// The base64 `payload` of a Pulsar frame.
    Inner(Box<Template>),
}

/// One fixture with slots.
#[derive(Clone, Debug)]
pub struct Template {
    /// `segments.len() == slots.len() + 1`.
    segments: Vec<String>,
    slots: Vec<Slot>,
}

fn marker(i: usize) -> String {
    format!("__SWITCHBOARD_LOAD_SLOT_{i}__")
}

impl Template {
    /// Builds a template from a fixture's JSON.
    pub fn new(mut value: Value) -> Template {
        let mut slots = Vec::new();
        collect(&mut value, &mut slots);
        let text = serde_json::to_string(&value).expect("JSON values serialize");
        let mut segments = Vec::with_capacity(slots.len() + 1);
        let mut rest = text.as_str();
        for i in 0..slots.len() {
            let m = format!("\"{}\"", marker(i));
            let at = rest.find(&m).expect("every slot marker is in the text");
            segments.push(rest[..at].to_string());
            rest = &rest[at + m.len()..];
        }
        segments.push(rest.to_string());
        Template { segments, slots }
    }

    /// The payload for counter `n`.
    pub fn render(&self, n: u64, out: &mut String) {
        use std::fmt::Write as _;
        for (seg, slot) in self.segments.iter().zip(&self.slots) {
            out.push_str(seg);
            match slot {
                Slot::HexId { prefix, suffix } => {
                    let _ = write!(out, "\"{prefix}{:08x}{suffix}\"", n as u32);
                }
                Slot::AppendId(orig) => {
                    let _ = write!(out, "\"{orig}-{n:x}\"");
                }
                Slot::MessageId => {
                    let _ = write!(out, "\"{}\"", B64.encode(n.to_be_bytes()));
                }
                Slot::Num { orig, quoted: false } => {
                    let _ = write!(out, "{}", orig + n as i64);
                }
                Slot::Num { orig, quoted: true } => {
                    let _ = write!(out, "\"{}\"", orig + n as i64);
                }
                Slot::Phone(orig) => {
                    out.push('"');
                    out.push_str(&phone(orig, n));
                    out.push('"');
                }
                Slot::Inner(t) => {
                    let mut inner = String::with_capacity(1024);
                    t.render(n, &mut inner);
                    out.push('"');
                    out.push_str(&B64.encode(inner.as_bytes()));
                    out.push('"');
                }
            }
        }
        out.push_str(self.segments.last().map_or("", String::as_str));
    }
}

/// Replaces the last seven digits of a phone number with `2` and six digits
/// of `n` (a valid NANP exchange), keeping the formatting.
fn phone(orig: &str, n: u64) -> String {
    let digits = format!("2{:06}", n % 1_000_000);
    let mut bytes: Vec<u8> = orig.bytes().collect();
    let mut d = digits.bytes().rev();
    for b in bytes.iter_mut().rev() {
        if b.is_ascii_digit() {
            match d.next() {
                Some(x) => *b = x,
                None => break,
            }
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|_| orig.to_string())
}

fn hex_run(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(7)).find(|&i| b[i..i + 8].iter().all(u8::is_ascii_hexdigit))
}

fn collect(value: &mut Value, slots: &mut Vec<Slot>) {
    match value {
        Value::Object(map) => {
            let is_frame = map.contains_key("messageId") && map.contains_key("payload");
            for (k, v) in map.iter_mut() {
                let slot = match v {
                    Value::String(_) if is_frame && k == "messageId" => Some(Slot::MessageId),
                    Value::String(s) if is_frame && k == "payload" => B64
                        .decode(s.as_bytes())
                        .ok()
                        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
                        .map(|inner| Slot::Inner(Box::new(Template::new(inner)))),
                    Value::String(s)
                        if PHONE_KEYS.contains(&k.as_str())
                            && s.starts_with(['+', '(', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) =>
                    {
                        (s.bytes().filter(u8::is_ascii_digit).count() >= 10).then(|| Slot::Phone(s.clone()))
                    }
                    Value::String(s) if NUM_KEYS.contains(&k.as_str()) && s.parse::<i64>().is_ok() => {
                        Some(Slot::Num { orig: s.parse().unwrap_or(0), quoted: true })
                    }
                    Value::String(s) if ID_KEYS.contains(&k.as_str()) && !s.is_empty() => Some(match hex_run(s) {
                        Some(i) => Slot::HexId { prefix: s[..i].to_string(), suffix: s[i + 8..].to_string() },
                        None => Slot::AppendId(s.clone()),
                    }),
                    Value::Number(x) if NUM_KEYS.contains(&k.as_str()) && x.is_i64() => {
                        Some(Slot::Num { orig: x.as_i64().unwrap_or(0), quoted: false })
                    }
                    _ => None,
                };
                match slot {
                    Some(slot) => {
                        *v = Value::String(marker(slots.len()));
                        slots.push(slot);
                    }
                    None => collect(v, slots),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| collect(v, slots)),
        _ => {}
    }
}

/// A fixture ready to render into requests.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// `<vendor dir>/<file>`.
    pub name: String,
    /// The vendor to name in the request (`Unspecified` to detect).
    pub vendor: pb::Vendor,
    /// The request's `vendor_event_type`.
    pub vendor_event_type: String,
    template: Template,
}

impl Fixture {
    /// The payload bytes for counter `n`.
    pub fn payload(&self, n: u64) -> bytes::Bytes {
        let mut s = String::with_capacity(self.template.segments.iter().map(String::len).sum::<usize>() + 128);
        self.template.render(n, &mut s);
        bytes::Bytes::from(s)
    }

    /// The Ingest request for counter `n`.
    pub fn request(&self, n: u64) -> pb::IngestRequest {
        pb::IngestRequest {
            vendor: self.vendor as i32,
            payload: self.payload(n),
            vendor_event_type: self.vendor_event_type.clone(),
            ..Default::default()
        }
    }
}

/// The vendor whose fixtures live in `dir` (directories are named by
/// [`Vendor::label`]).
fn vendor_of_dir(dir: &str) -> Option<pb::Vendor> {
    let vendor = Vendor::ALL.iter().find(|v| v.label() == dir)?;
    pb::Vendor::try_from(vendor.number()).ok()
}

/// Every fixture under `root` whose golden outcome is `accepted`, sorted by
/// name.
pub fn load(root: &Path) -> anyhow::Result<Vec<Fixture>> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    for dir in dirs {
        let Some(dir_name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        let Some(vendor) = vendor_of_dir(&dir_name) else { continue };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().ends_with(".expected.json"))
            .collect();
        files.sort();
        for file in files {
            let golden: Value = match std::fs::read(file.with_extension("expected.json")) {
                Ok(b) => serde_json::from_slice(&b)?,
                Err(_) => continue,
            };
            if golden.pointer("/expected/outcome").and_then(Value::as_str) != Some("accepted") {
                continue;
            }
            let request = golden.get("request").cloned().unwrap_or(Value::Null);
            let detect = request.get("detect").and_then(Value::as_bool).unwrap_or(false);
            let value: Value = serde_json::from_slice(&std::fs::read(&file)?)?;
            out.push(Fixture {
                name: format!("{dir_name}/{}", file.file_name().and_then(|n| n.to_str()).unwrap_or("?")),
                vendor: if detect { pb::Vendor::Unspecified } else { vendor },
                vendor_event_type: request.get("vendor_event_type").and_then(Value::as_str).unwrap_or("").into(),
                template: Template::new(value),
            });
        }
    }
    anyhow::ensure!(!out.is_empty(), "no accepted fixtures under {}", root.display());
    Ok(out)
}

/// The fixtures in the order requests use them: round-robin over vendors,
/// so every window mixes all four.
pub fn interleave(fixtures: Vec<Fixture>) -> Vec<Fixture> {
    let mut by_vendor: Vec<Vec<Fixture>> = Vec::new();
    for f in fixtures {
        let dir = f.name.split('/').next().unwrap_or("").to_string();
        match by_vendor.iter_mut().find(|v| v[0].name.starts_with(&format!("{dir}/"))) {
            Some(v) => v.push(f),
            None => by_vendor.push(vec![f]),
        }
    }
    let longest = by_vendor.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..longest {
        for v in &by_vendor {
            out.push(v[i % v.len()].clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_distinct_ids_and_keeps_json_valid() {
        let v = serde_json::json!({"type": "callstarted", "detail": {"callId": "4f1c2a9e-5b7d-4e3a-9c61-2d8b0e7f3a14", "participant": "+1 (415) 555-0132"}});
        let t = Template::new(v);
        let (mut a, mut b) = (String::new(), String::new());
        t.render(1, &mut a);
        t.render(2, &mut b);
        assert_ne!(a, b);
        let a: Value = serde_json::from_str(&a).unwrap();
        assert_eq!(a["detail"]["callId"], "00000001-5b7d-4e3a-9c61-2d8b0e7f3a14");
        assert_eq!(a["detail"]["participant"], "+1 (415) 200-0001");
    }
}
