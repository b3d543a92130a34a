//! One logged event as the hub, replay and the Ingest answer carry it: filter
//! metadata plus the pre-encoded subscription frame.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::OnceLock;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use prost::Message;
use prost::encoding::{WireType::LengthDelimited, encode_key, encode_varint, encoded_len_varint, key_len};

use super::proto::v1 as pb;
use super::{call_wire, convert};
use crate::domain::{Call, CallEvent, Direction, EventMeta, EventType, Vendor};

thread_local! {
    /// An event's and its call's bytes on their way into a frame
    /// ([`Record::from_event`]): reused, so a frame is allocated once, at
    /// its exact size.
    static UPDATE_BYTES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The largest [`UPDATE_BYTES`] a thread keeps between events (updates are
/// a few KiB; a larger one gets a buffer of its own that is then freed).
const UPDATE_BYTES_KEPT: usize = 64 * 1024;

/// A logged event. Cheap to share: subscribers hold `Arc<Record>`.
#[derive(Clone, Debug)]
pub struct Record {
    /// Log position.
    pub sequence: u64,
    /// The tenant whose log this is: fan-out and replay never cross it.
    pub tenant: String,
    /// When the server received the event.
    pub received_at: DateTime<Utc>,
    /// What filters look at: known when the record is built from an event,
    /// decoded from the frame on first use when it was read back from
    /// storage, so a replay without a filter never pays for it.
    meta: OnceLock<EventMeta>,
    /// The encoded `SubscribeResponse { update }`.
    frame: Bytes,
    /// Where the encoded `CallUpdate` starts inside `frame`.
    update_offset: usize,
}

/// A stored `CallUpdate` whose framing is wrong.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// prost refused a field or the framing.
    #[error(transparent)]
    Prost(#[from] prost::DecodeError),
    /// The update holds no event.
    #[error("stored update without an event")]
    NoEvent,
    /// A field header is wrong.
    #[error("malformed stored update: {0}")]
    Malformed(&'static str),
}

impl Record {
    /// Encodes an appended event (with its sequence) and its call: the one
    /// encode an event ever gets.
    pub fn from_event(event: CallEvent, call: Option<&Call>) -> Record {
        // The event and the call are written from the domain types
        // (`call_wire`) into a reused buffer, which measures them; the frame
        // is then allocated once, at its exact size, and framed here.
        // `frames_are_what_prost_encodes` checks the bytes.
        let (frame, update_offset) = UPDATE_BYTES.with_borrow_mut(|bytes| {
            bytes.clear();
            call_wire::encode_event(&event, bytes);
            let event_len = bytes.len();
            if let Some(c) = call {
                call_wire::encode_call(c, bytes);
            }
            let call_len = call.map(|_| bytes.len() - event_len);
            let len = field_len(1, event_len) + call_len.map_or(0, |l| field_len(2, l));
            let mut frame = Vec::with_capacity(len + 6);
            put_header(1, len, &mut frame);
            let update_offset = frame.len();
            put_header(1, event_len, &mut frame);
            frame.extend_from_slice(&bytes[..event_len]);
            if let Some(len) = call_len {
                put_header(2, len, &mut frame);
                frame.extend_from_slice(&bytes[event_len..]);
            }
            if bytes.capacity() > UPDATE_BYTES_KEPT {
                // One outsized event does not pin its size on every thread.
                *bytes = Vec::new();
            }
            (frame, update_offset)
        });
        let meta = meta(MetaParts {
            call_id: event.call_id,
            conversation_id: event.conversation_id,
            event_type: event.event_type.number(),
            vendor: event.vendor.number(),
            direction: event.direction.map_or(0, Direction::number),
            call_direction: call.and_then(|c| c.direction).map_or(0, Direction::number),
            agent_id: event.agent_id,
            agent_ids: call.map(|c| c.agent_ids.clone()).unwrap_or_default(),
            queue_id: event.queue_id,
            call_queue_id: call.map(|c| c.queue_id.clone()).unwrap_or_default(),
        });
        Record {
            sequence: event.sequence,
            tenant: event.tenant_id,
            received_at: event.received_at,
            meta: OnceLock::from(meta),
            frame: Bytes::from(frame),
            update_offset,
        }
    }

    /// Rebuilds a record from a decoded `CallUpdate` and its bytes (a log
    /// that keeps no filter columns beside the bytes).
    pub fn from_update(sequence: u64, update: &pb::CallUpdate, bytes: &[u8]) -> Result<Record, RecordError> {
        let event = update.event.as_ref().ok_or(RecordError::NoEvent)?;
        let received_at = event.received_at.as_ref().and_then(convert::from_timestamp).unwrap_or_default();
        Ok(Record::from_parts(sequence, event.tenant_id.clone(), received_at, event_meta(update), bytes))
    }

    /// Rebuilds a record read back from storage with its filter metadata.
    pub fn from_parts(
        sequence: u64,
        tenant: String,
        received_at: DateTime<Utc>,
        meta: EventMeta,
        update: &[u8],
    ) -> Record {
        let mut record = Record::unread(sequence, tenant, received_at, update);
        record.meta = OnceLock::from(meta);
        record
    }

    /// A record whose filter metadata is decoded when first asked for.
    fn unread(sequence: u64, tenant: String, received_at: DateTime<Utc>, update: &[u8]) -> Record {
        let frame = update_frame(update);
        let update_offset = frame.len() - update.len();
        Record { sequence, tenant, received_at, meta: OnceLock::new(), frame, update_offset }
    }

    /// Rebuilds a record from its encoded `CallUpdate` alone (a log that
    /// keeps only the bytes and the columns its indexes need). Checks the
    /// update's top-level framing and that it holds an event, reading field
    /// headers only; the filter metadata is decoded on first use
    /// ([`Record::meta`]), so a replay that filters nothing never decodes it.
    pub fn from_stored(
        sequence: u64,
        tenant: String,
        received_at: DateTime<Utc>,
        update: &[u8],
    ) -> Result<Record, RecordError> {
        if field_ranges(update, 1)?.is_empty() {
            return Err(RecordError::NoEvent);
        }
        Ok(Record::unread(sequence, tenant, received_at, update))
    }

    /// What filters look at. For a stored record, decodes just the fields
    /// filters need and skips the rest by their headers. A stored update
    /// whose framing was checked but whose event does not decode matches
    /// only filters that ask for nothing (it is logged once per record).
    pub fn meta(&self) -> &EventMeta {
        self.meta.get_or_init(|| {
            decode_meta(self.update_bytes()).unwrap_or_else(|e| {
                tracing::error!(sequence = self.sequence, error = %e, "stored event does not decode; filters see no fields");
                EventMeta::default()
            })
        })
    }

    /// The encoded `Call` of the update (its one `call` field), when it has
    /// exactly one: a store that keeps the call state beside the log copies
    /// these bytes instead of encoding the call again.
    pub fn call_bytes(&self) -> Option<Bytes> {
        let update = self.frame.slice(self.update_offset..);
        match field_ranges(&update, 2).ok()?.as_slice() {
            [one] => Some(update.slice(one.clone())),
            _ => None,
        }
    }

    /// The encoded `SubscribeResponse` to stream.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The encoded `CallUpdate` (what the log stores).
    pub fn update_bytes(&self) -> &[u8] {
        &self.frame[self.update_offset..]
    }

    /// The encoded `CallEvent` of the update, as the byte ranges of every
    /// occurrence of its `event` field (protobuf merges them; a log that
    /// assigns positions on append stores the position as a second one).
    /// Reads field headers only, never the event itself.
    pub fn event_parts(&self) -> Result<Vec<Bytes>, RecordError> {
        let update = self.frame.slice(self.update_offset..);
        let parts: Vec<Bytes> = field_ranges(&update, 1)?.into_iter().map(|r| update.slice(r)).collect();
        if parts.is_empty() {
            return Err(RecordError::NoEvent);
        }
        Ok(parts)
    }
}

/// The encoded size of a message field whose message is `len` bytes.
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// Writes the key and length of a length-delimited field.
fn put_header(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

/// [`EventMeta`] of an encoded `CallUpdate`, decoding only the fields it needs.
fn decode_meta(update: &[u8]) -> Result<EventMeta, RecordError> {
    let m = MetaUpdate::decode(update)?;
    let (event, call) = (m.event.ok_or(RecordError::NoEvent)?, m.call.unwrap_or_default());
    Ok(meta(MetaParts {
        call_id: event.call_id,
        conversation_id: event.conversation_id,
        event_type: event.event_type,
        vendor: event.vendor,
        direction: event.direction,
        call_direction: call.direction,
        agent_id: event.agent_id,
        agent_ids: call.agent_ids,
        queue_id: event.queue_id,
        call_queue_id: call.queue_id,
    }))
}

/// The fields of a `CallUpdate` that [`EventMeta`] needs, with the tags of
/// `proto/switchboard/v1/call_event.proto` (`record_meta_matches_full_decode`
/// checks them against the generated code); prost skips every other field.
#[derive(Clone, PartialEq, Message)]
struct MetaUpdate {
    #[prost(message, optional, tag = "1")]
    event: Option<MetaEvent>,
    #[prost(message, optional, tag = "2")]
    call: Option<MetaCall>,
}

/// `CallEvent`'s filter fields.
#[derive(Clone, PartialEq, Message)]
struct MetaEvent {
    #[prost(string, tag = "5")]
    call_id: String,
    #[prost(string, tag = "6")]
    conversation_id: String,
    #[prost(int32, tag = "7")]
    event_type: i32,
    #[prost(int32, tag = "10")]
    vendor: i32,
    #[prost(int32, tag = "12")]
    direction: i32,
    #[prost(string, tag = "15")]
    agent_id: String,
    #[prost(string, tag = "16")]
    queue_id: String,
}

/// `Call`'s filter fields.
#[derive(Clone, PartialEq, Message)]
struct MetaCall {
    #[prost(int32, tag = "5")]
    direction: i32,
    #[prost(string, repeated, tag = "9")]
    agent_ids: Vec<String>,
    #[prost(string, tag = "10")]
    queue_id: String,
}

/// Wraps encoded `CallUpdate` bytes into an encoded `SubscribeResponse`
/// (`update` is field 1, length-delimited).
pub fn update_frame(call_update: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(call_update.len() + 6);
    put_header(1, call_update.len(), &mut buf);
    buf.extend_from_slice(call_update);
    Bytes::from(buf)
}

/// The value ranges of every length-delimited occurrence of `field` in one
/// encoded message, skipping other fields by their headers.
fn field_ranges(msg: &[u8], field: u32) -> Result<Vec<Range<usize>>, RecordError> {
    use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
    let mut out = Vec::with_capacity(2);
    let mut buf = msg;
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf)?;
        if tag == field && wire == WireType::LengthDelimited {
            let len =
                usize::try_from(decode_varint(&mut buf)?).map_err(|_| RecordError::Malformed("length overflow"))?;
            if len > buf.len() {
                return Err(RecordError::Malformed("truncated field"));
            }
            let start = msg.len() - buf.len();
            out.push(start..start + len);
            buf = &buf[len..];
        } else {
            skip_field(wire, tag, &mut buf, DecodeContext::default())?;
        }
    }
    Ok(out)
}

/// What filters look at, from an update: the event's call, type, vendor and
/// agent, the call's agents, direction and queue. The one derivation every
/// store uses (on a decoded update: [`Record::from_update`]; on the update
/// just encoded: [`Record::from_event`], which moves the strings instead).
pub fn event_meta(update: &pb::CallUpdate) -> EventMeta {
    let (event, call) = (update.event.as_ref(), update.call.as_ref());
    meta(MetaParts {
        call_id: event.map(|e| e.call_id.clone()).unwrap_or_default(),
        conversation_id: event.map(|e| e.conversation_id.clone()).unwrap_or_default(),
        event_type: event.map_or(0, |e| e.r#type),
        vendor: event.map_or(0, |e| e.vendor),
        direction: event.map_or(0, |e| e.direction),
        call_direction: call.map_or(0, |c| c.direction),
        agent_id: event.map(|e| e.agent_id.clone()).unwrap_or_default(),
        agent_ids: call.map(|c| c.agent_ids.clone()).unwrap_or_default(),
        queue_id: event.map(|e| e.queue_id.clone()).unwrap_or_default(),
        call_queue_id: call.map(|c| c.queue_id.clone()).unwrap_or_default(),
    })
}

/// The fields of an update that filters look at.
struct MetaParts {
    call_id: String,
    conversation_id: String,
    event_type: i32,
    vendor: i32,
    direction: i32,
    call_direction: i32,
    agent_id: String,
    agent_ids: Vec<String>,
    queue_id: String,
    call_queue_id: String,
}

fn meta(p: MetaParts) -> EventMeta {
    let mut agent_ids = p.agent_ids;
    if !p.agent_id.is_empty() && !agent_ids.contains(&p.agent_id) {
        agent_ids.push(p.agent_id);
    }
    EventMeta {
        call_id: p.call_id,
        conversation_id: p.conversation_id,
        event_type: EventType::from_number(p.event_type),
        vendor: Vendor::from_number(p.vendor),
        direction: Direction::from_number(if p.direction == 0 { p.call_direction } else { p.direction }),
        agent_ids,
        queue_id: if p.call_queue_id.is_empty() { p.queue_id } else { p.call_queue_id },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `from_event` frames the update's fields by hand: its bytes must be
    /// prost's, for an event with a call and one without (agent status).
    #[tokio::test]
    async fn frames_are_what_prost_encodes() {
        use crate::adapters::{Normalizer, PhoneNormalizer};
        use crate::domain::TenantId;
        use crate::hub::Hub;
        use crate::store::memory::MemoryStore;
        use crate::store::{IngestBatch, Store, StoreOptions};
        let store = MemoryStore::new(Hub::new(64), StoreOptions::default());
        let normalizer = Normalizer::new(PhoneNormalizer::new("US").unwrap());
        let agent = include_str!("../../tests/fixtures/8x8_event_streaming/agent-status-change.json");
        let started =
            r#"{"type":"callstarted","detail":{"callId":"c1","callType":"inbound","fromNumber":"+14155550100"}}"#;
        let mut without_call = 0;
        for payload in [started, agent, r#"{"type":"callconnected","detail":{"callId":"c1"}}"#] {
            let batch = IngestBatch {
                tenant: TenantId::parse("t").unwrap(),
                request_id: None,
                normalized: normalizer.normalize(None, payload.as_bytes(), None).unwrap(),
                received_at: Utc::now(),
                bridge_received_at: None,
            };
            let records = store.ingest(batch).await.unwrap().records;
            assert_eq!(records.len(), 1, "{payload}");
            let update = pb::CallUpdate::decode(records[0].update_bytes()).unwrap();
            without_call += usize::from(update.call.is_none());
            let want = pb::SubscribeResponse { response: Some(pb::subscribe_response::Response::Update(update)) };
            assert_eq!(records[0].frame().as_ref(), want.encode_to_vec().as_slice(), "{payload}");
        }
        assert_eq!(without_call, 1, "the agent event has no call: both framings are checked");
    }

    #[test]
    fn event_parts_are_the_event_field_occurrences_of_the_update() {
        let update = pb::CallUpdate {
            event: Some(pb::CallEvent { call_id: "sf:x".into(), call_sequence: 3, ..Default::default() }),
            call: Some(pb::Call { call_id: "sf:x".into(), ..Default::default() }),
        };
        let mut bytes = update.encode_to_vec();
        bytes.extend(convert::sequence_suffix(42, true));
        let record = Record::from_update(42, &update, &bytes).unwrap();
        let parts = record.event_parts().unwrap();
        assert_eq!(parts.len(), 2);
        let mut event = pb::CallEvent::default();
        for p in parts {
            event.merge(p).unwrap();
        }
        assert_eq!((event.call_id.as_str(), event.call_sequence, event.sequence), ("sf:x", 3, 42));
    }

    #[test]
    fn record_meta_matches_full_decode() {
        let update = pb::CallUpdate {
            event: Some(pb::CallEvent {
                call_id: "sf:x".into(),
                conversation_id: "conv".into(),
                r#type: EventType::CallHeld.number(),
                vendor: Vendor::SalesforceVoice.number(),
                direction: 0,
                agent_id: "ann".into(),
                queue_id: "".into(),
                tenant_id: "t".into(),
                ..Default::default()
            }),
            call: Some(pb::Call {
                call_id: "sf:x".into(),
                direction: Direction::Outbound.number(),
                agent_ids: vec!["bob".into()],
                queue_id: "q".into(),
                ..Default::default()
            }),
        };
        let bytes = update.encode_to_vec();
        let full = Record::from_update(7, &update, &bytes).unwrap();
        let light = Record::from_stored(7, "t".into(), full.received_at, &bytes).unwrap();
        assert_eq!(light.meta(), full.meta());
        assert_eq!(light.meta().agent_ids, ["bob", "ann"]);
        assert_eq!((light.update_bytes(), light.frame()), (full.update_bytes(), full.frame()));
        assert_eq!(light.call_bytes().unwrap(), update.call.unwrap().encode_to_vec());
        assert!(Record::from_stored(7, "t".into(), full.received_at, &[0x12, 0x00]).is_err(), "no event");
        assert!(Record::from_stored(7, "t".into(), full.received_at, &[0x0a, 0x05, 0x01]).is_err(), "truncated");
    }

    #[test]
    fn a_stored_event_that_does_not_decode_has_empty_meta() {
        // Framing is right (field 1, two bytes), the event inside is not.
        let record = Record::from_stored(7, "t".into(), Utc::now(), &[0x0a, 0x02, 0xff, 0xff]).unwrap();
        assert_eq!(record.meta(), &EventMeta::default());
    }

    #[test]
    fn a_truncated_update_is_an_error_not_a_panic() {
        let record = Record::from_parts(1, "t".into(), Utc::now(), EventMeta::default(), &[0x0a, 0x05, 0x01]);
        assert!(record.event_parts().is_err());
    }
}
