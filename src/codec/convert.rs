//! Domain ⇄ protobuf conversions: the only place the two meet.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use prost::Message;

use crate::codec::proto::v1 as pb;
use crate::domain::{self, Call, CallEvent, Detail, Party};

/// A protobuf timestamp for a domain time.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(timestamp)
}

/// A domain time for a protobuf timestamp; `None` when out of range.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    Utc.timestamp_opt(t.seconds, t.nanos as u32).single()
}

/// The largest `google.protobuf.Duration` (10,000 years).
const MAX_DURATION_SECONDS: u64 = 315_576_000_000;

pub(super) fn duration(d: Duration) -> prost_types::Duration {
    let seconds = d.as_secs().min(MAX_DURATION_SECONDS) as i64;
    prost_types::Duration { seconds, nanos: d.subsec_nanos() as i32 }
}

/// A std duration for a protobuf duration; `None` when negative or invalid.
pub fn from_duration(d: &prost_types::Duration) -> Option<Duration> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return None;
    }
    Some(Duration::new(d.seconds as u64, d.nanos as u32))
}

fn num<T: Copy>(v: Option<T>, f: impl Fn(T) -> i32) -> i32 {
    v.map(f).unwrap_or(0)
}

/// A party on the wire.
pub fn party(p: &Party) -> pb::Party {
    into_party(p.clone())
}

/// [`party`] of a party not needed afterwards: its strings move.
fn into_party(p: Party) -> pb::Party {
    pb::Party {
        role: num(p.role, |r| r.number()),
        state: num(p.state, |s| s.number()),
        joined_at: opt_ts(p.joined_at),
        left_at: opt_ts(p.left_at),
        wrap_up: p.wrap_up.as_ref().map(wrap_up),
        phone_number: p.phone_number,
        e164: p.e164,
        display_name: p.display_name,
        agent_id: p.agent_id,
        user_id: p.user_id,
        party_id: p.party_id,
    }
}

pub(super) fn wrap_up_code(c: &domain::WrapUpCode) -> pb::WrapUpCode {
    pb::WrapUpCode { code: c.code.clone(), label: c.label.clone() }
}

pub(super) fn wrap_up(w: &domain::WrapUp) -> pb::WrapUp {
    pb::WrapUp {
        started_at: opt_ts(w.started_at),
        ended_at: opt_ts(w.ended_at),
        codes: w.codes.iter().map(wrap_up_code).collect(),
        disposition: w.disposition.clone(),
    }
}

pub(super) fn queue_visit(v: &domain::QueueVisit) -> pb::QueueVisit {
    pb::QueueVisit {
        queue_id: v.queue_id.clone(),
        queue_name: v.queue_name.clone(),
        entered_at: opt_ts(v.entered_at),
        left_at: opt_ts(v.left_at),
        result: num(v.result, |r| r.number()),
    }
}

pub(super) fn recording(r: &domain::Recording) -> pb::Recording {
    pb::Recording { state: num(r.state, |s| s.number()), url: r.url.clone() }
}

pub(super) fn detail(d: &Detail) -> pb::call_event::Detail {
    use pb::call_event::Detail as D;
    match d {
        Detail::Ended(e) => D::Ended(pb::EndedDetail {
            outcome: num(e.outcome, |o| o.number()),
            hangup_initiator: num(e.hangup_initiator, |r| r.number()),
            reason: e.reason.clone(),
            duration: e.duration.map(duration),
            talk_duration: e.talk_duration.map(duration),
            disposition: e.disposition.clone(),
        }),
        Detail::Transcript { utterance_id, text, sender_role, sent_at } => D::Transcript(pb::TranscriptDetail {
            utterance_id: utterance_id.clone(),
            text: text.clone(),
            sender_role: num(*sender_role, |r| r.number()),
            sent_at: opt_ts(*sent_at),
        }),
        Detail::Note { text, author } => D::Note(pb::NoteDetail { text: text.clone(), author: author.clone() }),
        Detail::Flag { text, raised_by } => {
            D::Flag(pb::FlagDetail { text: text.clone(), raised_by: raised_by.clone() })
        }
        Detail::Recording(r) => D::Recording(recording(r)),
        Detail::Participant(p) => D::Participant(pb::ParticipantDetail { party: Some(party(p)) }),
        Detail::AgentStatus { state, reason, agent_state } => D::AgentStatus(pb::AgentStatusDetail {
            state: state.clone(),
            reason: reason.clone(),
            agent_state: num(*agent_state, |s| s.number()),
        }),
        Detail::Transfer(t) => D::Transfer(pb::Transfer {
            kind: num(t.kind, |k| k.number()),
            from: t.from.as_ref().map(party),
            to: t.to.as_ref().map(party),
            target: t.target.clone(),
        }),
        Detail::AudioStats(s) => D::AudioStats(pb::AudioStatsDetail {
            channel: s.channel.clone(),
            packets_lost: s.packets_lost,
            packets_count: s.packets_count,
            jitter_buffer_millis: s.jitter_buffer_millis,
            round_trip_time_millis: s.round_trip_time_millis,
        }),
    }
}

/// An event on the wire. The store's append path writes the same bytes
/// without this struct ([`super::call_wire`], checked against it).
pub fn call_event(e: &CallEvent) -> pb::CallEvent {
    into_call_event(e.clone())
}

/// [`call_event`] of an owned event: its strings, parties and attributes
/// move into the wire form.
fn into_call_event(e: CallEvent) -> pb::CallEvent {
    pb::CallEvent {
        sequence: e.sequence,
        call_sequence: e.call_sequence,
        r#type: e.event_type.number(),
        occurred_at: Some(timestamp(e.occurred_at)),
        received_at: Some(timestamp(e.received_at)),
        vendor: e.vendor.number(),
        direction: num(e.direction, |d| d.number()),
        state: num(e.state, |s| s.number()),
        media: num(e.media, |m| m.number()),
        detail: e.detail.as_ref().map(detail),
        event_id: e.event_id,
        tenant_id: e.tenant_id,
        call_id: e.call_id,
        conversation_id: e.conversation_id,
        vendor_event_type: e.vendor_event_type,
        parties: e.parties.into_iter().map(into_party).collect(),
        agent_id: e.agent_id,
        queue_id: e.queue_id,
        attributes: e.attributes,
    }
}

/// A call on the wire. The store's append path writes the same bytes
/// without this struct ([`super::call_wire`], checked against it).
pub fn call(c: &Call) -> pb::Call {
    pb::Call {
        call_id: c.call_id.clone(),
        conversation_id: c.conversation_id.clone(),
        tenant_id: c.tenant_id.clone(),
        vendor: c.vendor.number(),
        direction: num(c.direction, |d| d.number()),
        state: c.state.number(),
        outcome: num(c.outcome, |o| o.number()),
        parties: c.parties.iter().map(party).collect(),
        agent_ids: c.agent_ids.clone(),
        queue_id: c.queue_id.clone(),
        started_at: opt_ts(c.started_at),
        queued_at: opt_ts(c.queued_at),
        answered_at: opt_ts(c.answered_at),
        ended_at: opt_ts(c.ended_at),
        wrap_up_ended_at: opt_ts(c.wrap_up_ended_at),
        on_hold: c.on_hold,
        muted: c.muted,
        recording: c.recording.as_ref().map(recording),
        hold_count: c.hold_count,
        total_hold: Some(duration(c.total_hold)),
        talk_duration: c.talk_duration.map(duration),
        notes: c.notes.clone(),
        transcript_count: c.transcript_count,
        last_sequence: c.last_sequence,
        call_sequence: c.call_sequence,
        updated_at: Some(timestamp(c.updated_at)),
        duration: c.duration.map(duration),
        disposition: c.disposition.clone(),
        end_reason: c.end_reason.clone(),
        hangup_initiator: num(c.hangup_initiator, |r| r.number()),
        media: num(c.media, |m| m.number()),
        attributes: c.attributes.clone(),
        previous_call_id: c.previous_call_id.clone(),
        queue_name: c.queue_name.clone(),
        queue_visits: c.queue_visits.iter().map(queue_visit).collect(),
        wrap_up_codes: c.wrap_up_codes.iter().map(wrap_up_code).collect(),
    }
}

fn wrap_up_code_from_pb(c: &pb::WrapUpCode) -> domain::WrapUpCode {
    domain::WrapUpCode { code: c.code.clone(), label: c.label.clone() }
}

fn party_from_pb(p: &pb::Party) -> Party {
    let ts = |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(from_timestamp);
    Party {
        role: domain::PartyRole::from_number(p.role),
        phone_number: p.phone_number.clone(),
        e164: p.e164.clone(),
        display_name: p.display_name.clone(),
        agent_id: p.agent_id.clone(),
        user_id: p.user_id.clone(),
        party_id: p.party_id.clone(),
        state: domain::PartyState::from_number(p.state),
        joined_at: ts(&p.joined_at),
        left_at: ts(&p.left_at),
        wrap_up: p.wrap_up.as_ref().map(|w| domain::WrapUp {
            started_at: ts(&w.started_at),
            ended_at: ts(&w.ended_at),
            codes: w.codes.iter().map(wrap_up_code_from_pb).collect(),
            disposition: w.disposition.clone(),
        }),
    }
}

/// A domain call from its wire form. Bookkeeping the wire does not carry
/// (vendor ordering, hold start, correlation key, first sequence) is left
/// empty: use it for reading (snapshots, listings), never to apply events.
pub fn call_from_pb(c: &pb::Call) -> Call {
    let ts = |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(from_timestamp);
    let dur = |d: &Option<prost_types::Duration>| d.as_ref().and_then(from_duration);
    Call {
        call_id: c.call_id.clone(),
        conversation_id: c.conversation_id.clone(),
        tenant_id: c.tenant_id.clone(),
        vendor: domain::Vendor::from_number(c.vendor).unwrap_or(domain::Vendor::SalesforceVoice),
        direction: domain::Direction::from_number(c.direction),
        state: domain::CallState::from_number(c.state).unwrap_or(domain::CallState::Initiated),
        outcome: domain::CallOutcome::from_number(c.outcome),
        parties: c.parties.iter().map(party_from_pb).collect(),
        agent_ids: c.agent_ids.clone(),
        queue_id: c.queue_id.clone(),
        started_at: ts(&c.started_at),
        queued_at: ts(&c.queued_at),
        answered_at: ts(&c.answered_at),
        ended_at: ts(&c.ended_at),
        wrap_up_ended_at: ts(&c.wrap_up_ended_at),
        on_hold: c.on_hold,
        muted: c.muted,
        recording: c
            .recording
            .as_ref()
            .map(|r| domain::Recording { state: domain::RecordingState::from_number(r.state), url: r.url.clone() }),
        hold_count: c.hold_count,
        total_hold: dur(&c.total_hold).unwrap_or_default(),
        hold_started_at: None,
        talk_duration: dur(&c.talk_duration),
        duration: dur(&c.duration),
        notes: c.notes.clone(),
        transcript_count: c.transcript_count,
        first_sequence: 0,
        last_sequence: c.last_sequence,
        call_sequence: c.call_sequence,
        updated_at: ts(&c.updated_at).unwrap_or_default(),
        disposition: c.disposition.clone(),
        end_reason: c.end_reason.clone(),
        hangup_initiator: domain::PartyRole::from_number(c.hangup_initiator),
        media: domain::Media::from_number(c.media),
        attributes: c.attributes.clone(),
        vendor_order: None,
        last_vendor_time: None,
        correlation_key: None,
        previous_call_id: c.previous_call_id.clone(),
        queue_name: c.queue_name.clone(),
        queue_visits: c
            .queue_visits
            .iter()
            .map(|v| domain::QueueVisit {
                queue_id: v.queue_id.clone(),
                queue_name: v.queue_name.clone(),
                entered_at: ts(&v.entered_at),
                left_at: ts(&v.left_at),
                result: domain::QueueResult::from_number(v.result),
            })
            .collect(),
        wrap_up_codes: c.wrap_up_codes.iter().map(wrap_up_code_from_pb).collect(),
        transfer_requested: None,
        first_received_at: None,
        handed_on: false,
    }
}

/// The bytes that, appended to an encoded `CallUpdate` stored without its
/// log position, set `event.sequence` (and `call.last_sequence`): protobuf
/// merges a repeated embedded message into the earlier one, so every
/// conforming decoder sees the position. Lets a log that assigns positions
/// on append (JetStream) store each event before its position is known.
pub fn sequence_suffix(sequence: u64, has_call: bool) -> Vec<u8> {
    let update = pb::CallUpdate {
        event: Some(pb::CallEvent { sequence, ..Default::default() }),
        call: has_call.then(|| pb::Call { last_sequence: sequence, ..Default::default() }),
    };
    update.encode_to_vec()
}

/// The encoded `CallUpdate` of an event and the call after it: the bytes the
/// log stores and subscribers receive.
pub fn encode_update(event: &CallEvent, call_after: Option<&Call>) -> Bytes {
    let update = pb::CallUpdate { event: Some(call_event(event)), call: call_after.map(call) };
    Bytes::from(update.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        AgentState, CallOutcome, CallState, Direction, EventType, Media, PartyRole, PartyState, QueueResult,
        RecordingState, TransferKind, Vendor,
    };

    /// The domain enums carry the proto numbers; this proves the names agree,
    /// so the two can never drift apart silently.
    #[test]
    fn a_sequence_suffix_sets_the_position_of_a_stored_update() {
        let mut stored = pb::CallUpdate {
            event: Some(pb::CallEvent { call_id: "sf:x".into(), call_sequence: 3, ..Default::default() }),
            call: Some(pb::Call { call_id: "sf:x".into(), call_sequence: 3, ..Default::default() }),
        }
        .encode_to_vec();
        stored.extend(sequence_suffix(42, true));
        let u = pb::CallUpdate::decode(stored.as_slice()).unwrap();
        let (e, c) = (u.event.unwrap(), u.call.unwrap());
        assert_eq!((e.sequence, e.call_id.as_str(), e.call_sequence), (42, "sf:x", 3));
        assert_eq!((c.last_sequence, c.call_sequence), (42, 3));
    }

    #[test]
    fn domain_enums_match_the_proto_enums_by_number_and_name() {
        fn check<D: Copy, P>(
            all: &[D],
            num: impl Fn(D) -> i32,
            name: impl Fn(D) -> &'static str,
            prefix: &str,
            pb_name: impl Fn(i32) -> Option<P>,
            pb_str: impl Fn(P) -> &'static str,
        ) {
            for &v in all {
                let p = pb_name(num(v)).unwrap_or_else(|| panic!("{prefix}{} missing in proto", name(v)));
                assert_eq!(pb_str(p), format!("{prefix}{}", name(v)));
            }
        }
        check(
            EventType::ALL,
            |v| v.number(),
            |v| v.name(),
            "EVENT_TYPE_",
            |n| pb::EventType::try_from(n).ok(),
            |p| p.as_str_name(),
        );
        check(
            CallState::ALL,
            |v| v.number(),
            |v| v.name(),
            "CALL_STATE_",
            |n| pb::CallState::try_from(n).ok(),
            |p| p.as_str_name(),
        );
        check(
            Vendor::ALL,
            |v| v.number(),
            |v| v.name(),
            "VENDOR_",
            |n| pb::Vendor::try_from(n).ok(),
            |p| p.as_str_name(),
        );
        check(
            Direction::ALL,
            |v| v.number(),
            |v| v.name(),
            "DIRECTION_",
            |n| pb::Direction::try_from(n).ok(),
            |p| p.as_str_name(),
        );
        check(
            PartyRole::ALL,
            |v| v.number(),
            |v| v.name(),
            "PARTY_ROLE_",
            |n| pb::PartyRole::try_from(n).ok(),
            |p| p.as_str_name(),
        );
        check(
            CallOutcome::ALL,
            |v| v.number(),
            |v| v.name(),
            "CALL_OUTCOME_",
            |n| pb::CallOutcome::try_from(n).ok(),
            |p| p.as_str_name(),
        );
        check(Media::ALL, |v| v.number(), |v| v.name(), "MEDIA_", |n| pb::Media::try_from(n).ok(), |p| p.as_str_name());
        check(
            RecordingState::ALL,
            |v| v.number(),
            |v| v.name(),
            "RECORDING_STATE_",
            |n| pb::RecordingState::try_from(n).ok(),
            |p| p.as_str_name(),
        );
        check(
            PartyState::ALL,
            |v| v.number(),
            |v| v.name(),
            "PARTY_STATE_",
            |n| pb::PartyState::try_from(n).ok(),
            |p| p.as_str_name(),
        );
        check(
            AgentState::ALL,
            |v| v.number(),
            |v| v.name(),
            "AGENT_STATE_",
            |n| pb::AgentState::try_from(n).ok(),
            |p| p.as_str_name(),
        );
        check(
            TransferKind::ALL,
            |v| v.number(),
            |v| v.name(),
            "TRANSFER_KIND_",
            |n| pb::TransferKind::try_from(n).ok(),
            |p| p.as_str_name(),
        );
        check(
            QueueResult::ALL,
            |v| v.number(),
            |v| v.name(),
            "QUEUE_RESULT_",
            |n| pb::QueueResult::try_from(n).ok(),
            |p| p.as_str_name(),
        );
        // Every proto value has a domain twin (the highest number is the count).
        assert_eq!(pb::CallOutcome::Expired as usize, CallOutcome::ALL.len());
        assert_eq!(pb::PartyState::Left as usize, PartyState::ALL.len());
        assert_eq!(pb::AgentState::Offline as usize, AgentState::ALL.len());
        assert_eq!(pb::TransferKind::Conference as usize, TransferKind::ALL.len());
        assert_eq!(pb::QueueResult::Transferred as usize, QueueResult::ALL.len());
        assert_eq!(
            pb::EventType::AgentStatusChanged as usize,
            EventType::ALL.len(),
            "every proto event type has a domain twin"
        );
    }
}
