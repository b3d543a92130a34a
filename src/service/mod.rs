//! What the RPCs do, in terms of the domain, the store and the hub. The
//! tonic glue in `grpc/` only converts requests and errors.

pub mod expiry;
pub mod ingest;
pub mod query;
pub mod subscribe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::adapters::{AdapterError, FieldViolation, Normalizer};
use crate::clock::SharedClock;
use crate::hub::Hub;
use crate::store::{Store, StoreError};

/// Limits and intervals the services apply.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Largest Ingest payload.
    pub max_payload_bytes: usize,
    /// Default heartbeat interval of Subscribe streams.
    pub heartbeat_interval: Duration,
    /// Concurrent Subscribe streams per tenant.
    pub max_subscribers_per_tenant: usize,
    /// Calls with no event for this long are closed as expired (`None`:
    /// never); see [`expiry`].
    pub call_idle_timeout: Option<Duration>,
}

/// `--heartbeat-interval`.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// `--max-payload-bytes`.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// `--max-subscribers-per-tenant`.
pub const DEFAULT_MAX_SUBSCRIBERS_PER_TENANT: usize = 10_000;
/// `--call-idle-timeout`: long enough for any real call and its wrap-up,
/// short enough that a wallboard is clean by the next shift.
pub const DEFAULT_CALL_IDLE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

impl Default for ServiceOptions {
    /// The server's defaults.
    fn default() -> Self {
        ServiceOptions {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            max_subscribers_per_tenant: DEFAULT_MAX_SUBSCRIBERS_PER_TENANT,
            call_idle_timeout: Some(DEFAULT_CALL_IDLE_TIMEOUT),
        }
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
    /// Payload, heartbeat and subscriber limits the RPCs enforce.
    pub options: ServiceOptions,
    /// Fired on shutdown: every stream sends its final checkpoint and ends.
    pub shutdown: CancellationToken,
    /// Open Subscribe streams per tenant.
    pub subscribers: SubscriberSlots,
    /// Where ingest reads the time it stamps events with.
    pub clock: SharedClock,
}

impl Services {
    /// Sets the gauges of the log and the live subscribers (the health loop
    /// calls this every second).
    pub async fn refresh_gauges(&self) {
        if let Ok(b) = self.store.bounds().await {
            metrics::gauge!("switchboard_log_last_sequence").set(b.last as f64);
            metrics::gauge!("switchboard_log_oldest_sequence").set(b.oldest_available() as f64);
            metrics::gauge!("switchboard_log_events").set(b.last.saturating_sub(b.pruned_through) as f64);
        }
        metrics::gauge!("switchboard_live_subscribers").set(self.hub.subscribers() as f64);
    }
}

/// Counts open Subscribe streams per tenant, so one tenant cannot exhaust
/// the server.
#[derive(Default)]
pub struct SubscriberSlots {
    /// Tenant → open streams. Bound: tenants with an open stream; the last
    /// [`SubscriberSlot`] of a tenant removes its entry when dropped, and a
    /// refused acquire adds none.
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open stream; dropping it frees the slot.
pub struct SubscriberSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    tenant: String,
}

impl SubscriberSlots {
    /// Takes a slot for `tenant` unless it already has `max` streams.
    pub fn acquire(&self, tenant: &str, max: usize) -> Result<SubscriberSlot, ServiceError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.get(tenant).copied().unwrap_or(0) >= max {
            return Err(ServiceError::TooManySubscribers { limit: max });
        }
        *open.entry(tenant.to_string()).or_insert(0) += 1;
        metrics::gauge!("switchboard_subscribers").increment(1.0);
        Ok(SubscriberSlot { open: self.open.clone(), tenant: tenant.to_string() })
    }

    /// Open streams of all tenants.
    pub fn total(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }
}

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.tenant);
            }
        }
        metrics::gauge!("switchboard_subscribers").decrement(1.0);
    }
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
    /// The tenant has as many Subscribe streams as allowed.
    #[error("the tenant already has {limit} subscriptions")]
    TooManySubscribers {
        /// The limit.
        limit: usize,
    },
}

impl ServiceError {
    /// An invalid request field.
    pub fn invalid(field: &str, description: impl Into<String>) -> ServiceError {
        ServiceError::InvalidRequest(vec![FieldViolation::new(field, description)])
    }
}
