//! Pre-encoded subscription frames.
//!
//! Each event is encoded once, when it is appended, into the bytes of a
//! `SubscribeResponse { update }`; every subscriber streams those same bytes.
//! [`SubscribeCodec`] writes them to the wire unchanged, so fan-out costs a
//! reference-count increment per subscriber instead of an encode.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::proto::v1 as pb;

/// The bytes of one encoded `switchboard.v1.SubscribeResponse`.
#[derive(Clone, Debug)]
pub struct EncodedResponse(pub Bytes);

impl EncodedResponse {
    /// Encodes a message the slow way (snapshots and checkpoints, which are
    /// per subscriber anyway).
    pub fn encode(msg: &pb::SubscribeResponse) -> EncodedResponse {
        EncodedResponse(Bytes::from(msg.encode_to_vec()))
    }
}

/// Wraps encoded `CallUpdate` bytes into an encoded `SubscribeResponse`
/// (`update` is field 1, length-delimited).
pub fn update_frame(call_update: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(call_update.len() + 6);
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut buf);
    prost::encoding::encode_varint(call_update.len() as u64, &mut buf);
    buf.extend_from_slice(call_update);
    Bytes::from(buf)
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

/// `BenchService.NoopSubscribe`: the same pre-encoded path as Subscribe.
#[cfg(feature = "bench")]
pub type NoopSubscribeCodec = EncodedCodec<crate::proto::bench::v1::NoopSubscribeRequest>;

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
}
