//! The wire bytes of a domain [`Call`], written straight from it.
//!
//! Every appended event carries its call (`CallUpdate.call`). Building the
//! generated `pb::Call` first ([`convert::call`]) clones every string,
//! party, agent id and attribute of the call only to encode and drop them:
//! a third of `Record::from_event`, 6k of S12's 90k instructions per event.
//! This writes the same bytes from borrowed fields. [`convert::call`] stays
//! the reference (and the form everything else uses): the tests compare the
//! bytes with prost's for a call with every field set and for every
//! fixture's calls, so a field added to one and not the other fails them.
//!
//! Fields go out in tag order and proto3 defaults (empty, zero, `false`,
//! absent message) are left out, as prost does. Rare nested messages
//! (recording, wrap-ups, queue visits, wrap-up codes) go through their
//! generated types; scalars and timestamps need no allocation either way.

use prost::Message;
use prost::encoding::{WireType, btree_map, encode_key, encode_varint, encoded_len_varint, string};

use super::convert;
use crate::domain::{Call, Party};

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
    string::encode_repeated(9, &c.agent_ids, buf);
    text(10, &c.queue_id, buf);
    for (tag, at) in [(11, c.started_at), (12, c.queued_at), (13, c.answered_at), (14, c.ended_at)] {
        optional(tag, at.map(convert::timestamp), buf);
    }
    optional(15, c.wrap_up_ended_at.map(convert::timestamp), buf);
    flag(16, c.on_hold, buf);
    flag(17, c.muted, buf);
    optional(18, c.recording.as_ref().map(convert::recording), buf);
    varint(19, c.hold_count.into(), buf);
    optional(20, Some(convert::duration(c.total_hold)), buf);
    optional(21, c.talk_duration.map(convert::duration), buf);
    string::encode_repeated(22, &c.notes, buf);
    varint(23, c.transcript_count.into(), buf);
    varint(24, c.last_sequence, buf);
    varint(25, c.call_sequence, buf);
    optional(26, Some(convert::timestamp(c.updated_at)), buf);
    optional(27, c.duration.map(convert::duration), buf);
    text(28, &c.disposition, buf);
    text(29, &c.end_reason, buf);
    enumeration(30, c.hangup_initiator.map_or(0, |r| r.number()), buf);
    enumeration(31, c.media.map_or(0, |m| m.number()), buf);
    btree_map::encode(string::encode, string::encoded_len, string::encode, string::encoded_len, 32, &c.attributes, buf);
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
    optional(9, p.joined_at.map(convert::timestamp), buf);
    optional(10, p.left_at.map(convert::timestamp), buf);
    optional(11, p.wrap_up.as_ref().map(convert::wrap_up), buf);
}

/// A length-delimited field whose body `body` appends: the length is
/// reserved as one byte and widened afterwards when the body needs more
/// (one move of the body, rarer and cheaper than measuring it first).
pub fn nested(tag: u32, buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    encode_key(tag, WireType::LengthDelimited, buf);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
    } else {
        let mut header = [0u8; 10];
        let mut writer = &mut header[..];
        encode_varint(len as u64, &mut writer);
        buf.splice(at..at + 1, header[..encoded_len_varint(len as u64)].iter().copied());
    }
}

fn text(tag: u32, value: &str, buf: &mut Vec<u8>) {
    if !value.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(value.len() as u64, buf);
        buf.extend_from_slice(value.as_bytes());
    }
}

/// An `int32`-encoded enum (negative numbers sign-extend, as prost's).
fn enumeration(tag: u32, number: i32, buf: &mut Vec<u8>) {
    varint(tag, number as u64, buf);
}

fn varint(tag: u32, value: u64, buf: &mut Vec<u8>) {
    if value != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(value, buf);
    }
}

fn flag(tag: u32, value: bool, buf: &mut Vec<u8>) {
    varint(tag, u64::from(value), buf);
}

fn optional(tag: u32, message: Option<impl Message>, buf: &mut Vec<u8>) {
    if let Some(m) = message {
        prost::encoding::message::encode(tag, &m, buf);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::{
        CallOutcome, CallState, Direction, Media, PartyRole, PartyState, QueueResult, QueueVisit, Recording,
        RecordingState, Vendor, WrapUp, WrapUpCode,
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
        let call = Call { total_hold: Duration::ZERO, ..every_field() };
        let empty = Call {
            call_id: String::new(),
            conversation_id: String::new(),
            tenant_id: String::new(),
            direction: None,
            outcome: None,
            parties: Vec::new(),
            agent_ids: Vec::new(),
            queue_id: String::new(),
            started_at: None,
            queued_at: None,
            answered_at: None,
            ended_at: None,
            wrap_up_ended_at: None,
            on_hold: false,
            muted: false,
            recording: None,
            hold_count: 0,
            talk_duration: None,
            duration: None,
            notes: Vec::new(),
            transcript_count: 0,
            last_sequence: 0,
            call_sequence: 0,
            disposition: String::new(),
            end_reason: String::new(),
            hangup_initiator: None,
            media: None,
            attributes: BTreeMap::new(),
            previous_call_id: String::new(),
            queue_name: String::new(),
            queue_visits: Vec::new(),
            wrap_up_codes: Vec::new(),
            ..call
        };
        assert_eq!(bytes(&empty), convert::call(&empty).encode_to_vec());
    }

    /// Every accepted fixture, through the normalizer and the memory store:
    /// the call each ingest leaves is what its last record carries, byte
    /// for byte as prost encodes it.
    #[tokio::test]
    async fn every_fixture_call_is_what_prost_encodes() {
        use crate::adapters::{Normalizer, PhoneNormalizer};
        use crate::domain::TenantId;
        use crate::hub::Hub;
        use crate::store::memory::MemoryStore;
        use crate::store::{IngestBatch, Store, StoreOptions};
        let store = MemoryStore::new(Hub::new(64), StoreOptions::default());
        let normalizer = Normalizer::new(PhoneNormalizer::new("US").unwrap());
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut compared = 0;
        for vendor in std::fs::read_dir(&root).unwrap() {
            let dir = vendor.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&dir).unwrap() {
                let path = file.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if !name.ends_with(".json") || name.ends_with(".expected.json") {
                    continue;
                }
                let Ok(normalized) = normalizer.normalize(None, &std::fs::read(&path).unwrap(), None) else {
                    continue;
                };
                let tenant = TenantId::parse(&format!("t{compared}")).unwrap();
                let batch = IngestBatch {
                    tenant: tenant.clone(),
                    request_id: None,
                    normalized,
                    received_at: Utc::now(),
                    bridge_received_at: None,
                };
                let records = store.ingest(batch).await.unwrap().records;
                let Some(last) = records.last() else { continue };
                let Some(wire) = last.call_bytes() else { continue };
                let call_id = &last.meta().call_id;
                let call = store.get_call(&tenant, call_id).await.unwrap().unwrap();
                assert_eq!(wire.as_ref(), convert::call(&call).encode_to_vec().as_slice(), "{name}");
                compared += 1;
            }
        }
        assert!(compared >= 90, "only {compared} fixtures left a call (98 when written)");
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
