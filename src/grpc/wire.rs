//! Pre-encoded subscription frames.
//!
//! Each event is encoded once, when it is appended, into the bytes of a
//! `SubscribeResponse { update }`; every subscriber streams those same bytes.
//! [`SubscribeCodec`] writes them to the wire unchanged, so fan-out costs a
//! reference-count increment per subscriber instead of an encode.

use bytes::{BufMut, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

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

/// Server codec of `CallService.Subscribe`: decodes requests with prost,
/// writes pre-encoded responses as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct SubscribeCodec;

impl Codec for SubscribeCodec {
    type Encode = EncodedResponse;
    type Decode = pb::SubscribeRequest;
    type Encoder = RawEncoder;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder
    }
}

/// Writes [`EncodedResponse`] bytes unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = EncodedResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item.0);
        Ok(())
    }
}

/// Decodes `SubscribeRequest` with prost.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestDecoder;

impl Decoder for RequestDecoder {
    type Item = pb::SubscribeRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        pb::SubscribeRequest::decode(src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("malformed SubscribeRequest: {e}")))
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
