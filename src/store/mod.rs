//! The event log, call state and dedup keys behind one [`Store`] trait.
//!
//! * [`memory`]: tests and demos; nothing survives a restart.
//! * [`sqlite`]: the default; one file, WAL, one writer thread with group
//!   commit; survives `kill -9`.
//!
//! * [`nats`]: NATS JetStream shared by many replicas.
//!
//! Every store runs the same [ingest plan](crate::plan) (dedup, call-id
//! resolution, state machine): memory and sqlite in one serialized section
//! per commit, NATS over state it prefetched. A store fetches and writes; it
//! does not decide. Each hands committed records to the
//! [`Hub`](crate::hub::Hub) in log order.

mod key;
pub mod memory;
pub mod nats;
pub mod sqlite;
pub mod tail;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Call, CallState, Direction, TenantId, Vendor};

use crate::codec::Record;
pub use crate::plan::{IngestBatch, IngestOutcome};

/// The store's answer to an ingest.
#[derive(Clone, Debug)]
pub struct IngestResult {
    /// What happened.
    pub outcome: IngestOutcome,
    /// The appended records, or for a duplicate those of the first delivery
    /// still in the log.
    pub records: Vec<Arc<Record>>,
    /// For a duplicate: what identified it (`request_id`, `vendor_id`,
    /// `natural_key`, `content_hash`, `repeated_state`).
    pub dedup_hit: Option<&'static str>,
}

/// The extent of the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogBounds {
    /// The last sequence appended (0 when empty).
    pub last: u64,
    /// Every sequence up to and including this one was removed by retention.
    pub pruned_through: u64,
    /// The latest receive time among the removed events.
    pub pruned_through_time: Option<DateTime<Utc>>,
}

impl LogBounds {
    /// The oldest sequence that can still be read.
    pub fn oldest_available(&self) -> u64 {
        self.pruned_through + 1
    }
}

/// A consistent view of a tenant's active calls.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every active call.
    pub calls: Vec<Call>,
    /// The log position the calls reflect.
    pub as_of: u64,
}

/// Lifecycle filter of [`CallQuery`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StateFilter {
    /// Any call.
    #[default]
    Any,
    /// Not ended.
    Active,
    /// Only calls that ended.
    Ended,
}

/// A ListCalls query: newest first, keyset-paged on the call's first
/// sequence (which never changes).
#[derive(Clone, Debug, Default)]
pub struct CallQuery {
    /// Active, ended or any call.
    pub state: StateFilter,
    /// Only this vendor's calls.
    pub vendor: Option<Vendor>,
    /// Only calls in this direction.
    pub direction: Option<Direction>,
    /// Only calls this agent handled.
    pub agent_id: Option<String>,
    /// Only calls of this queue.
    pub queue_id: Option<String>,
    /// Only calls whose first sequence is below this (the page cursor).
    pub before_first_sequence: Option<u64>,
    /// Page size.
    pub limit: usize,
}

impl CallQuery {
    /// Whether a call passes the filter part of the query.
    pub fn matches(&self, c: &Call) -> bool {
        let state_ok = match self.state {
            StateFilter::Any => true,
            StateFilter::Active => c.state != CallState::Ended,
            StateFilter::Ended => c.state == CallState::Ended,
        };
        state_ok
            && self.vendor.is_none_or(|v| v == c.vendor)
            && self.direction.is_none_or(|d| Some(d) == c.direction)
            && self.agent_id.as_ref().is_none_or(|a| c.agent_ids.contains(a))
            && self.queue_id.as_ref().is_none_or(|q| *q == c.queue_id)
            && self.before_first_sequence.is_none_or(|b| c.first_sequence < b)
    }
}

/// A page of calls from an in-memory collection, newest first (stores that
/// keep call state in memory share this).
pub(crate) fn list_page<'a>(calls: impl Iterator<Item = &'a Call>, query: &CallQuery) -> Vec<Call> {
    let mut page: Vec<Call> = calls.filter(|c| query.matches(c)).cloned().collect();
    page.sort_by_key(|c| std::cmp::Reverse(c.first_sequence));
    page.truncate(query.limit);
    page
}

/// The active calls of an in-memory collection, oldest first.
pub(crate) fn active_calls<'a>(calls: impl Iterator<Item = &'a Call>) -> Vec<Call> {
    let mut active: Vec<Call> = calls.filter(|c| c.state.is_active()).cloned().collect();
    active.sort_by_key(|c| c.first_sequence);
    active
}

/// The active calls of an in-memory collection idle since before `before`,
/// least recently updated first (stores that keep call state in memory share
/// this).
pub(crate) fn idle_calls<'a>(calls: impl Iterator<Item = &'a Call>, before: DateTime<Utc>, limit: usize) -> Vec<Call> {
    let mut idle: Vec<&Call> = calls.filter(|c| c.state.is_active() && c.updated_at < before).collect();
    idle.sort_by_key(|c| c.updated_at);
    idle.into_iter().take(limit).cloned().collect()
}

/// Retention and dedup settings every store honours.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How long dedup keys are remembered.
    pub dedup_window: Duration,
    /// How long a synthesized (8x8 agent panel) call stays open for
    /// correlation without news.
    pub correlation_window: Duration,
    /// Events older than this are removed (`None`: no age limit).
    pub retention_max_age: Option<Duration>,
    /// At most this many events are kept (`None`: no count limit).
    pub retention_max_events: Option<u64>,
    /// Memory for the newest committed records, which catching-up
    /// subscribers read instead of the database (sqlite; 0 turns it off).
    pub replay_cache_bytes: usize,
}

impl StoreOptions {
    /// The windows the ingest plan applies.
    pub fn windows(&self) -> crate::plan::Windows {
        crate::plan::Windows { dedup: self.dedup_window, correlation: self.correlation_window }
    }
}

/// How long dedup keys are remembered (`--dedup-window`).
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// `--retention-max-age` (0: keep forever).
pub const DEFAULT_RETENTION_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// `--retention-max-events` (0: no limit).
pub const DEFAULT_RETENTION_MAX_EVENTS: u64 = 0;
/// `--replay-cache-bytes`: the newest 64 MiB of the log (about 100,000
/// events) stay in memory for catch-ups.
pub const DEFAULT_REPLAY_CACHE_BYTES: usize = 64 << 20;
/// How long an agent-panel call stays open for correlation (`--correlation-window`).
pub const DEFAULT_CORRELATION_WINDOW: Duration = Duration::from_secs(4 * 3600);

impl Default for StoreOptions {
    /// The server's defaults.
    fn default() -> Self {
        StoreOptions {
            dedup_window: DEFAULT_DEDUP_WINDOW,
            correlation_window: DEFAULT_CORRELATION_WINDOW,
            retention_max_age: Some(DEFAULT_RETENTION_MAX_AGE).filter(|d| !d.is_zero()),
            retention_max_events: Some(DEFAULT_RETENTION_MAX_EVENTS).filter(|n| *n > 0),
            replay_cache_bytes: DEFAULT_REPLAY_CACHE_BYTES,
        }
    }
}

/// What a retention pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Events removed.
    pub events: u64,
    /// Dedup keys removed.
    pub dedup_keys: u64,
    /// Ended calls removed.
    pub calls: u64,
    /// More is due: call again (retention runs in bounded steps).
    pub more: bool,
}

/// How many entries a store holds in each structure that grows with
/// traffic: what retention and the dedup window bound (tests assert these
/// return to their bounds; `/metrics` exports them as
/// `switchboard_store_entries{kind}` after each retention pass).
///
/// The bounds, with `E` = `--retention-max-events` (or what
/// `--retention-max-age` keeps), `W` = `--dedup-window`, `I` =
/// `--retention-interval`:
///
/// * `events`: the log; at most `E` plus one retention interval of ingest.
/// * `calls`: active calls plus ended calls with an event still in the log,
///   so at most `events` + active calls.
/// * `correlation_keys`: (memory) one per correlation key of a kept call,
///   each naming at most [`crate::plan::CORRELATION_CANDIDATES`] calls.
/// * `dedup_keys`: keys created within `W` (+ `I`): a few per ingest.
/// * `cached_calls`: call state held in process memory beside the durable
///   rows (the sqlite writer's cache); the same bound as `calls`.
///
/// NATS reports the stream's message count as `events` and this replica's
/// call mirror as `calls`; its dedup and correlation keys live in KV
/// buckets that JetStream expires by age (not in this process).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryCounts {
    /// Events in the log.
    pub events: u64,
    /// Call states kept.
    pub calls: u64,
    /// Correlation keys indexed in process memory (memory store).
    pub correlation_keys: u64,
    /// Dedup keys remembered.
    pub dedup_keys: u64,
    /// Calls cached in process memory beside the durable rows (sqlite).
    pub cached_calls: u64,
}

impl EntryCounts {
    /// `(kind label, count)` pairs, for the gauge.
    pub fn labeled(&self) -> [(&'static str, u64); 5] {
        [
            ("events", self.events),
            ("calls", self.calls),
            ("correlation_keys", self.correlation_keys),
            ("dedup_keys", self.dedup_keys),
            ("cached_calls", self.cached_calls),
        ]
    }
}

/// Store failures that callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot take or serve requests right now; retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The cursor points at events retention has removed.
    #[error("cursor expired: oldest available sequence is {oldest}")]
    CursorExpired {
        /// The oldest sequence still readable.
        oldest: u64,
    },
    /// The cursor is beyond the end of the log.
    #[error("cursor {cursor} is ahead of the log (last sequence {last})")]
    CursorAhead {
        /// The requested cursor.
        cursor: u64,
        /// The last sequence in the log.
        last: u64,
    },
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
    /// Stored data could not be read back.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("store backend error: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// The event log, call state and dedup keys.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Dedups, applies and appends one ingest atomically; returns once the
    /// events are durable (per the backend) and handed to the hub.
    async fn ingest(&self, batch: IngestBatch) -> Result<IngestResult, StoreError>;

    /// Up to `limit` records of `tenant` with sequence > `after`, in order.
    /// `CursorExpired` when retention removed events after `after`.
    async fn read(&self, tenant: &TenantId, after: u64, limit: usize) -> Result<Vec<Arc<Record>>, StoreError>;

    /// The extent of the log.
    async fn bounds(&self) -> Result<LogBounds, StoreError>;

    /// The cursor (exclusive) of the first event of `tenant` received at or
    /// after `since`. `CursorExpired` when retention removed such events.
    async fn seek_time(&self, tenant: &TenantId, since: DateTime<Utc>) -> Result<u64, StoreError>;

    /// One call.
    async fn get_call(&self, tenant: &TenantId, call_id: &str) -> Result<Option<Call>, StoreError>;

    /// A page of calls, newest first.
    async fn list_calls(&self, tenant: &TenantId, query: &CallQuery) -> Result<Vec<Call>, StoreError>;

    /// The tenant's active calls and the sequence they reflect, consistent
    /// with each other.
    async fn snapshot(&self, tenant: &TenantId) -> Result<Snapshot, StoreError>;

    /// Up to `limit` active calls (any tenant) whose last event was received
    /// before `before`, least recently updated first: the candidates for
    /// idle expiry ([`crate::service::expiry`]).
    async fn idle_calls(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Call>, StoreError>;

    /// Applies retention and the dedup window as of `now`.
    async fn prune(&self, now: DateTime<Utc>) -> Result<PruneStats, StoreError>;

    /// How many entries each bounded structure holds now ([`EntryCounts`]).
    /// Counts what the backend keeps in this process and what it keeps
    /// durably where that is cheap (sqlite's tables, on a reader connection;
    /// NATS reports the stream's message count and this replica's mirror,
    /// not the KV buckets, which JetStream bounds by age).
    async fn entry_counts(&self) -> Result<EntryCounts, StoreError>;

    /// Flushes and closes; later calls fail with `Closed`.
    async fn close(&self) -> Result<(), StoreError>;

    /// Whether the backend can currently take writes (for health).
    fn is_healthy(&self) -> bool {
        true
    }

    /// The backend's name (`memory`, `sqlite`, `nats`).
    fn kind(&self) -> &'static str;

    /// Records a replaying subscriber reads per step: what this backend
    /// serves efficiently in one go.
    fn replay_batch(&self) -> usize {
        512
    }
}
