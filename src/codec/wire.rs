//! Pre-encoded responses and the codecs that write them.
//!
//! Each event is encoded once, when it is appended, into the bytes of a
//! `SubscribeResponse { update }`; every subscriber streams those same bytes,
//! and an Ingest answer embeds the event's part of them.
//! [`SubscribeCodec`] and [`IngestCodec`] write them to the wire unchanged,
//! so fan-out costs a reference-count increment per subscriber instead of an
//! encode, and an Ingest answer costs a copy instead of a decode and encode.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::convert;
use super::proto::v1 as pb;
#[cfg(test)]
use super::record::update_frame;
use super::record::{Record, RecordError};
use crate::domain::Call;

/// The bytes of one encoded response message (`SubscribeResponse`,
/// `IngestResponse`), written to the wire as they are.
#[derive(Clone, Debug)]
pub struct EncodedResponse(pub Bytes);

impl EncodedResponse {
    /// Encodes a message the slow way (snapshots and checkpoints, which are
    /// per subscriber anyway).
    pub fn encode(msg: &impl Message) -> EncodedResponse {
        EncodedResponse(Bytes::from(msg.encode_to_vec()))
    }

    /// A `SubscribeResponse { checkpoint }`.
    pub fn checkpoint(sequence: u64, reason: pb::CheckpointReason) -> EncodedResponse {
        EncodedResponse::encode(&pb::SubscribeResponse {
            response: Some(pb::subscribe_response::Response::Checkpoint(pb::Checkpoint {
                sequence,
                reason: reason as i32,
            })),
        })
    }

    /// A `SubscribeResponse { snapshot }` of one call.
    pub fn snapshot(call: &Call) -> EncodedResponse {
        EncodedResponse::encode(&pb::SubscribeResponse {
            response: Some(pb::subscribe_response::Response::Snapshot(convert::call(call))),
        })
    }

    /// A `SubscribeResponse { update }` of a logged event: its shared bytes.
    pub fn update(record: &Record) -> EncodedResponse {
        EncodedResponse(record.frame().clone())
    }

    /// An `IngestResponse` whose `events` are the logged events' own bytes
    /// (field numbers from `ingest_service.proto`: outcome 1, events 2,
    /// vendor 3).
    pub fn ingest(
        outcome: pb::IngestOutcome,
        vendor: i32,
        records: &[std::sync::Arc<Record>],
    ) -> Result<Self, RecordError> {
        use prost::encoding::{WireType, encode_key, encode_varint, int32};
        let mut buf = Vec::with_capacity(16 + records.iter().map(|r| r.update_bytes().len()).sum::<usize>());
        if outcome as i32 != 0 {
            int32::encode(1, &(outcome as i32), &mut buf);
        }
        for record in records {
            let parts = record.event_parts()?;
            encode_key(2, WireType::LengthDelimited, &mut buf);
            encode_varint(parts.iter().map(|p| p.len() as u64).sum(), &mut buf);
            for p in &parts {
                buf.extend_from_slice(p);
            }
        }
        if vendor != 0 {
            int32::encode(3, &vendor, &mut buf);
        }
        Ok(EncodedResponse(Bytes::from(buf)))
    }
}

/// Server codec of a streaming RPC whose responses are pre-encoded: decodes
/// the request `Req` with prost, writes [`EncodedResponse`]s as they are.
#[derive(Debug)]
pub struct EncodedCodec<Req>(PhantomData<fn() -> Req>);

impl<Req> Default for EncodedCodec<Req> {
    fn default() -> Self {
        EncodedCodec(PhantomData)
    }
}

/// `CallService.Subscribe`.
pub type SubscribeCodec = EncodedCodec<pb::SubscribeRequest>;

/// `IngestService.Ingest`: answers with [`EncodedResponse::ingest`].
pub type IngestCodec = EncodedCodec<pb::IngestRequest>;

/// `BenchService.NoopSubscribe`: the same pre-encoded path as Subscribe.
#[cfg(feature = "bench")]
pub type NoopSubscribeCodec = EncodedCodec<super::proto::bench::v1::NoopSubscribeRequest>;

impl<Req: Message + Default + Send + 'static> Codec for EncodedCodec<Req> {
    type Encode = EncodedResponse;
    type Decode = Req;
    type Encoder = RawEncoder;
    type Decoder = RequestDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

/// Writes [`EncodedResponse`] bytes unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawEncoder;

/// Initial encode buffer of a stream. tonic's default (8 KiB per RPC,
/// allocated when the stream opens) costs each idle subscriber a resident
/// page; frames are a few hundred bytes to 2 KB and the buffer grows when a
/// burst needs it.
const STREAM_BUFFER_BYTES: usize = 1024;
/// Encoded frames gathered into one HTTP/2 write before yielding (tonic's
/// default).
const STREAM_YIELD_BYTES: usize = 32 * 1024;

impl Encoder for RawEncoder {
    type Item = EncodedResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item.0);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(STREAM_BUFFER_BYTES, STREAM_YIELD_BYTES)
    }
}

/// Decodes the request message with prost.
#[derive(Debug)]
pub struct RequestDecoder<Req>(PhantomData<fn() -> Req>);

impl<Req: Message + Default> Decoder for RequestDecoder<Req> {
    type Item = Req;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        Req::decode(src).map(Some).map_err(|e| {
            let name = std::any::type_name::<Req>().rsplit("::").next().unwrap_or("request");
            Status::invalid_argument(format!("malformed {name}: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_frame_decodes_as_a_subscribe_response() {
        let update = pb::CallUpdate {
            event: Some(pb::CallEvent { sequence: 42, call_id: "sf:x".into(), ..Default::default() }),
            call: None,
        };
        let frame = update_frame(&update.encode_to_vec());
        let decoded = pb::SubscribeResponse::decode(frame).unwrap();
        assert_eq!(decoded.response, Some(pb::subscribe_response::Response::Update(update)));
    }

    #[test]
    fn an_ingest_answer_decodes_as_the_stored_events() {
        let event = pb::CallEvent { sequence: 7, call_id: "sf:x".into(), r#type: 3, ..Default::default() };
        let update = pb::CallUpdate { event: Some(event.clone()), call: Some(pb::Call::default()) };
        let mut bytes = update.encode_to_vec();
        bytes.extend(convert::sequence_suffix(9, true));
        let record = std::sync::Arc::new(Record::from_update(9, &update, &bytes).unwrap());
        let answer = EncodedResponse::ingest(pb::IngestOutcome::Accepted, 2, &[record.clone(), record]).unwrap();
        let decoded = pb::IngestResponse::decode(answer.0).unwrap();
        assert_eq!(decoded.outcome, pb::IngestOutcome::Accepted as i32);
        assert_eq!(decoded.vendor, 2);
        assert_eq!(decoded.events, vec![pb::CallEvent { sequence: 9, ..event.clone() }; 2]);
        let empty = EncodedResponse::ingest(pb::IngestOutcome::Ignored, 0, &[]).unwrap();
        assert_eq!(pb::IngestResponse::decode(empty.0).unwrap().outcome, pb::IngestOutcome::Ignored as i32);
    }
}
