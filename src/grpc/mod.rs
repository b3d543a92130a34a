//! The gRPC edge: tonic services, conversions, error mapping and the server
//! assembly (health, reflection, gRPC-Web, CORS, keepalive, limits).

pub mod calls;
pub mod convert;
pub mod ingest;
pub mod json;
pub mod server;
pub mod status;
pub mod tenancy;
pub mod wire;
