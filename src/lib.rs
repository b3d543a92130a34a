//! switchboard: ingests call events from telephony and contact-center
//! vendors, normalizes them into one canonical call lifecycle, and streams it
//! to subscribers over gRPC without losing an event.
//!
//! The flow of one `Ingest` (DESIGN §1), module by module:
//!
//! 1. [`grpc::ingest`] converts the request; [`service::ingest`] checks limits.
//! 2. [`adapters`] parses the vendor JSON once and maps it to canonical
//!    [`domain::EventDraft`]s (one module and one mapping table per vendor).
//! 3. The [`store`] runs [`store::planner`] in one serialized section: dedup,
//!    call-id resolution, the [`domain::lifecycle`] state machine and
//!    sequence assignment; then appends durably.
//! 4. The store hands committed records, in log order, to the [`hub`], which
//!    fans them out to live subscribers ([`service::subscribe`]); subscribers
//!    that lag or resume read the log instead.
//!
//! [`app::App`] builds and runs the whole server; `main` only wires the CLI.

pub mod adapters;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod codec;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod hub;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tls;

/// The generated protobuf messages, clients and servers (`switchboard.v1`):
/// what clients of the service compile against.
pub use codec::proto;
