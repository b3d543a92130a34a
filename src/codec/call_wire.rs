//! The wire bytes of a domain [`CallEvent`] and [`Call`], written straight
//! from them: the one encode every appended event gets.
//!
//! Every appended event carries its call (`CallUpdate.call`). Building the
//! generated `pb::Call` first ([`convert::call`]) cloned every string,
//! party, agent id and attribute of the call only to encode and drop them:
//! a third of `Record::from_event`, 6k of S12's 90k instructions per event.
//! This writes the same bytes from borrowed fields. [`convert::call`] and
//! [`convert::call_event`] stay the reference (and the form everything else
//! uses): the tests compare the bytes with prost's for an event and a call
//! with every field set and for every event and call the fixtures make, so
//! a field added to one side and not the other fails them.
//!
//! Fields go out in tag order and proto3 defaults (empty, zero, `false`,
//! absent message) are left out, as prost does. Scalars, strings, maps,
//! parties and times are written here; rare nested messages (detail,
//! recording, wrap-ups, queue visits, wrap-up codes) go through their
//! generated types.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prost::Message;
use prost::encoding::{WireType, encoded_len_varint, key_len};

use super::convert;
use crate::domain::{Call, CallEvent, Party};

/// Appends the encoded `CallEvent` (the message body).
pub fn encode_event(e: &CallEvent, buf: &mut Vec<u8>) {
    text(1, &e.event_id, buf);
    varint(2, e.sequence, buf);
    varint(3, e.call_sequence, buf);
    text(4, &e.tenant_id, buf);
    text(5, &e.call_id, buf);
    text(6, &e.conversation_id, buf);
    enumeration(7, e.event_type.number(), buf);
    timestamp(8, Some(e.occurred_at), buf);
    timestamp(9, Some(e.received_at), buf);
    enumeration(10, e.vendor.number(), buf);
    text(11, &e.vendor_event_type, buf);
    enumeration(12, e.direction.map_or(0, |d| d.number()), buf);
    enumeration(13, e.state.map_or(0, |s| s.number()), buf);
    for p in &e.parties {
        nested(14, buf, |buf| party(p, buf));
    }
    text(15, &e.agent_id, buf);
    text(16, &e.queue_id, buf);
    enumeration(17, e.media.map_or(0, |m| m.number()), buf);
    if let Some(d) = &e.detail {
        // Tags 20-28; one per event at most, and rarer than the rest.
        convert::detail(d).encode(buf);
    }
    string_map(30, &e.attributes, buf);
}

/// Appends the encoded `Call` (the message body, without tag or length).
pub fn encode_call(c: &Call, buf: &mut Vec<u8>) {
    text(1, &c.call_id, buf);
    text(2, &c.conversation_id, buf);
    text(3, &c.tenant_id, buf);
    enumeration(4, c.vendor.number(), buf);
    enumeration(5, c.direction.map_or(0, |d| d.number()), buf);
    enumeration(6, c.state.number(), buf);
    enumeration(7, c.outcome.map_or(0, |o| o.number()), buf);
    for p in &c.parties {
        nested(8, buf, |buf| party(p, buf));
    }
    texts(9, &c.agent_ids, buf);
    text(10, &c.queue_id, buf);
    timestamp(11, c.started_at, buf);
    timestamp(12, c.queued_at, buf);
    timestamp(13, c.answered_at, buf);
    timestamp(14, c.ended_at, buf);
    timestamp(15, c.wrap_up_ended_at, buf);
    flag(16, c.on_hold, buf);
    flag(17, c.muted, buf);
    optional(18, c.recording.as_ref().map(convert::recording), buf);
    varint(19, c.hold_count.into(), buf);
    duration(20, Some(c.total_hold), buf);
    duration(21, c.talk_duration, buf);
    texts(22, &c.notes, buf);
    varint(23, c.transcript_count.into(), buf);
    varint(24, c.last_sequence, buf);
    varint(25, c.call_sequence, buf);
    timestamp(26, Some(c.updated_at), buf);
    duration(27, c.duration, buf);
    text(28, &c.disposition, buf);
    text(29, &c.end_reason, buf);
    enumeration(30, c.hangup_initiator.map_or(0, |r| r.number()), buf);
    enumeration(31, c.media.map_or(0, |m| m.number()), buf);
    string_map(32, &c.attributes, buf);
    text(33, &c.previous_call_id, buf);
    text(34, &c.queue_name, buf);
    for v in &c.queue_visits {
        optional(35, Some(convert::queue_visit(v)), buf);
    }
    for w in &c.wrap_up_codes {
        optional(36, Some(convert::wrap_up_code(w)), buf);
    }
}

/// A `Party` body.
fn party(p: &Party, buf: &mut Vec<u8>) {
    enumeration(1, p.role.map_or(0, |r| r.number()), buf);
    text(2, &p.phone_number, buf);
    text(3, &p.e164, buf);
    text(4, &p.display_name, buf);
    text(5, &p.agent_id, buf);
    text(6, &p.user_id, buf);
    text(7, &p.party_id, buf);
    enumeration(8, p.state.map_or(0, |s| s.number()), buf);
    timestamp(9, p.joined_at, buf);
    timestamp(10, p.left_at, buf);
    optional(11, p.wrap_up.as_ref().map(convert::wrap_up), buf);
}

/// A length-delimited field whose body `body` appends: the length is
/// reserved as one byte and widened afterwards when the body needs more
/// (one move of the body, rarer and cheaper than measuring it first).
fn nested(tag: u32, buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    key(tag, WireType::LengthDelimited, buf);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
    } else {
        let mut header = Vec::with_capacity(10);
        put_varint(len as u64, &mut header);
        buf.splice(at..at + 1, header);
    }
}

/// A `map<string, string>` field, entries in key order as prost writes a
/// `BTreeMap`; each entry is measured inline (prost's generic
/// `btree_map::encode` measured them through four closures).
fn string_map(tag: u32, map: &BTreeMap<String, String>, buf: &mut Vec<u8>) {
    for (k, v) in map {
        key(tag, WireType::LengthDelimited, buf);
        put_varint((text_len(1, k) + text_len(2, v)) as u64, buf);
        text(1, k, buf);
        text(2, v, buf);
    }
}

/// What [`text`] writes for `value`.
fn text_len(tag: u32, value: &str) -> usize {
    if value.is_empty() { 0 } else { key_len(tag) + encoded_len_varint(value.len() as u64) + value.len() }
}

/// A `string` field (left out when empty).
fn text(tag: u32, value: &str, buf: &mut Vec<u8>) {
    if !value.is_empty() {
        bytes_field(tag, value.as_bytes(), buf);
    }
}

/// A `repeated string` field: every element, empty ones too.
fn texts(tag: u32, values: &[String], buf: &mut Vec<u8>) {
    for v in values {
        bytes_field(tag, v.as_bytes(), buf);
    }
}

fn bytes_field(tag: u32, value: &[u8], buf: &mut Vec<u8>) {
    key(tag, WireType::LengthDelimited, buf);
    put_varint(value.len() as u64, buf);
    buf.extend_from_slice(value);
}

/// An `int32`-encoded enum (negative numbers sign-extend, as prost's).
fn enumeration(tag: u32, number: i32, buf: &mut Vec<u8>) {
    varint(tag, number as u64, buf);
}

/// A varint field (left out when zero).
fn varint(tag: u32, value: u64, buf: &mut Vec<u8>) {
    if value != 0 {
        key(tag, WireType::Varint, buf);
        put_varint(value, buf);
    }
}

fn flag(tag: u32, value: bool, buf: &mut Vec<u8>) {
    varint(tag, u64::from(value), buf);
}

/// A `google.protobuf.Timestamp` field, when there is a time.
fn timestamp(tag: u32, at: Option<DateTime<Utc>>, buf: &mut Vec<u8>) {
    if let Some(t) = at.map(convert::timestamp) {
        seconds_nanos(tag, t.seconds, t.nanos, buf);
    }
}

/// A `google.protobuf.Duration` field, when there is a duration.
fn duration(tag: u32, d: Option<Duration>, buf: &mut Vec<u8>) {
    if let Some(d) = d.map(convert::duration) {
        seconds_nanos(tag, d.seconds, d.nanos, buf);
    }
}

/// A `Timestamp` or `Duration` (the same two fields): written here rather
/// than through prost's `message::encode`, which measures the message
/// through its generated code first (every event has three or more).
fn seconds_nanos(tag: u32, seconds: i64, nanos: i32, buf: &mut Vec<u8>) {
    let (seconds, nanos) = (seconds as u64, i64::from(nanos) as u64);
    let field_len = |v: u64| if v == 0 { 0 } else { 1 + encoded_len_varint(v) };
    key(tag, WireType::LengthDelimited, buf);
    put_varint((field_len(seconds) + field_len(nanos)) as u64, buf);
    varint(1, seconds, buf);
    varint(2, nanos, buf);
}

/// A message field through its generated type (the rare nested ones).
fn optional(tag: u32, message: Option<impl Message>, buf: &mut Vec<u8>) {
    if let Some(m) = message {
        prost::encoding::message::encode(tag, &m, buf);
    }
}

fn key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    put_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

/// A varint, inlined: prost's `encode_varint` is a call per value, and the
/// values here are mostly one byte (tags, lengths, enums).
#[inline]
fn put_varint(mut value: u64, buf: &mut Vec<u8>) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::{
        AudioStats, CallOutcome, CallState, Detail, Direction, Ended, EventType, Media, PartyRole, PartyState,
        QueueResult, QueueVisit, Recording, RecordingState, Transfer, TransferKind, Vendor, WrapUp, WrapUpCode,
    };

    fn bytes(c: &Call) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_call(c, &mut buf);
        buf
    }

    /// Every field set, parties and the call longer than one length byte
    /// holds, empty entries where prost keeps them (repeated strings, map
    /// keys and values). Written as a full literal: a field added to the
    /// domain call does not compile here until the test sets it.
    fn every_field() -> Call {
        let at = |s: i64| Some(Utc.timestamp_opt(1_764_000_000 + s, 250_000_000).unwrap());
        let party = |role, id: &str| Party {
            role: Some(role),
            phone_number: "(415) 555-0100".into(),
            e164: "+14155550100".into(),
            display_name: "Ada Lovelace, Analytical Engines Customer Care".into(),
            agent_id: format!("agent-{id}"),
            user_id: format!("user-{id}"),
            party_id: format!("party-{id}"),
            state: Some(PartyState::Connected),
            joined_at: at(1),
            left_at: at(90),
            wrap_up: Some(WrapUp {
                started_at: at(91),
                ended_at: at(120),
                codes: vec![WrapUpCode { code: "sale".into(), label: "Sale".into() }],
                disposition: "resolved".into(),
            }),
        };
        Call {
            call_id: "8x8es:int-4f1c2a".into(),
            conversation_id: "conv-77".into(),
            tenant_id: "acme".into(),
            vendor: Vendor::EventStreaming8x8,
            direction: Some(Direction::Inbound),
            state: CallState::Ended,
            outcome: Some(CallOutcome::Completed),
            parties: vec![party(PartyRole::Customer, "a"), party(PartyRole::Agent, "b")],
            agent_ids: vec!["agent-b".into(), String::new()],
            queue_id: "q-support".into(),
            started_at: at(0),
            queued_at: at(2),
            answered_at: at(5),
            ended_at: at(90),
            wrap_up_ended_at: at(120),
            on_hold: true,
            muted: true,
            recording: Some(Recording { state: Some(RecordingState::Paused), url: "https://r.example/1".into() }),
            hold_count: 2,
            total_hold: Duration::from_millis(12_500),
            hold_started_at: at(40),
            talk_duration: Some(Duration::from_secs(85)),
            duration: Some(Duration::from_secs(90)),
            notes: vec!["called back".into(), String::new()],
            transcript_count: 3,
            first_sequence: 7,
            last_sequence: 300,
            call_sequence: 12,
            updated_at: at(121).unwrap(),
            disposition: "resolved".into(),
            end_reason: "customer hung up".into(),
            hangup_initiator: Some(PartyRole::Customer),
            media: Some(Media::Voice),
            attributes: BTreeMap::from([
                ("campaign".into(), "spring".into()),
                (String::new(), "empty key".into()),
                ("empty value".into(), String::new()),
            ]),
            vendor_order: None,
            last_vendor_time: at(119),
            correlation_key: Some("corr".into()),
            previous_call_id: "8x8es:int-0001".into(),
            queue_name: "Support".into(),
            queue_visits: vec![QueueVisit {
                queue_id: "q-support".into(),
                queue_name: "Support".into(),
                entered_at: at(2),
                left_at: at(5),
                result: Some(QueueResult::Assigned),
            }],
            wrap_up_codes: vec![WrapUpCode { code: "sale".into(), label: "Sale".into() }],
            transfer_requested: None,
            first_received_at: at(0),
            handed_on: true,
        }
    }

    #[test]
    fn a_call_with_every_field_is_what_prost_encodes() {
        let call = every_field();
        let want = convert::call(&call).encode_to_vec();
        assert!(want.len() > 0x80 * 4, "lengths of several bytes are exercised");
        assert_eq!(bytes(&call), want);
    }

    #[test]
    fn an_empty_call_is_what_prost_encodes() {
        // What a call is before its first event: every optional field absent.
        let empty = Call::new("", "", Vendor::Xelion, Utc.timestamp_opt(0, 0).unwrap());
        assert_eq!(bytes(&empty), convert::call(&empty).encode_to_vec());
    }

    fn event_bytes(e: &CallEvent) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_event(e, &mut buf);
        buf
    }

    /// Every field set (a full literal, as [`every_field`]), with each kind
    /// of detail in turn and without one.
    #[test]
    fn an_event_with_every_field_is_what_prost_encodes() {
        let call = every_field();
        let party = call.parties[1].clone();
        let at = call.started_at;
        let details = [
            None,
            Some(Detail::Ended(Ended {
                outcome: Some(CallOutcome::Completed),
                hangup_initiator: Some(PartyRole::Agent),
                reason: "normal".into(),
                duration: Some(Duration::from_secs(90)),
                talk_duration: Some(Duration::from_secs(85)),
                disposition: "resolved".into(),
            })),
            Some(Detail::Transcript {
                utterance_id: "u1".into(),
                text: "hello".into(),
                sender_role: Some(PartyRole::Customer),
                sent_at: at,
            }),
            Some(Detail::Note { text: "note".into(), author: "ada".into() }),
            Some(Detail::Flag { text: "help".into(), raised_by: "ada".into() }),
            Some(Detail::Recording(Recording { state: Some(RecordingState::Paused), url: "u".into() })),
            Some(Detail::Participant(party.clone())),
            Some(Detail::AgentStatus { state: "busy".into(), reason: "801".into(), agent_state: None }),
            Some(Detail::Transfer(Box::new(Transfer {
                kind: Some(TransferKind::Blind),
                from: Some(party.clone()),
                to: Some(party.clone()),
                target: "q-sales".into(),
            }))),
            Some(Detail::AudioStats(AudioStats {
                channel: "inbound".into(),
                packets_lost: 3,
                packets_count: 1000,
                jitter_buffer_millis: 20,
                round_trip_time_millis: 80,
            })),
        ];
        for detail in details {
            let event = CallEvent {
                event_id: "5b1c2f0e-8d4a-4c3e-9a71-3e0f6d2b8c41".into(),
                sequence: 300,
                call_sequence: 12,
                tenant_id: "acme".into(),
                call_id: "8x8es:int-4f1c2a".into(),
                conversation_id: "conv-77".into(),
                event_type: EventType::CallEnded,
                occurred_at: call.updated_at,
                received_at: call.updated_at,
                vendor: Vendor::EventStreaming8x8,
                vendor_event_type: "InteractionDeleted".into(),
                direction: Some(Direction::Outbound),
                state: Some(CallState::Ended),
                parties: call.parties.clone(),
                agent_id: "agent-b".into(),
                queue_id: "q-support".into(),
                media: Some(Media::Voice),
                detail,
                attributes: call.attributes.clone(),
            };
            assert_eq!(event_bytes(&event), convert::call_event(&event).encode_to_vec(), "{:?}", event.detail);
        }
    }

    /// A view of the calls planned so far: fixtures later in the walk apply
    /// to calls earlier ones made.
    #[derive(Default)]
    struct Calls(std::collections::HashMap<String, Call>);

    impl crate::plan::StateView for Calls {
        type Error = std::convert::Infallible;
        fn call(&mut self, _: &str, call_id: &str) -> Result<Option<Call>, Self::Error> {
            Ok(self.0.get(call_id).cloned())
        }
        fn correlated(&mut self, _: &str, key: &str) -> Result<Vec<Call>, Self::Error> {
            let mut calls: Vec<Call> =
                self.0.values().filter(|c| c.correlation_key.as_deref() == Some(key)).cloned().collect();
            calls.sort_by_key(|c| std::cmp::Reverse(c.last_sequence));
            Ok(calls)
        }
        fn dedup(&mut self, _: &str, _: &str) -> Result<Option<crate::plan::DedupEntry>, Self::Error> {
            Ok(None)
        }
    }

    /// Every event and call the fixtures make (the vendor fixtures, in
    /// name order, planned against the calls before them): byte for byte
    /// what prost encodes.
    #[test]
    fn every_fixture_event_and_call_is_what_prost_encodes() {
        use crate::adapters::{Normalizer, PhoneNormalizer};
        use crate::domain::TenantId;
        use crate::store::{IngestBatch, StoreOptions};
        let normalizer = Normalizer::new(PhoneNormalizer::new("US").unwrap());
        let windows = StoreOptions::default().windows();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut paths: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|d| d.unwrap().path())
            .filter(|d| d.is_dir())
            .flat_map(|d| std::fs::read_dir(d).unwrap().map(|f| f.unwrap().path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().ends_with(".expected.json"))
            .collect();
        paths.sort();
        let (mut view, mut next, mut events, mut calls) = (Calls::default(), 1, 0, 0);
        for path in &paths {
            let Ok(normalized) = normalizer.normalize(None, &std::fs::read(path).unwrap(), None) else { continue };
            let batch = IngestBatch {
                tenant: TenantId::parse("acme").unwrap(),
                request_id: None,
                normalized,
                received_at: chrono::Utc::now(),
                bridge_received_at: None,
            };
            let Ok(plan) = crate::plan::plan(&batch, &mut view, &mut next, windows);
            for (event, call) in plan.appended {
                let name = path.display();
                assert_eq!(event_bytes(&event), convert::call_event(&event).encode_to_vec(), "{name}");
                events += 1;
                if let Some(call) = call {
                    assert_eq!(bytes(&call), convert::call(&call).encode_to_vec(), "{name}");
                    calls += 1;
                    view.0.insert(call.call_id.clone(), call);
                }
            }
        }
        assert!(events >= 85 && calls >= 85, "only {events} events and {calls} calls (92 and 90 when written)");
    }

    #[test]
    fn nested_widens_the_length_it_reserved() {
        for len in [0usize, 1, 0x7f, 0x80, 300, 20_000] {
            let mut buf = vec![9];
            nested(3, &mut buf, |b| b.extend(std::iter::repeat_n(7u8, len)));
            let mut want = vec![9];
            prost::encoding::bytes::encode(3, &vec![7u8; len], &mut want);
            assert_eq!(buf, want, "{len}");
        }
    }
}
