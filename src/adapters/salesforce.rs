//! Salesforce Service Cloud Voice toolkit telephony events (`{type, detail}`).
//!
//! The LWC toolkit names events in lowercase (`callstarted`), the Aura
//! toolkit in UPPER_SNAKE (`CALL_STARTED`); both are matched after lowering
//! and removing underscores. `detail.callId` is the telephony vendor's call
//! id, which Salesforce calls the conversation id ("for transferred calls,
//! the conversation ID is the primary call ID"), so it is both the call id and
//! the conversation id; each segment's `voiceCallId` is kept as an attribute.
//!
//! Native Telephony has no `callstarted`: a call may begin with
//! `callconnected`; the state machine accepts any first event.
//!
//! **Which rep** (DESIGN §3.6). No toolkit event names the rep; the browser
//! relay does, in `IngestRequest.agent_id`. When it is set, every event gets
//! that agent id and an AGENT party for it; the one-shot natural keys become
//! `sf:<type>:<callId>:<agent>`, because in a rep-to-rep transfer both reps'
//! relays report the same `callId` and the second rep's `callconnected`,
//! `callended` and `wrapupended` are hers, not repeats of the first rep's.
//! `callended` and `wrapupended` are then that rep's step (`party_scope`):
//! the first rep's `callended` while the second rep is on the call is her
//! PARTICIPANT_LEFT, and the call ends with the last rep's `callended`.
//! Without an agent id, events are read as before (one rep per call).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::lenient::{opt_epoch_millis, opt_text, opt_u64};
use super::{Adapter, AdapterError, NormalizeContext, from_value, required_object, required_text};
use crate::domain::identity::canonical_json_hash;
use crate::domain::{
    AudioStats, CallRef, Detail, Direction, EventDraft, EventType, Identity, Normalized, Party, PartyRole, Vendor,
};

/// How a row's identity (dedup key) is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Identify {
    /// One-shot per call: `type` + `callId`.
    Natural,
    /// `detail.id` (transcript, flags, note).
    ByDetailId,
    /// Repeatable state events: hash of the payload.
    Hash,
}

/// Which `detail` fields a row reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fields {
    /// `callId`, `callType` → direction, `participant` → the customer.
    Call,
    /// `callId` only.
    CallId,
    /// `callId`, `participant` → the customer (hold, resume).
    Customer,
    /// `callId`, `participant` → a third party who joined or left.
    Participant,
    /// `id`, timestamps, `content.text`, `sender.role`.
    Transcript,
    /// `id`, timestamps, `content.text`, `sender`, `voiceCallId`.
    Flag,
    /// `id`, timestamps, `content.text`, `sender`.
    Note,
    /// `stats`, packet counters.
    AudioStats,
}

/// One row of the mapping table.
struct Row {
    /// LWC event name (the Aura name is the same in UPPER_SNAKE).
    name: &'static str,
    /// The canonical event.
    canonical: EventType,
    /// Dedup identity.
    id: Identify,
    /// Fields read.
    fields: Fields,
}

/// MAPPING: every Salesforce toolkit telephony event (v67.0, 19 events) →
/// canonical event type, identity, and the detail fields that feed it.
const MAPPING: &[Row] = &[
    Row { name: "callstarted", canonical: EventType::CallStarted, id: Identify::Natural, fields: Fields::Call },
    Row { name: "callconnected", canonical: EventType::CallConnected, id: Identify::Natural, fields: Fields::Call },
    Row { name: "callended", canonical: EventType::CallEnded, id: Identify::Natural, fields: Fields::CallId },
    Row { name: "hold", canonical: EventType::CallHeld, id: Identify::Hash, fields: Fields::Customer },
    Row { name: "resume", canonical: EventType::CallResumed, id: Identify::Hash, fields: Fields::Customer },
    Row { name: "mute", canonical: EventType::CallMuted, id: Identify::Hash, fields: Fields::CallId },
    Row { name: "unmute", canonical: EventType::CallUnmuted, id: Identify::Hash, fields: Fields::CallId },
    Row {
        name: "participantadded",
        canonical: EventType::ParticipantJoined,
        id: Identify::Hash,
        fields: Fields::Participant,
    },
    Row {
        name: "participantremoved",
        canonical: EventType::ParticipantLeft,
        id: Identify::Hash,
        fields: Fields::Participant,
    },
    Row { name: "conference", canonical: EventType::ConferenceStarted, id: Identify::Hash, fields: Fields::CallId },
    Row { name: "swap", canonical: EventType::ParticipantsSwapped, id: Identify::Hash, fields: Fields::CallId },
    Row { name: "pauserecording", canonical: EventType::RecordingPaused, id: Identify::Hash, fields: Fields::CallId },
    Row { name: "resumerecording", canonical: EventType::RecordingResumed, id: Identify::Hash, fields: Fields::CallId },
    Row { name: "transcript", canonical: EventType::Transcript, id: Identify::ByDetailId, fields: Fields::Transcript },
    Row { name: "wrapupended", canonical: EventType::WrapUpEnded, id: Identify::Natural, fields: Fields::CallId },
    Row { name: "flagraise", canonical: EventType::FlagRaised, id: Identify::ByDetailId, fields: Fields::Flag },
    Row { name: "flaglower", canonical: EventType::FlagLowered, id: Identify::ByDetailId, fields: Fields::Flag },
    Row { name: "note", canonical: EventType::NoteAdded, id: Identify::ByDetailId, fields: Fields::Note },
    Row { name: "audiostats", canonical: EventType::AudioStats, id: Identify::Hash, fields: Fields::AudioStats },
];

/// The union of all `detail` fields.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DetailFields {
    #[serde(default, deserialize_with = "opt_text")]
    call_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    call_type: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    participant: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_epoch_millis")]
    client_sent_timestamp: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_epoch_millis")]
    server_received_timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    sender: Option<Sender>,
    #[serde(default, deserialize_with = "opt_text")]
    voice_call_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Content {
    #[serde(default, deserialize_with = "opt_text")]
    text: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Sender {
    #[serde(default, deserialize_with = "opt_text")]
    role: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    display_name: Option<String>,
}

/// One channel's audio statistics (flat in `detail` or nested per channel).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Stats {
    #[serde(default, deserialize_with = "opt_u64")]
    packets_lost: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    packets_count: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    jitter_buffer_millis: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    round_trip_time_millis: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    stats_count: Option<u64>,
}

/// The Salesforce Voice adapter.
pub struct Salesforce;

fn row(name: &str) -> Option<&'static Row> {
    let key: String = name.chars().filter(|c| *c != '_').collect::<String>().to_ascii_lowercase();
    MAPPING.iter().find(|r| r.name == key)
}

/// `callType` → direction. Connector call types that are not directions
/// (transfer, consult) leave the direction unknown; anything else is wrong.
fn direction(call_type: &str) -> Result<Option<Direction>, ()> {
    match call_type.to_ascii_lowercase().as_str() {
        "inbound" => Ok(Some(Direction::Inbound)),
        "outbound" | "callback" | "dialedcallback" => Ok(Some(Direction::Outbound)),
        "internal" | "internalcall" => Ok(Some(Direction::Internal)),
        "transfer" | "consult" | "addparticipant" => Ok(None),
        _ => Err(()),
    }
}

fn role(s: &str) -> Option<PartyRole> {
    match s.to_ascii_lowercase().replace([' ', '_'], "").as_str() {
        "agent" | "rep" => Some(PartyRole::Agent),
        "supervisor" => Some(PartyRole::Supervisor),
        "customer" | "enduser" | "caller" | "initialcaller" => Some(PartyRole::Customer),
        "system" | "bot" => Some(PartyRole::System),
        "thirdparty" => Some(PartyRole::ThirdParty),
        _ => None,
    }
}

impl Adapter for Salesforce {
    fn vendor(&self) -> Vendor {
        Vendor::SalesforceVoice
    }

    fn shape(&self) -> &'static str {
        "Salesforce Voice {type, detail}"
    }

    fn event_types(&self) -> Vec<&'static str> {
        MAPPING.iter().map(|r| r.name).collect()
    }

    fn detect(&self, payload: &Value, _: Option<&str>) -> bool {
        payload.get("type").is_some_and(Value::is_string) && payload.get("detail").is_some_and(Value::is_object)
    }

    fn normalize(&self, payload: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, AdapterError> {
        let (event_type, detail) = envelope(payload)?;
        let vendor = Vendor::SalesforceVoice;
        let Some(row) = row(&event_type) else {
            let why = format!("unknown Salesforce event type {event_type:?}");
            return Ok(Normalized::ignored(
                vendor,
                event_type,
                why,
                Identity::ContentHash(canonical_json_hash(payload)),
            ));
        };
        let d: DetailFields = from_value(detail, "detail")?;
        let call_id = d.call_id.clone().ok_or_else(|| AdapterError::field("detail.callId", "required"))?;
        let call = [vendor.call_id_prefix(), ":", &call_id].concat();
        let agent = ctx.agent_id.filter(|a| !a.is_empty());
        let identity = match (row.id, &d.id) {
            (Identify::Natural, _) => match agent {
                Some(a) => Identity::Natural(["sf:", row.name, ":", &call_id, ":", a].concat()),
                None => Identity::Natural(["sf:", row.name, ":", &call_id].concat()),
            },
            (Identify::ByDetailId, Some(id)) => Identity::VendorId(["sf:", row.name, ":", id].concat()),
            _ => Identity::ContentHash(canonical_json_hash(payload)),
        };
        let mut base = EventDraft::new(row.canonical, Some(CallRef::Id(call.clone())));
        base.conversation_id = Some(call);
        let rep = agent.map(|a| Party { role: Some(PartyRole::Agent), agent_id: a.to_string(), ..Party::default() });
        if let Some(v) = &d.voice_call_id {
            base.attributes.insert("voiceCallId".into(), v.clone());
        }
        if let Some(ct) = &d.call_type {
            base.attributes.insert("callType".into(), ct.clone());
        }
        let mut events = drafts(row.fields, base, &d, detail, ctx)?;
        if let Some(rep) = rep {
            for e in &mut events {
                e.agent_id = rep.agent_id.clone();
                e.parties.push(rep.clone());
                // The rep's own end and wrap-up end: hers while another rep is
                // on the call.
                if matches!(e.event_type, EventType::CallEnded | EventType::WrapUpEnded) {
                    e.party_scope = Some(rep.clone());
                }
            }
        }
        Ok(Normalized { vendor, vendor_event_type: event_type, identity, aliases: Vec::new(), events, ignored: None })
    }
}

/// The toolkit's `{type, detail}` envelope.
fn envelope(payload: &Value) -> Result<(String, &Value), AdapterError> {
    Ok((required_text(payload, "type", false)?.to_string(), required_object(payload, "detail")?))
}

/// The drafts of one event, by what its row reads from `detail`.
fn drafts(
    fields: Fields,
    mut base: EventDraft,
    d: &DetailFields,
    detail: &Value,
    ctx: &NormalizeContext<'_>,
) -> Result<Vec<EventDraft>, AdapterError> {
    let sent = d.client_sent_timestamp.or(d.server_received_timestamp);
    let text = || d.content.as_ref().and_then(|c| c.text.clone()).unwrap_or_default();
    let sender_name = || d.sender.as_ref().and_then(|s| s.display_name.clone().or(s.role.clone())).unwrap_or_default();
    match fields {
        Fields::Call => {
            if let Some(ct) = &d.call_type {
                base.direction = direction(ct).map_err(|()| {
                    AdapterError::field(
                        "detail.callType",
                        format!("unknown call type {ct:?}; expected \"inbound\" or \"outbound\""),
                    )
                })?;
            }
            if let Some(p) = &d.participant {
                base.parties.push(ctx.phone.party(p, PartyRole::Customer));
            }
        }
        Fields::CallId => {}
        Fields::Customer => {
            if let Some(p) = &d.participant {
                base.parties.push(ctx.phone.party(p, PartyRole::Customer));
            }
        }
        Fields::Participant => {
            let p = d.participant.as_deref().ok_or_else(|| AdapterError::field("detail.participant", "required"))?;
            base.detail = Some(Detail::Participant(ctx.phone.party(p, PartyRole::ThirdParty)));
        }
        Fields::Transcript => {
            base.occurred_at = sent;
            base.detail = Some(Detail::Transcript {
                utterance_id: d.id.clone().unwrap_or_default(),
                text: text(),
                sender_role: d.sender.as_ref().and_then(|s| s.role.as_deref()).and_then(role),
                sent_at: d.client_sent_timestamp,
            });
        }
        Fields::Flag => {
            base.occurred_at = sent;
            base.detail = Some(Detail::Flag { text: text(), raised_by: sender_name() });
        }
        Fields::Note => {
            base.occurred_at = sent;
            base.detail = Some(Detail::Note { text: text(), author: sender_name() });
        }
        Fields::AudioStats => return audio_stats(detail, &base),
    }
    Ok(vec![base])
}

/// `audiostats`: the documentation lists `stats` ("inputChannelStats" or
/// "outputChannelStats") beside flat counters but shows no example, so both
/// that flat layout and a nested `stats: {inputChannelStats: {...}, ...}`
/// are read; the nested form yields one event per channel.
fn audio_stats(detail: &Value, base: &EventDraft) -> Result<Vec<EventDraft>, AdapterError> {
    let event = |channel: String, s: Stats| {
        let mut e = base.clone();
        if let Some(n) = s.stats_count {
            e.attributes.insert("statsCount".into(), n.to_string());
        }
        e.detail = Some(Detail::AudioStats(AudioStats {
            channel,
            packets_lost: s.packets_lost.unwrap_or(0),
            packets_count: s.packets_count.unwrap_or(0),
            jitter_buffer_millis: s.jitter_buffer_millis.unwrap_or(0),
            round_trip_time_millis: s.round_trip_time_millis.unwrap_or(0),
        }));
        e
    };
    match detail.get("stats") {
        Some(Value::Object(channels)) => channels
            .iter()
            .map(|(name, v)| Ok(event(name.clone(), from_value(v, &["detail.stats.", name].concat())?)))
            .collect(),
        Some(Value::String(channel)) => Ok(vec![event(channel.clone(), from_value(detail, "detail")?)]),
        None => Ok(vec![event(String::new(), from_value(detail, "detail")?)]),
        Some(_) => Err(AdapterError::field("detail.stats", "expected a channel name or an object of channels")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::PhoneNormalizer;

    fn norm(json: &str) -> Result<Normalized, AdapterError> {
        let phone = PhoneNormalizer::new("US").unwrap();
        let v: Value = serde_json::from_str(json).unwrap();
        Salesforce.normalize(&v, &NormalizeContext::new(None, &phone))
    }

    #[test]
    fn every_documented_event_has_a_mapping_row_in_both_namings() {
        let lwc = [
            "audiostats",
            "callstarted",
            "callconnected",
            "callended",
            "hold",
            "resume",
            "mute",
            "unmute",
            "participantadded",
            "participantremoved",
            "conference",
            "swap",
            "pauserecording",
            "resumerecording",
            "transcript",
            "wrapupended",
            "flagraise",
            "flaglower",
            "note",
        ];
        assert_eq!(lwc.len(), 19);
        for name in lwc {
            assert!(row(name).is_some(), "{name}");
        }
        for aura in
            ["CALL_STARTED", "PARTICIPANT_ADDED", "WRAP_UP_ENDED", "AUDIO_STATS", "PAUSE_RECORDING", "FLAG_RAISE"]
        {
            assert!(row(aura).is_some(), "{aura}");
        }
    }

    #[test]
    fn callstarted_maps_direction_and_the_customer_number() {
        let n = norm(r#"{"type":"callstarted","detail":{"callId":"d7a9","callType":"outbound","participant":"+1 (415) 999-0000"}}"#).unwrap();
        let e = &n.events[0];
        assert_eq!(e.event_type, EventType::CallStarted);
        assert_eq!(e.call, Some(CallRef::Id("sf:d7a9".into())));
        assert_eq!(e.direction, Some(Direction::Outbound));
        assert_eq!(e.parties[0].e164, "+14159990000");
        assert_eq!(n.identity, Identity::Natural("sf:callstarted:d7a9".into()));
    }

    #[test]
    fn a_missing_call_id_names_the_field() {
        let err = norm(r#"{"type":"hold","detail":{"participant":"x"}}"#).unwrap_err();
        assert_eq!(err.violations()[0].field, "detail.callId");
    }

    #[test]
    fn an_unknown_call_type_is_rejected() {
        let err = norm(r#"{"type":"callstarted","detail":{"callId":"c","callType":"sideways"}}"#).unwrap_err();
        assert_eq!(err.violations()[0].field, "detail.callType");
    }

    #[test]
    fn nested_audio_stats_yield_one_event_per_channel() {
        let n = norm(r#"{"type":"audiostats","detail":{"callId":"c","stats":{"inputChannelStats":{"packetsLost":1,"packetsCount":"100"},"outputChannelStats":{"packetsLost":0,"packetsCount":90}}}}"#).unwrap();
        assert_eq!(n.events.len(), 2);
    }

    #[test]
    fn unknown_event_types_are_ignored_not_rejected() {
        let n = norm(r#"{"type":"callerverified","detail":{"callId":"c"}}"#).unwrap();
        assert!(n.ignored.is_some());
    }
}
