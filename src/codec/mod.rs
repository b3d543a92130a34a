//! The codec floor: the generated protobuf code and the bytes switchboard
//! stores, fans out and streams.
//!
//! An event is encoded once, when its store appends it; the log keeps those
//! bytes, the hub fans them out, replay reads them back, Subscribe streams
//! them and Ingest answers with them, all without another encode or parse.
//! Everything above (`store`, `hub`, `service`, `grpc`) meets here; nothing
//! here knows tonic services, stores or the hub.
//!
//! * [`proto`]: the code generated from `proto/`.
//! * [`convert`]: domain ⇄ protobuf.
//! * [`call_wire`]: a domain call's wire bytes without the generated struct
//!   (the hot path's one encode of the call).
//! * [`record`]: one logged event as stored and fanned out ([`Record`]).
//! * [`wire`]: pre-encoded responses and the per-method tonic codecs that
//!   write them unchanged.

pub mod call_wire;
pub mod convert;
pub mod proto;
pub mod record;
pub mod wire;

pub use record::Record;
