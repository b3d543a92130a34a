//! The stored forms of a call, a dedup entry and a log record: what the
//! columns of [`super::schema`] hold and how they are read back.
//!
//! Nothing here is stored twice when it can be read from one place: an event
//! row keeps the encoded `CallUpdate` (its filter metadata is decoded from it
//! on read), a call row keeps the wire `Call` the event just encoded (copied
//! out of the record, not encoded again) plus the little bookkeeping the wire
//! form does not carry, and a dedup key is a 16-byte hash.

use chrono::{DateTime, TimeZone, Utc};
use prost::Message;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::codec::proto::v1 as pb;
use crate::codec::{Record, convert};
use crate::domain::{Call, Transfer, VendorOrder};
use crate::plan::DedupEntry;

/// Separates agent ids in one column (never part of an id).
pub(super) const SEP: char = '\u{1f}';

/// Microseconds since the epoch: how event and call times are stored.
pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A stored time back.
pub(super) fn from_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

/// The bytes of a dedup key: the first 16 bytes of SHA-256 over the tenant,
/// a NUL (which no tenant id contains) and the key. 128 bits keep an
/// accidental collision (which would make a new event look like a repeat)
/// out of reach: about 2^-64 even at 2^32 live keys.
pub(super) fn dedup_key(tenant: &str, key: &str) -> [u8; 16] {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    h.update(tenant.as_bytes());
    h.update(&[0u8]);
    h.update(key.as_bytes());
    let digest = h.finish();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest.as_ref()[..16]);
    out
}

/// A dedup entry without its time (a column of its own).
#[derive(Clone, PartialEq, Message)]
struct StoredDedup {
    #[prost(string, tag = "1")]
    call_id: String,
    #[prost(uint64, tag = "2")]
    call_sequence: u64,
    #[prost(uint64, repeated, tag = "3")]
    sequences: Vec<u64>,
}

/// The `entry` column of a dedup row.
pub(super) fn encode_dedup(entry: &DedupEntry) -> Vec<u8> {
    StoredDedup {
        call_id: entry.call_id.clone(),
        call_sequence: entry.call_sequence,
        sequences: entry.sequences.clone(),
    }
    .encode_to_vec()
}

/// A dedup row back (`created_at` in microseconds: the window is applied at
/// that precision).
pub(super) fn decode_dedup(entry: &[u8], created_at: i64) -> Result<DedupEntry, StoreError> {
    let d = StoredDedup::decode(entry).map_err(|e| StoreError::Corrupt(format!("dedup entry: {e}")))?;
    Ok(DedupEntry {
        call_id: d.call_id,
        call_sequence: d.call_sequence,
        sequences: d.sequences,
        created_at: from_micros(created_at),
    })
}

/// What a call keeps that its wire form (`pb::Call`) does not carry: the
/// state the next event needs. `first_sequence`, `correlation_key` and
/// `first_received_at` (which every call has) are columns of their own. Every field of [`Call`] is either on the wire, here,
/// or a column: `stored_calls_round_trip` fails when a new one is none of
/// these.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Bookkeeping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold_started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vendor_order: Option<VendorOrder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_vendor_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transfer_requested: Option<Box<Transfer>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    handed_on: bool,
}

/// The stored form of a call: the encoded wire `Call` and the bookkeeping
/// (JSON, `None` when there is none).
pub(super) struct StoredCall {
    /// `pb::Call`, encoded.
    pub call_pb: Vec<u8>,
    /// [`Bookkeeping`] as JSON, when any.
    pub bookkeeping: Option<String>,
    /// `first_received_at` in nanoseconds (kept exactly: correlation
    /// compares it).
    pub first_received_at: Option<i64>,
}

/// A call's stored form; `wire` is its encoded `pb::Call` when the caller
/// has it (the record of the event that produced this state), else it is
/// encoded here.
pub(super) fn store_call(call: &Call, wire: Option<&[u8]>) -> Result<StoredCall, StoreError> {
    let call_pb = match wire {
        Some(b) => b.to_vec(),
        None => convert::call(call).encode_to_vec(),
    };
    let b = Bookkeeping {
        hold_started_at: call.hold_started_at,
        vendor_order: call.vendor_order.clone(),
        last_vendor_time: call.last_vendor_time,
        transfer_requested: call.transfer_requested.clone(),
        handed_on: call.handed_on,
    };
    let bookkeeping = if b == Bookkeeping::default() { None } else { Some(serde_json::to_string(&b)?) };
    Ok(StoredCall {
        call_pb,
        bookkeeping,
        first_received_at: call.first_received_at.and_then(|t| t.timestamp_nanos_opt()),
    })
}

/// The columns of a call row that the wire form lacks.
pub(super) struct CallColumns {
    /// `first_seq`.
    pub first_sequence: u64,
    /// `correlation_key`.
    pub correlation_key: Option<String>,
    /// `first_received_at`, nanoseconds.
    pub first_received_at: Option<i64>,
}

/// A call back from its row: the wire form, the bookkeeping, and the
/// columns the wire form lacks.
pub(super) fn load_call(call_pb: &[u8], bookkeeping: Option<&str>, columns: CallColumns) -> Result<Call, StoreError> {
    let wire = pb::Call::decode(call_pb).map_err(|e| StoreError::Corrupt(format!("stored call: {e}")))?;
    let mut call = convert::call_from_pb(&wire);
    let b: Bookkeeping = match bookkeeping {
        Some(json) => serde_json::from_str(json)?,
        None => Bookkeeping::default(),
    };
    call.hold_started_at = b.hold_started_at;
    call.vendor_order = b.vendor_order;
    call.last_vendor_time = b.last_vendor_time;
    call.transfer_requested = b.transfer_requested;
    call.handed_on = b.handed_on;
    call.first_sequence = columns.first_sequence;
    call.correlation_key = columns.correlation_key;
    call.first_received_at = columns.first_received_at.map(DateTime::from_timestamp_nanos);
    Ok(call)
}

/// A log record from an event row: the encoded update and the two columns
/// its indexes need; the filter metadata is decoded from the update.
pub(super) fn load_record(seq: i64, tenant: String, received_at: i64, update: &[u8]) -> Result<Record, StoreError> {
    Record::from_stored(seq as u64, tenant, from_micros(received_at), update)
        .map_err(|e| StoreError::Corrupt(format!("event {seq}: {e}")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use chrono::SubsecRound;

    use super::*;
    use crate::domain::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_744_819_200 + s, 123_456_789).single().unwrap()
    }

    fn party(id: &str) -> Party {
        Party {
            role: Some(PartyRole::Agent),
            phone_number: "+1 (415) 555-0100".into(),
            e164: "+14155550100".into(),
            display_name: "Grace".into(),
            agent_id: "grace".into(),
            user_id: "u-1".into(),
            party_id: id.into(),
            state: Some(PartyState::WrapUp),
            joined_at: Some(t(1)),
            left_at: Some(t(2)),
            wrap_up: Some(WrapUp {
                started_at: Some(t(3)),
                ended_at: Some(t(4)),
                codes: vec![WrapUpCode { code: "c".into(), label: "l".into() }],
                disposition: "sold".into(),
            }),
        }
    }

    /// Every field set (a struct literal: a new field of `Call` does not
    /// compile here until it is given a value, and then the round trip shows
    /// whether the stored form keeps it).
    fn full_call() -> Call {
        Call {
            call_id: "8x8es:int-1".into(),
            conversation_id: "conv-1".into(),
            tenant_id: "t".into(),
            vendor: Vendor::EventStreaming8x8,
            direction: Some(Direction::Inbound),
            state: CallState::WrapUp,
            outcome: Some(CallOutcome::Completed),
            parties: vec![party("agent:grace"), party("customer")],
            agent_ids: vec!["grace".into(), "ian".into()],
            queue_id: "q-1".into(),
            started_at: Some(t(0)),
            queued_at: Some(t(1)),
            answered_at: Some(t(2)),
            ended_at: Some(t(3)),
            wrap_up_ended_at: Some(t(4)),
            on_hold: true,
            muted: true,
            recording: Some(Recording { state: Some(RecordingState::Paused), url: "https://r/1".into() }),
            hold_count: 2,
            total_hold: Duration::from_millis(1500),
            hold_started_at: Some(t(5)),
            talk_duration: Some(Duration::from_secs(60)),
            duration: Some(Duration::from_secs(61)),
            notes: vec!["n1".into(), "n2".into()],
            transcript_count: 3,
            first_sequence: 17,
            last_sequence: 42,
            call_sequence: 9,
            updated_at: t(6),
            disposition: "sold".into(),
            end_reason: "hangup".into(),
            hangup_initiator: Some(PartyRole::Customer),
            media: Some(Media::Voice),
            attributes: BTreeMap::from([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]),
            vendor_order: Some(VendorOrder { scope: "inst-1".into(), position: 77 }),
            last_vendor_time: Some(t(7)),
            correlation_key: Some("ck".into()),
            previous_call_id: "8x8es:int-0".into(),
            queue_name: "Support".into(),
            queue_visits: vec![QueueVisit {
                queue_id: "q-1".into(),
                queue_name: "Support".into(),
                entered_at: Some(t(1)),
                left_at: Some(t(2)),
                result: Some(QueueResult::Assigned),
            }],
            wrap_up_codes: vec![WrapUpCode { code: "c".into(), label: "l".into() }],
            transfer_requested: Some(Box::new(Transfer {
                kind: Some(TransferKind::Blind),
                from: Some(party("agent:grace")),
                to: Some(party("agent:ian")),
                target: "ian".into(),
            })),
            first_received_at: Some(t(0)),
            handed_on: true,
        }
    }

    fn columns(call: &Call, stored: &StoredCall) -> CallColumns {
        CallColumns {
            first_sequence: call.first_sequence,
            correlation_key: call.correlation_key.clone(),
            first_received_at: stored.first_received_at,
        }
    }

    #[test]
    fn stored_calls_round_trip() {
        let call = full_call();
        for wire in [None, Some(convert::call(&call).encode_to_vec())] {
            let stored = store_call(&call, wire.as_deref()).unwrap();
            let back = load_call(&stored.call_pb, stored.bookkeeping.as_deref(), columns(&call, &stored)).unwrap();
            assert_eq!(back, call);
        }
        let plain = Call::new("t", "sf:x", Vendor::SalesforceVoice, t(0));
        let stored = store_call(&plain, None).unwrap();
        assert_eq!(stored.bookkeeping, None, "no bookkeeping, no JSON");
        assert_eq!(load_call(&stored.call_pb, None, columns(&plain, &stored)).unwrap(), plain);
    }

    #[test]
    fn dedup_entries_round_trip() {
        let entry = DedupEntry { call_id: "sf:x".into(), call_sequence: 3, sequences: vec![7, 8], created_at: t(9) };
        let bytes = encode_dedup(&entry);
        let back = decode_dedup(&bytes, micros(entry.created_at)).unwrap();
        assert_eq!(back.created_at, entry.created_at.trunc_subsecs(6), "kept to the microsecond");
        assert_eq!(DedupEntry { created_at: entry.created_at, ..back }, entry);
        assert!(bytes.len() < 16, "{} bytes", bytes.len());
    }

    #[test]
    fn dedup_keys_are_per_tenant() {
        assert_ne!(dedup_key("a", "k"), dedup_key("b", "k"));
        assert_ne!(dedup_key("a", "bk"), dedup_key("ab", "k"), "the separator keeps tenant and key apart");
        assert_eq!(dedup_key("a", "k"), dedup_key("a", "k"));
        // Keys on disk: the value must never change (Python's `hashlib`).
        assert_eq!(hex::encode(dedup_key("acme", "nat:x")), "026abcae1416fe7e9af6834ac8113b08");
    }
}
