//! switchboard: ingests call events from telephony and contact-center
//! vendors, normalizes them into one canonical call lifecycle, and streams it
//! to subscribers over gRPC without losing an event.
//!
//! # Layers
//!
//! Imports run one way, top to bottom (DESIGN §11.1):
//!
//! ```text
//! main → cli → app → grpc → service → {store, hub} → {plan, codec, adapters} → domain
//! ```
//!
//! * [`domain`]: the canonical model and the state machine; plain Rust.
//! * [`adapters`]: one module and one mapping table per vendor.
//! * [`codec`]: the generated protobuf code, domain ⇄ protobuf, and the
//!   encoded [`codec::Record`] that the log stores, the hub fans out and the
//!   RPCs answer with.
//! * [`plan`]: the ingest plan shared by every store (dedup ladder, call
//!   resolution, lifecycle steps), pure over what the store lets it read.
//! * [`store`] (memory, sqlite, nats): fetches what the plan reads and writes
//!   what it decided; [`hub`]: live fan-out of committed records.
//! * [`service`]: what each RPC does; [`grpc`]: tonic glue, access, RPC spans
//!   and metrics, and the one place errors become statuses.
//! * [`app`]: builds and runs the server; `main` only wires the [`cli`].
//! * [`clock`]: time as an input, passed in through the app builder.
//! * [`board`]: the call board page and its embedded assets, served by
//!   [`grpc`] on `GET /`.
//!
//! # The flow of one `Ingest` (DESIGN §1)
//!
//! 1. [`grpc::ingest`] converts the request; [`service::ingest`] checks limits.
//! 2. [`adapters`] parses the vendor JSON once and maps it to canonical
//!    [`domain::EventDraft`]s.
//! 3. The [`store`] runs the [`plan`]: dedup, call-id resolution and the
//!    [`domain::lifecycle`] state machine; then appends durably, encoding each
//!    event once ([`codec::Record`]).
//! 4. The store hands committed records, in log order, to the [`hub`], which
//!    fans them out to live subscribers ([`service::subscribe`]); subscribers
//!    that lag or resume read the log instead. The Ingest answer is built
//!    from the same encoded bytes.

pub mod adapters;
pub mod alloc;
pub mod app;
pub mod auth;
pub mod board;
pub mod cli;
pub mod clock;
pub mod codec;
pub mod config;
pub mod connect;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod hub;
pub mod plan;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tls;

/// The generated protobuf messages, clients and servers (`switchboard.v1`):
/// what clients of the service compile against.
pub use codec::proto;
