//! End-to-end tests of the gRPC API: each test starts the real server
//! in-process on a random loopback port and talks to it through the
//! generated clients.

#[path = "../common/mod.rs"]
mod common;

#[cfg(feature = "bench")]
mod bench;
mod conformance;
mod durability;
mod errors;
mod ingest;
mod migration;
mod ops;
mod query;
mod replicas;
mod security;
mod subscribe;
