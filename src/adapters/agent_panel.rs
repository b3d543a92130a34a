//! 8x8 agent panel ("mashell", Maestro SDK) events: `{eventType, status, data}`
//! objects that the embedded 8x8 Contact Center (CC) or Work/Engage (UC)
//! panel posts to the host page with `window.postMessage`, forwarded to us by
//! a relay in that page.
//!
//! Quirks this adapter absorbs (vendors.md §1):
//! * `eventType` is `mashell-<media>-<step>-<product>-event-v1`, while the doc
//!   pages are titled `<media>-<step>-<product>-v1`; both spellings are read,
//!   case-insensitively, and reported in the first form. `<media>` itself may
//!   contain a hyphen (`voice-phone`, `chat-nextgen`).
//! * `data.eventName` repeats the step; a payload whose two names disagree is
//!   contradictory and rejected.
//! * `status: "failed"` envelopes are the panel's own schema-validation
//!   reports (`UNSUPPORTED_SCHEMA_VERSION`, `INVALID_SCHEMA` with
//!   `errorDescription[]`), not call transitions: IGNORED. Chat, chat-nextgen
//!   (SMS, WhatsApp) and email interactions are IGNORED as non-voice media.
//! * Times are epoch-millisecond *strings* and there is no event time. Only
//!   `completed` (and UC `terminated`, UC having no wrap-up) take `endTime`
//!   as their time, because they fire when the call ends; CC `terminated`
//!   fires after wrap-up, so its `endTime` is the call's end, not the
//!   event's, and the event keeps the bridge or server receive time.
//! * `callDuration` is documented as seconds and sampled as `"00:00:22"`
//!   while `endTime - startTime` is 29 s; both forms are read and the value
//!   is kept as the vendor's `duration`, apart from the talk time the state
//!   machine computes.
//! * `schemaVersion` is required by the docs but missing from every sample:
//!   tolerated, and kept in `attributes` when present (with `method`).
//!
//! # Correlation (no call id)
//!
//! The panel sends no call or interaction id, only `searchContext` (the
//! customer's number, or the text of a manual search), `direction` and, from
//! `completed` on (from `offered` on in UC), `startTime`. Each event names its
//! call as [`CallRef::Correlate`] with the key `8x8ap|<E.164 or raw
//! searchContext>|<direction>` (voicemails append `|voicemail`, so a voicemail
//! left after an unanswered call never merges into that call) and `startTime`
//! when present. The ingest plan (`plan::correlate`) then applies its
//! rule to the latest call with that key:
//! 1. event and call both know the start time: same call exactly when equal.
//!    UC `offered`/`accepted`/`terminated` and CC `completed`/`terminated`
//!    after `completed` all meet here; a second UC call to the same number
//!    has another `startTime` and becomes another call.
//! 2. otherwise an open call that had news within the correlation window and
//!    that the event does not move backwards is the event's call. CC
//!    `offered` and `accepted` carry no time, so `accepted` joins the ringing
//!    call and `completed` joins the connected one (and gives it its
//!    `startTime`); a CC `offered` for a number whose previous call is ended
//!    or in wrap-up starts a new call.
//! 3. anything else starts a new call named by the key and the start time
//!    (or the receive time).
//!
//! With `IngestRequest.agent_id` (the relay's logged-in agent) the key gains
//! `|agent:<id>`, and every event names that agent (agent id and AGENT
//! party): one caller on two agents' panels is two calls, one per agent.
//! Rule 2 does not simply take the newest open call when the event has a
//! `startTime` (`completed`): of the open calls it prefers the one whose
//! start (or, without one, first receive time) is nearest that `startTime`
//! (see `plan::correlate`).
//!
//! A `callRecording` URL is emitted as RECORDING_READY after the event's
//! lifecycle step, the first time it appears on the call; `lastTclCodeShort`
//! / `lastTclCodeDesc` are the agent's wrap-up code (code and label) on the
//! call and the agent's party.
//!
//! A manual search in the panel also fires `offered`: it opens a RINGING
//! call with no start time that nothing ends. A real `offered` for the same
//! number and direction within the window reuses that call (the repeated
//! RINGING is reported as a duplicate), so the real call's lifecycle then
//! proceeds on it; a search never followed by a call stays RINGING.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::lenient::{opt_bool, opt_duration, opt_epoch_millis, opt_text};
use super::{Adapter, AdapterError, FieldViolation, NormalizeContext, from_value, required_object, required_text};
use crate::domain::identity::canonical_json_hash;
use crate::domain::{
    CallFacts, CallRef, Correlation, Detail, Direction, EventDraft, EventType, Identity, Media, Normalized, Party,
    PartyRole, Recording, RecordingState, Vendor, WrapUpCode,
};

/// The interaction media named in `eventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PanelMedia {
    /// `voice-phone`: a phone call.
    VoicePhone,
    /// `voicemail`: a voicemail handled as an interaction.
    Voicemail,
    /// `chat`: web chat.
    Chat,
    /// `chat-nextgen`: SMS or WhatsApp.
    ChatNextgen,
    /// `email`.
    Email,
}

impl PanelMedia {
    const ALL: [PanelMedia; 5] =
        [PanelMedia::VoicePhone, PanelMedia::Voicemail, PanelMedia::Chat, PanelMedia::ChatNextgen, PanelMedia::Email];

    /// The spelling in `eventType`.
    fn slug(self) -> &'static str {
        match self {
            PanelMedia::VoicePhone => "voice-phone",
            PanelMedia::Voicemail => "voicemail",
            PanelMedia::Chat => "chat",
            PanelMedia::ChatNextgen => "chat-nextgen",
            PanelMedia::Email => "email",
        }
    }

    /// The value `data.media` must have for a voice media, and the
    /// canonical media.
    fn voice(self) -> Option<(&'static str, Media)> {
        match self {
            PanelMedia::VoicePhone => Some(("phone", Media::Voice)),
            PanelMedia::Voicemail => Some(("voicemail", Media::Voicemail)),
            PanelMedia::Chat | PanelMedia::ChatNextgen | PanelMedia::Email => None,
        }
    }
}

/// The lifecycle step named in `eventType` and `data.eventName`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Offered,
    Accepted,
    Completed,
    Terminated,
}

impl Step {
    const ALL: [Step; 4] = [Step::Offered, Step::Accepted, Step::Completed, Step::Terminated];

    fn name(self) -> &'static str {
        match self {
            Step::Offered => "offered",
            Step::Accepted => "accepted",
            Step::Completed => "completed",
            Step::Terminated => "terminated",
        }
    }
}

/// The 8x8 product whose panel sent the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Product {
    /// 8x8 Contact Center: has a wrap-up (`completed` then `terminated`).
    Cc,
    /// 8x8 Work / Engage: no wrap-up, `terminated` is the call's end.
    Uc,
}

impl Product {
    fn name(self) -> &'static str {
        match self {
            Product::Cc => "cc",
            Product::Uc => "uc",
        }
    }
}

/// `eventType` taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EventKind {
    media: PanelMedia,
    step: Step,
    product: Product,
    /// The schema major version (`-v1`).
    version: u32,
}

/// Parses either spelling of an event type, case-insensitively:
/// `mashell-voice-phone-completed-cc-event-v1` (the envelope) or
/// `voice-phone-completed-cc-v1` (the doc title).
fn parse_event_type(raw: &str) -> Option<EventKind> {
    let t = raw.trim().to_ascii_lowercase();
    let t = t.strip_prefix("mashell-").unwrap_or(&t);
    let (rest, version) = t.rsplit_once("-v")?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let version: u32 = version.parse().ok()?;
    let rest = rest.strip_suffix("-event").unwrap_or(rest);
    let (rest, product) = rest.rsplit_once('-')?;
    let product = match product {
        "cc" => Product::Cc,
        "uc" => Product::Uc,
        _ => return None,
    };
    let (media, step) = rest.rsplit_once('-')?;
    let step = Step::ALL.into_iter().find(|s| s.name() == step)?;
    let media = PanelMedia::ALL.into_iter().find(|m| m.slug() == media)?;
    Some(EventKind { media, step, product, version })
}

/// Which `data` fields feed the call facts of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Facts {
    /// `startTime` (present in UC `offered`/`accepted`, absent in CC).
    Contact,
    /// `startTime`, `endTime`, `callDuration`, `callRecording`/`hasRecording`,
    /// `additionalData.{notes, disposition_code, lastTclCodeShort,
    /// lastTclCodeDesc}`.
    Call,
}

/// Which time an event takes as `occurred_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    /// None given: the bridge's or the server's receive time.
    Received,
    /// `endTime`: the event fires when the call ends.
    EndTime,
}

/// What a row produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// These canonical events, in order.
    Emit(&'static [EventType], Facts, When),
    /// Nothing: acknowledged as IGNORED with this reason.
    Ignore(&'static str),
}

/// One row of the mapping table.
struct Row {
    /// The envelope spelling of the event type.
    event_type: &'static str,
    media: PanelMedia,
    step: Step,
    product: Product,
    action: Action,
}

const OFFERED: Action = Action::Emit(&[EventType::CallOffered], Facts::Contact, When::Received);
const ACCEPTED: Action = Action::Emit(&[EventType::CallConnected], Facts::Contact, When::Received);
const COMPLETED: Action = Action::Emit(&[EventType::WrapUpStarted], Facts::Call, When::EndTime);
const TERMINATED_CC: Action =
    Action::Emit(&[EventType::WrapUpEnded, EventType::CallEnded], Facts::Call, When::Received);
const TERMINATED_UC: Action = Action::Emit(&[EventType::CallEnded], Facts::Call, When::EndTime);
const NON_VOICE: Action = Action::Ignore("non-voice media");

const fn row(event_type: &'static str, media: PanelMedia, step: Step, product: Product, action: Action) -> Row {
    Row { event_type, media, step, product, action }
}

use PanelMedia::{Chat, ChatNextgen, Email, VoicePhone, Voicemail};
use Product::{Cc, Uc};
use Step::{Accepted, Completed, Offered, Terminated};

/// MAPPING: every documented panel event (schema 1.0.0, 21 events) →
/// canonical events, which `data` fields feed the call facts, and the event
/// time. Every voice row also maps, from `data`:
/// `eventId` → identity `8x8ap:<eventId>`; `searchContext` → the customer
/// party (number with E.164, or search text as display name) and the
/// correlation key; `direction` → direction; `callingName` (voicemail) → the
/// customer's display name; `method`, `schemaVersion`, `hasRecording`,
/// `lastTclCodeShort`, `lastTclCodeDesc` → attributes. Call facts:
/// `startTime` → started_at, `endTime` → ended_at, `callDuration` →
/// duration, `callRecording` → recording READY + url (`hasRecording: false`
/// → NONE), `additionalData.notes` → notes, `additionalData.disposition_code`
/// → disposition.
const MAPPING: &[Row] = &[
    row("mashell-voice-phone-offered-cc-event-v1", VoicePhone, Offered, Cc, OFFERED),
    row("mashell-voice-phone-accepted-cc-event-v1", VoicePhone, Accepted, Cc, ACCEPTED),
    row("mashell-voice-phone-completed-cc-event-v1", VoicePhone, Completed, Cc, COMPLETED),
    row("mashell-voice-phone-terminated-cc-event-v1", VoicePhone, Terminated, Cc, TERMINATED_CC),
    row("mashell-voice-phone-offered-uc-event-v1", VoicePhone, Offered, Uc, OFFERED),
    row("mashell-voice-phone-accepted-uc-event-v1", VoicePhone, Accepted, Uc, ACCEPTED),
    row("mashell-voice-phone-terminated-uc-event-v1", VoicePhone, Terminated, Uc, TERMINATED_UC),
    row("mashell-voicemail-offered-cc-event-v1", Voicemail, Offered, Cc, OFFERED),
    row("mashell-voicemail-accepted-cc-event-v1", Voicemail, Accepted, Cc, ACCEPTED),
    row("mashell-voicemail-completed-cc-event-v1", Voicemail, Completed, Cc, COMPLETED),
    row("mashell-voicemail-terminated-cc-event-v1", Voicemail, Terminated, Cc, TERMINATED_CC),
    row("mashell-chat-offered-cc-event-v1", Chat, Offered, Cc, NON_VOICE),
    row("mashell-chat-accepted-cc-event-v1", Chat, Accepted, Cc, NON_VOICE),
    row("mashell-chat-completed-cc-event-v1", Chat, Completed, Cc, NON_VOICE),
    row("mashell-chat-terminated-cc-event-v1", Chat, Terminated, Cc, NON_VOICE),
    row("mashell-chat-nextgen-offered-cc-event-v1", ChatNextgen, Offered, Cc, NON_VOICE),
    row("mashell-chat-nextgen-accepted-cc-event-v1", ChatNextgen, Accepted, Cc, NON_VOICE),
    row("mashell-chat-nextgen-completed-cc-event-v1", ChatNextgen, Completed, Cc, NON_VOICE),
    row("mashell-chat-nextgen-terminated-cc-event-v1", ChatNextgen, Terminated, Cc, NON_VOICE),
    row("mashell-email-accepted-cc-event-v1", Email, Accepted, Cc, NON_VOICE),
    row("mashell-email-terminated-cc-event-v1", Email, Terminated, Cc, NON_VOICE),
];

/// The mapping row of a parsed event type (schema version 1 only).
fn lookup(kind: EventKind) -> Option<&'static Row> {
    if kind.version != 1 {
        return None;
    }
    MAPPING.iter().find(|r| r.media == kind.media && r.step == kind.step && r.product == kind.product)
}

/// The union of the voice and voicemail `data` fields.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Data {
    #[serde(default, deserialize_with = "opt_text")]
    event_name: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    event_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    method: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    direction: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    media: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    search_context: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    calling_name: Option<String>,
    #[serde(default, deserialize_with = "opt_epoch_millis")]
    start_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_epoch_millis")]
    end_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_duration")]
    call_duration: Option<Duration>,
    #[serde(default, deserialize_with = "opt_text")]
    call_recording: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    has_recording: Option<bool>,
    #[serde(default)]
    additional_data: Option<AdditionalData>,
    #[serde(default, deserialize_with = "opt_text")]
    schema_version: Option<String>,
}

/// `data.additionalData` of `completed` (notes) and `terminated` (wrap-up).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AdditionalData {
    #[serde(default, rename = "disposition_code", alias = "dispositionCode", deserialize_with = "opt_text")]
    disposition_code: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    last_tcl_code_short: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    last_tcl_code_desc: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    notes: Option<String>,
}

/// The 8x8 agent panel adapter. Stateless: correlation happens in the
/// ingest plan (`plan::correlate`), from the key this adapter builds.
pub struct AgentPanel;

/// `data.direction` → direction; the docs' placeholder `inbound/outbound`
/// and anything else is an error, since guessing would file the call under
/// the wrong correlation key.
fn direction(raw: &str) -> Option<Direction> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "inbound" => Some(Direction::Inbound),
        "outbound" => Some(Direction::Outbound),
        _ => None,
    }
}

/// The identity of a payload: `8x8ap:<data.eventId>`, else its content hash.
fn identity_of(payload: &Value) -> Identity {
    match payload.pointer("/data/eventId").map(super::lenient::flatten) {
        Some(id) if !id.trim().is_empty() => Identity::VendorId(["8x8ap:", id.trim()].concat()),
        _ => Identity::ContentHash(canonical_json_hash(payload)),
    }
}

/// Why a `status: "failed"` envelope is ignored, naming `data.error` and
/// the panel's own validation messages.
fn failure_reason(data: &Value) -> String {
    let text = |v: Option<&Value>| v.map(super::lenient::flatten).unwrap_or_default();
    let error = text(data.get("error"));
    let error = if error.is_empty() { "<missing>".to_string() } else { error };
    let mut details = Vec::new();
    if let Some(list) = data.get("errorDescription").and_then(Value::as_array) {
        for e in list {
            let path = e
                .get("path")
                .and_then(Value::as_array)
                .map(|p| p.iter().map(super::lenient::flatten).collect::<Vec<_>>().join("."))
                .unwrap_or_default();
            let message = text(e.get("message"));
            details.push(if path.is_empty() { message } else { format!("{path}: {message}") });
        }
    } else {
        let version = text(data.get("schemaVersion"));
        if !version.is_empty() {
            details.push(format!("schemaVersion {version}"));
        }
        if let Some(allowed) = data.get("allowedSchemaVersions").and_then(Value::as_array) {
            let allowed: Vec<String> = allowed.iter().map(super::lenient::flatten).collect();
            details.push(format!("allowed {}", allowed.join(", ")));
        }
    }
    let mut why = format!("the panel's schema validation failed (status \"failed\"): data.error {error}");
    if !details.is_empty() {
        why.push_str(&format!(" ({})", details.join("; ")));
    }
    why
}

/// A recording from `callRecording` / `hasRecording`: a URL means a ready
/// recording (even if `hasRecording` says otherwise); `hasRecording: false`
/// without one means none; `true` without a URL says nothing usable.
fn recording(url: Option<&str>, has: Option<bool>) -> Option<Recording> {
    let is_url = |u: &str| {
        let l = u.to_ascii_lowercase();
        l.starts_with("https://") || l.starts_with("http://")
    };
    match (url, has) {
        (Some(u), _) if is_url(u) => Some(Recording { state: Some(RecordingState::Ready), url: u.to_string() }),
        (_, Some(false)) => Some(Recording { state: Some(RecordingState::None), url: String::new() }),
        _ => None,
    }
}

impl Adapter for AgentPanel {
    fn vendor(&self) -> Vendor {
        Vendor::AgentPanel8x8
    }

    fn shape(&self) -> &'static str {
        "8x8 agent panel {eventType: \"mashell-…\", status, data}"
    }

    fn event_types(&self) -> Vec<&'static str> {
        MAPPING.iter().map(|r| r.event_type).collect()
    }

    fn detect(&self, payload: &Value, _: Option<&str>) -> bool {
        let Some(t) = payload.get("eventType").and_then(Value::as_str) else {
            return false;
        };
        // The `mashell-` prefix is unmistakable; the bare doc-title spelling
        // must also parse and come in the envelope.
        t.trim().to_ascii_lowercase().starts_with("mashell-")
            || (parse_event_type(t).is_some() && payload.get("data").is_some_and(Value::is_object))
    }

    fn normalize(&self, payload: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, AdapterError> {
        let vendor = Vendor::AgentPanel8x8;
        let env = envelope(payload)?;
        let kind = parse_event_type(&env.raw_type);
        let row = kind.and_then(lookup);
        let vendor_event_type = row.map_or(env.raw_type.clone(), |r| r.event_type.to_string());
        let identity = identity_of(payload);
        if env.failed {
            return Ok(Normalized::ignored(vendor, vendor_event_type, failure_reason(env.data), identity));
        }
        let Some(row) = row else {
            let why = match kind {
                Some(k) if k.media.voice().is_none() => "non-voice media".to_string(),
                _ => format!("unknown 8x8 agent panel event type {:?}", env.raw_type),
            };
            return Ok(Normalized::ignored(vendor, vendor_event_type, why, identity));
        };
        let (types, facts, when) = match row.action {
            Action::Emit(types, facts, when) => (types, facts, when),
            Action::Ignore(why) => {
                let why = format!("{why} ({})", row.media.slug());
                return Ok(Normalized::ignored(vendor, vendor_event_type, why, identity));
            }
        };
        let Some((data_media, media)) = row.media.voice() else {
            return Ok(Normalized::ignored(vendor, vendor_event_type, "non-voice media", identity));
        };
        let d: Data = from_value(env.data, "data")?;
        let (dir, search) = validate(&d, row, &vendor_event_type, data_media)?;
        let agent = ctx.agent_id.filter(|a| !a.is_empty());
        let mut base = base_draft(&d, ctx, Target { dir, search, media, agent, first: types[0] });
        base.attributes.insert("product".into(), row.product.name().into());
        if !env.raw_type.eq_ignore_ascii_case(row.event_type) {
            base.attributes.insert("eventType".into(), env.raw_type.clone());
        }
        base.occurred_at = match when {
            When::Received => None,
            When::EndTime => d.end_time,
        };
        if facts == Facts::Call {
            call_facts(&mut base, d);
        }
        let events = drafts(base, types);
        Ok(Normalized { vendor, vendor_event_type, identity, aliases: Vec::new(), events, ignored: None })
    }
}

/// The envelope every panel event comes in: `{eventType, status, data}`.
struct Envelope<'a> {
    raw_type: String,
    data: &'a Value,
    /// `status: "failed"`: the panel's own validation failed; nothing
    /// happened to a call.
    failed: bool,
}

fn envelope(payload: &Value) -> Result<Envelope<'_>, AdapterError> {
    let raw_type = required_text(payload, "eventType", true)?.to_string();
    let data = required_object(payload, "data")?;
    let failed = match payload.get("status") {
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("success") => false,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("failed") => true,
        Some(other) => {
            return Err(AdapterError::field(
                "status",
                format!("unknown status {other}; expected \"success\" or \"failed\""),
            ));
        }
        None => return Err(AdapterError::field("status", "required (\"success\" or \"failed\")")),
    };
    Ok(Envelope { raw_type, data, failed })
}

/// Checks the fields every voice event needs, naming each one that is
/// missing or contradicts the event type; returns the direction and the
/// customer's number (or search text).
fn validate<'d>(
    d: &'d Data,
    row: &Row,
    vendor_event_type: &str,
    data_media: &str,
) -> Result<(Direction, &'d str), AdapterError> {
    let mut violations = Vec::new();
    match &d.event_name {
        None => violations.push(FieldViolation::new("data.eventName", "required")),
        Some(n) if !n.trim().eq_ignore_ascii_case(row.step.name()) => violations.push(FieldViolation::new(
            "data.eventName",
            format!("is {n:?} but eventType {vendor_event_type:?} is a {:?} event", row.step.name()),
        )),
        Some(_) => {}
    }
    if d.event_id.is_none() {
        violations.push(FieldViolation::new("data.eventId", "required"));
    }
    let dir = match &d.direction {
        None => {
            violations.push(FieldViolation::new("data.direction", "required (\"inbound\" or \"outbound\")"));
            None
        }
        Some(raw) => {
            let dir = direction(raw);
            if dir.is_none() {
                violations.push(FieldViolation::new(
                    "data.direction",
                    format!("unknown direction {raw:?}; expected \"inbound\" or \"outbound\""),
                ));
            }
            dir
        }
    };
    match &d.media {
        None => violations.push(FieldViolation::new("data.media", format!("required ({data_media:?})"))),
        Some(m) if !m.trim().eq_ignore_ascii_case(data_media) => violations.push(FieldViolation::new(
            "data.media",
            format!("is {m:?} but eventType {vendor_event_type:?} is a {data_media:?} event"),
        )),
        Some(_) => {}
    }
    if d.search_context.is_none() {
        violations.push(FieldViolation::new("data.searchContext", "required (the customer's number)"));
    }
    match (dir, d.search_context.as_deref(), violations.is_empty()) {
        (Some(dir), Some(search), true) => Ok((dir, search)),
        _ => Err(AdapterError::Invalid(violations)),
    }
}

/// Whose call an event is: what the correlation key is built from.
struct Target<'a> {
    dir: Direction,
    search: &'a str,
    media: Media,
    /// The relay's logged-in agent.
    agent: Option<&'a str>,
    /// The first event type of the row.
    first: EventType,
}

/// The draft every event of the payload starts from: the correlated call,
/// the customer (and the relay's agent), and the panel's extras.
fn base_draft(d: &Data, ctx: &NormalizeContext<'_>, t: Target<'_>) -> EventDraft {
    let mut customer = ctx.phone.party(t.search, PartyRole::Customer);
    if let Some(name) = &d.calling_name {
        customer.display_name = name.clone();
    }
    let number = if customer.e164.is_empty() { t.search.trim() } else { customer.e164.as_str() };
    let vendor = Vendor::AgentPanel8x8;
    let mut key = format!("{}|{number}|{}", vendor.call_id_prefix(), t.dir.name().to_ascii_lowercase());
    if t.media == Media::Voicemail {
        key.push_str("|voicemail");
    }
    // The relay's logged-in agent: one caller on two agents' panels (a
    // transfer, a shared trunk number) is two agents' calls.
    if let Some(a) = t.agent {
        key.push_str("|agent:");
        key.push_str(a);
    }
    let call = CallRef::Correlate(Correlation { key, started_at: d.start_time });
    let mut base = EventDraft::new(t.first, Some(call));
    base.direction = Some(t.dir);
    base.media = Some(t.media);
    base.parties.push(customer);
    if let Some(a) = t.agent {
        base.agent_id = a.to_string();
        base.parties.push(Party { role: Some(PartyRole::Agent), agent_id: a.to_string(), ..Party::default() });
    }
    if let Some(m) = &d.method {
        base.attributes.insert("method".into(), m.clone());
    }
    if let Some(v) = &d.schema_version {
        base.attributes.insert("schemaVersion".into(), v.clone());
    }
    base.facts.started_at = d.start_time;
    base
}

/// The call-level facts of `completed`/`terminated`: times, duration,
/// recording, disposition, notes and the agent's wrap-up (TCL) code.
fn call_facts(base: &mut EventDraft, d: Data) {
    let extra = d.additional_data.unwrap_or_default();
    base.facts = CallFacts {
        started_at: d.start_time,
        ended_at: d.end_time,
        duration: d.call_duration,
        recording: recording(d.call_recording.as_deref(), d.has_recording),
        disposition: extra.disposition_code,
        notes: extra.notes.into_iter().collect(),
        ..CallFacts::default()
    };
    if let Some(has) = d.has_recording {
        base.attributes.insert("hasRecording".into(), has.to_string());
    }
    if let Some(value) = d.call_recording
        && base.facts.recording.as_ref().is_none_or(|r| r.url != value)
    {
        // Not a URL: keep what the panel said without inventing a recording.
        base.attributes.insert("callRecording".into(), value);
    }
    // The agent's wrap-up (TCL) code: on the call and the agent's party.
    if extra.last_tcl_code_short.is_some() || extra.last_tcl_code_desc.is_some() {
        base.facts.wrap_up_codes = vec![WrapUpCode {
            code: extra.last_tcl_code_short.clone().unwrap_or_default(),
            label: extra.last_tcl_code_desc.clone().unwrap_or_default(),
        }];
    }
    if let Some(s) = extra.last_tcl_code_short {
        base.attributes.insert("lastTclCodeShort".into(), s);
    }
    if let Some(s) = extra.last_tcl_code_desc {
        base.attributes.insert("lastTclCodeDesc".into(), s);
    }
}

/// One draft per event type of the row, then a `RECORDING_READY` when the
/// payload names a recording URL (the state machine drops it once the call
/// already has that recording ready: only its first appearance is news).
fn drafts(mut base: EventDraft, types: &[EventType]) -> Vec<EventDraft> {
    let ready = match &base.facts.recording {
        Some(r) if r.state == Some(RecordingState::Ready) && !r.url.is_empty() => base.facts.recording.take(),
        _ => None,
    };
    let mut events: Vec<EventDraft> = types
        .iter()
        .map(|t| {
            let mut e = base.clone();
            e.event_type = *t;
            e
        })
        .collect();
    if let Some(r) = ready {
        base.event_type = EventType::RecordingReady;
        base.detail = Some(Detail::Recording(r));
        events.push(base);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::PhoneNormalizer;
    use serde_json::json;

    fn norm(v: Value) -> Result<Normalized, AdapterError> {
        let phone = PhoneNormalizer::new("US").unwrap();
        AgentPanel.normalize(&v, &NormalizeContext::new(None, &phone))
    }

    fn envelope(event_type: &str, data: Value) -> Value {
        json!({"eventType": event_type, "status": "success", "data": data})
    }

    fn voice(step: &str, extra: Value) -> Value {
        let mut data = json!({
            "eventName": step,
            "eventId": format!("ev-{step}"),
            "method": "mapEvent",
            "direction": "inbound",
            "media": "phone",
            "searchContext": "+14155550132",
        });
        if let (Some(d), Some(x)) = (data.as_object_mut(), extra.as_object()) {
            d.extend(x.clone());
        }
        data
    }

    fn fields(err: &AdapterError) -> Vec<String> {
        err.violations().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn both_spellings_of_an_event_type_parse_case_insensitively() {
        let envelope = parse_event_type("mashell-voice-phone-completed-cc-event-v1").unwrap();
        assert_eq!(envelope, parse_event_type("voice-phone-completed-cc-v1").unwrap());
        assert_eq!(envelope, parse_event_type("MASHELL-Voice-Phone-Completed-CC-Event-V1").unwrap());
        assert_eq!((envelope.media, envelope.step, envelope.product), (VoicePhone, Completed, Cc));
        let nextgen = parse_event_type("mashell-chat-nextgen-terminated-cc-event-v1").unwrap();
        assert_eq!((nextgen.media, nextgen.step), (ChatNextgen, Terminated));
        for bad in [
            "mashell-voice-phone-ringing-cc-event-v1",
            "voice-phone-completed-xx-v1",
            "mashell-fax-offered-cc-event-v1",
            "completed",
            "voice-phone-completed-cc-vx",
        ] {
            assert_eq!(parse_event_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_documented_event_has_exactly_one_mapping_row_matching_its_name() {
        assert_eq!(MAPPING.len(), 21);
        for r in MAPPING {
            let kind = parse_event_type(r.event_type).unwrap_or_else(|| panic!("{} does not parse", r.event_type));
            let found = lookup(kind).expect("row found");
            assert_eq!(found.event_type, r.event_type);
            assert_eq!(MAPPING.iter().filter(|o| o.event_type == r.event_type).count(), 1);
            let emits = matches!(r.action, Action::Emit(..));
            assert_eq!(emits, r.media.voice().is_some(), "{}: only voice media emit events", r.event_type);
        }
        assert!(lookup(parse_event_type("voice-phone-completed-uc-v1").unwrap()).is_none(), "UC has no completed");
    }

    #[test]
    fn cc_offered_is_a_ringing_offer_correlated_by_number_and_direction_without_a_start_time() {
        let n = norm(envelope("mashell-voice-phone-offered-cc-event-v1", voice("offered", json!({})))).unwrap();
        assert_eq!(n.identity, Identity::VendorId("8x8ap:ev-offered".into()));
        let e = &n.events[0];
        assert_eq!(e.event_type, EventType::CallOffered);
        assert_eq!(
            e.call,
            Some(CallRef::Correlate(Correlation { key: "8x8ap|+14155550132|inbound".into(), started_at: None }))
        );
        assert_eq!(e.occurred_at, None);
        assert_eq!(e.parties[0].e164, "+14155550132");
        assert_eq!(e.media, Some(Media::Voice));
    }

    #[test]
    fn completed_starts_wrap_up_at_the_end_time_with_the_call_facts() {
        let data = voice(
            "completed",
            json!({"startTime": "1751445666638", "endTime": "1751445695892", "callDuration": "00:00:22",
                   "callRecording": "https://vcc-na12.8x8.com/rec/abc.wav", "hasRecording": true,
                   "additionalData": {"notes": "asked about invoice"}}),
        );
        let n = norm(envelope("mashell-voice-phone-completed-cc-event-v1", data)).unwrap();
        let e = &n.events[0];
        assert_eq!(e.event_type, EventType::WrapUpStarted);
        assert_eq!(e.occurred_at.unwrap().timestamp_millis(), 1_751_445_695_892);
        assert_eq!(e.facts.started_at.unwrap().timestamp_millis(), 1_751_445_666_638);
        assert_eq!(e.facts.duration, Some(Duration::from_secs(22)));
        assert_eq!(e.facts.notes, vec!["asked about invoice".to_string()]);
        // The recording URL is a RECORDING_READY event of its own, after the wrap-up (issue 11).
        assert_eq!(n.events.len(), 2);
        assert_eq!(n.events[1].event_type, EventType::RecordingReady);
        assert!(matches!(&n.events[1].detail, Some(Detail::Recording(r))
            if r.state == Some(RecordingState::Ready) && r.url == "https://vcc-na12.8x8.com/rec/abc.wav"));
        let Some(CallRef::Correlate(c)) = &e.call else { panic!("correlated") };
        assert_eq!(c.started_at, e.facts.started_at);
    }

    #[test]
    fn cc_terminated_ends_wrap_up_then_the_call_and_uc_terminated_only_ends_the_call() {
        let data = voice(
            "terminated",
            json!({"startTime": "1751445666638", "endTime": "1751445695892", "callDuration": 22,
                   "hasRecording": "false", "additionalData": {"disposition_code": 1000, "notes": ""}}),
        );
        let cc = norm(envelope("mashell-voice-phone-terminated-cc-event-v1", data.clone())).unwrap();
        let types: Vec<EventType> = cc.events.iter().map(|e| e.event_type).collect();
        assert_eq!(types, vec![EventType::WrapUpEnded, EventType::CallEnded]);
        assert_eq!(cc.events[1].facts.disposition.as_deref(), Some("1000"));
        assert!(cc.events[1].facts.notes.is_empty(), "blank notes are dropped");
        assert_eq!(cc.events[1].facts.recording.as_ref().and_then(|r| r.state), Some(RecordingState::None));
        assert_eq!(cc.events[1].occurred_at, None, "CC terminated fires after wrap-up, not at endTime");
        let uc = norm(envelope("mashell-voice-phone-terminated-uc-event-v1", data)).unwrap();
        assert_eq!(uc.events.len(), 1);
        assert_eq!(uc.events[0].event_type, EventType::CallEnded);
        assert_eq!(uc.events[0].occurred_at.unwrap().timestamp_millis(), 1_751_445_695_892);
    }

    #[test]
    fn an_event_name_that_contradicts_the_event_type_is_rejected() {
        let err =
            norm(envelope("mashell-voice-phone-completed-cc-event-v1", voice("accepted", json!({})))).unwrap_err();
        assert_eq!(fields(&err), vec!["data.eventName"]);
    }

    #[test]
    fn the_placeholder_direction_is_rejected_naming_data_direction() {
        let data = voice("offered", json!({"direction": "inbound/outbound"}));
        let err = norm(envelope("mashell-voice-phone-offered-cc-event-v1", data)).unwrap_err();
        assert_eq!(fields(&err), vec!["data.direction"]);
        let upper = voice("offered", json!({"direction": "OUTBOUND"}));
        let n = norm(envelope("mashell-voice-phone-offered-cc-event-v1", upper)).unwrap();
        assert_eq!(n.events[0].direction, Some(Direction::Outbound));
    }

    #[test]
    fn every_missing_required_field_is_reported_at_once() {
        let err = norm(envelope("mashell-voice-phone-offered-cc-event-v1", json!({"method": "mapEvent"}))).unwrap_err();
        assert_eq!(
            fields(&err),
            vec!["data.eventName", "data.eventId", "data.direction", "data.media", "data.searchContext"]
        );
    }

    #[test]
    fn a_malformed_time_names_its_field() {
        let data = voice("completed", json!({"startTime": "yesterday"}));
        let err = norm(envelope("mashell-voice-phone-completed-cc-event-v1", data)).unwrap_err();
        assert_eq!(fields(&err), vec!["data.startTime"]);
    }

    #[test]
    fn failed_envelopes_are_ignored_naming_the_panel_error() {
        let failed = json!({"eventType": "mashell-voice-phone-terminated-cc-event-v1", "status": "failed",
            "data": {"eventName": "dummyEventName", "error": "INVALID_SCHEMA", "schemaVersion": "1.0.0",
                     "errorDescription": [{"code": "invalid_literal", "path": ["eventName"],
                                           "message": "Invalid literal value, expected 'terminated'"}]}});
        let n = norm(failed).unwrap();
        let why = n.ignored.unwrap();
        assert!(why.contains("INVALID_SCHEMA") && why.contains("eventName: Invalid literal"), "{why}");
        assert!(n.identity.is_content_hash());
    }

    #[test]
    fn chat_and_email_are_ignored_as_non_voice_media() {
        for t in
            ["mashell-chat-offered-cc-event-v1", "mashell-email-accepted-cc-event-v1", "chat-nextgen-offered-cc-v1"]
        {
            let n = norm(envelope(t, json!({"eventName": "offered", "media": "chat"}))).unwrap();
            assert!(n.ignored.as_deref().is_some_and(|w| w.starts_with("non-voice media")), "{t}");
        }
    }

    #[test]
    fn unknown_event_types_and_versions_are_ignored() {
        let n = norm(envelope("mashell-voice-phone-completed-cc-event-v2", voice("completed", json!({})))).unwrap();
        assert!(n.ignored.is_some());
        let n = norm(envelope("mashell-screen-share-started-v1", json!({}))).unwrap();
        assert!(n.ignored.is_some());
    }

    #[test]
    fn a_voicemail_names_the_caller_and_keeps_its_own_correlation_key() {
        let mut data = voice("offered", json!({"callingName": "Jon Doe"}));
        data["media"] = json!("voicemail");
        let n = norm(envelope("mashell-voicemail-offered-cc-event-v1", data)).unwrap();
        let e = &n.events[0];
        assert_eq!(e.media, Some(Media::Voicemail));
        assert_eq!(e.parties[0].display_name, "Jon Doe");
        let Some(CallRef::Correlate(c)) = &e.call else { panic!("correlated") };
        assert_eq!(c.key, "8x8ap|+14155550132|inbound|voicemail");
    }

    #[test]
    fn a_manual_search_text_becomes_a_display_name_and_the_key() {
        let data = voice("offered", json!({"searchContext": "Acme Corp", "direction": "outbound"}));
        let n = norm(envelope("voice-phone-offered-uc-v1", data)).unwrap();
        let e = &n.events[0];
        assert_eq!(e.parties[0].display_name, "Acme Corp");
        let Some(CallRef::Correlate(c)) = &e.call else { panic!("correlated") };
        assert_eq!(c.key, "8x8ap|Acme Corp|outbound");
        assert_eq!(n.vendor_event_type, "mashell-voice-phone-offered-uc-event-v1");
        assert_eq!(e.attributes.get("eventType").map(String::as_str), Some("voice-phone-offered-uc-v1"));
    }

    #[test]
    fn a_missing_schema_version_is_tolerated_and_a_present_one_kept() {
        let n = norm(envelope("mashell-voice-phone-accepted-cc-event-v1", voice("accepted", json!({})))).unwrap();
        assert!(!n.events[0].attributes.contains_key("schemaVersion"));
        let data = voice("accepted", json!({"schemaVersion": "1.0.0"}));
        let n = norm(envelope("mashell-voice-phone-accepted-cc-event-v1", data)).unwrap();
        assert_eq!(n.events[0].attributes.get("schemaVersion").map(String::as_str), Some("1.0.0"));
        assert_eq!(n.events[0].attributes.get("method").map(String::as_str), Some("mapEvent"));
    }

    #[test]
    fn an_unknown_or_missing_status_is_rejected() {
        let mut v = envelope("mashell-voice-phone-accepted-cc-event-v1", voice("accepted", json!({})));
        v["status"] = json!("pending");
        assert_eq!(fields(&norm(v.clone()).unwrap_err()), vec!["status"]);
        v.as_object_mut().unwrap().remove("status");
        assert_eq!(fields(&norm(v).unwrap_err()), vec!["status"]);
    }

    #[test]
    fn detection_claims_panel_envelopes_and_no_other_vendor_shape() {
        let panel = envelope("mashell-voice-phone-offered-cc-event-v1", json!({}));
        assert!(AgentPanel.detect(&panel, None));
        assert!(AgentPanel.detect(&envelope("voice-phone-offered-cc-v1", json!({})), None));
        for other in [
            json!({"type": "callstarted", "detail": {"callId": "c"}}),
            json!({"notificationType": "CallEvent", "notification": {"callId": "1"}}),
            json!({"messageId": "CAESAA==", "payload": "e30=", "publishTime": "2025-07-02T08:41:06Z"}),
            json!({"Interaction": {"eventType": "InteractionCreated"}}),
            json!({"type": "isEndOfTopic"}),
            json!({"eventType": "InteractionCreated", "data": {}}),
        ] {
            assert!(!AgentPanel.detect(&other, None), "{other}");
        }
    }

    #[test]
    fn a_non_url_recording_is_kept_as_an_attribute_not_a_ready_recording() {
        assert_eq!(recording(Some("pending"), Some(true)), None);
        assert_eq!(recording(None, Some(true)), None);
        let ready = recording(Some("https://x/r.wav"), Some(false)).unwrap();
        assert_eq!(ready.state, Some(RecordingState::Ready));
    }
}
