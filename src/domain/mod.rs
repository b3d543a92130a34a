//! The canonical call model and the rules that move a call through its
//! lifecycle.
//!
//! Plain Rust: no tonic, prost or tokio here. Vendor adapters produce
//! [`EventDraft`]s; the store runs [`lifecycle::apply`] on them in log order;
//! the gRPC edge converts the results to protobuf.

pub mod draft;
pub mod filter;
pub mod identity;
pub mod lifecycle;
pub mod model;
pub mod tenant;

pub use draft::{CallFacts, CallRef, Correlation, EventDraft, Identity, Normalized, VendorOrder};
pub use filter::{EventFilter, EventMeta};
pub use model::*;
pub use tenant::TenantId;
