//! What the RPCs do, in terms of the domain, the store and the hub. The
//! tonic glue in `grpc/` only converts requests and errors.

pub mod ingest;
pub mod query;
pub mod subscribe;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::adapters::{AdapterError, FieldViolation, Normalizer};
use crate::hub::Hub;
use crate::store::{Store, StoreError};

/// Limits and intervals the services apply.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Largest Ingest payload.
    pub max_payload_bytes: usize,
    /// Default heartbeat interval of Subscribe streams.
    pub heartbeat_interval: Duration,
    /// Records read from the log per replay step.
    pub replay_batch: usize,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions { max_payload_bytes: 256 * 1024, heartbeat_interval: Duration::from_secs(15), replay_batch: 512 }
    }
}

/// Everything the RPC handlers share.
pub struct Services {
    /// The log and call state.
    pub store: Arc<dyn Store>,
    /// Live fan-out.
    pub hub: Arc<Hub>,
    /// Vendor adapters.
    pub normalizer: Normalizer,
    /// Limits.
    pub options: ServiceOptions,
    /// Fired on shutdown: every stream sends its final checkpoint and ends.
    pub shutdown: CancellationToken,
}

/// Why a request failed. Mapped to a gRPC status in `grpc::status`, and
/// nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The vendor payload is unusable.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The payload is larger than allowed.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Request fields (not the vendor payload) are invalid.
    #[error("invalid request: {}", .0.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; "))]
    InvalidRequest(Vec<FieldViolation>),
    /// No such resource (for this tenant).
    #[error("{0} not found")]
    NotFound(String),
}

impl ServiceError {
    /// An invalid request field.
    pub fn invalid(field: &str, description: impl Into<String>) -> ServiceError {
        ServiceError::InvalidRequest(vec![FieldViolation::new(field, description)])
    }
}
