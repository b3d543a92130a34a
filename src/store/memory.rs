//! In-memory store: for tests and demos. Same semantics as the durable
//! stores (dedup, retention, consistent snapshots); nothing survives a
//! restart.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hashbrown::HashMap;

use super::key::{Key, KeyRef};
use super::{
    CallQuery, EntryCounts, IngestBatch, IngestOutcome, IngestResult, LogBounds, PruneStats, Record, Snapshot, Store,
    StoreError, StoreOptions,
};
use crate::domain::{Call, TenantId};
use crate::hub::Hub;
use crate::plan::{self, DedupEntry, StateView};

/// Everything the store holds. Each collection that grows with traffic has
/// its bound here and the code that removes entries in [`Store::prune`]
/// (run every `--retention-interval`); [`Store::entry_counts`] reports them.
#[derive(Default)]
struct Inner {
    /// The log. Bound: `--retention-max-events` / `--retention-max-age`;
    /// prune pops the front.
    events: VecDeque<Arc<Record>>,
    /// Call state. Bound: active calls plus ended calls with an event still
    /// in the log; prune drops an ended call once its last event is pruned.
    ///
    /// Boxed: a `Call` is over 600 bytes, and a table of them inline made
    /// every doubling of the map copy hundreds of megabytes into freshly
    /// zeroed pages (a quarter of the server's CPU in a `perf` profile of
    /// S1, and its slowest answers); boxed, a rehash moves pointers.
    calls: HashMap<Key, Box<Call>>,
    /// Correlation key → recent call ids (at most
    /// [`plan::CORRELATION_CANDIDATES`] each). Bound: keys of kept calls;
    /// prune drops ids whose call is gone and keys left empty.
    correlated: HashMap<Key, Vec<String>>,
    /// Dedup keys. Bound: `--dedup-window`; prune drops keys created before
    /// `now - window`.
    /// Boxed for the same reason as `calls`.
    dedup: HashMap<Key, Box<DedupEntry>>,
    last: u64,
    pruned_through: u64,
    pruned_through_time: Option<DateTime<Utc>>,
    closed: bool,
}

impl StateView for Inner {
    type Error = StoreError;

    fn call(&mut self, tenant: &str, call_id: &str) -> Result<Option<Call>, StoreError> {
        Ok(self.calls.get(&KeyRef(tenant, call_id)).map(|c| Call::clone(c)))
    }

    fn correlated(&mut self, tenant: &str, key: &str) -> Result<Vec<Call>, StoreError> {
        let Some(ids) = self.correlated.get(&KeyRef(tenant, key)) else {
            return Ok(Vec::new());
        };
        Ok(ids.iter().rev().filter_map(|id| self.calls.get(&KeyRef(tenant, id)).map(|c| Call::clone(c))).collect())
    }

    fn dedup(&mut self, tenant: &str, key: &str) -> Result<Option<DedupEntry>, StoreError> {
        Ok(self.dedup.get(&KeyRef(tenant, key)).map(|e| DedupEntry::clone(e)))
    }
}

impl Inner {
    fn position(&self, after: u64) -> usize {
        self.events.partition_point(|r| r.sequence <= after)
    }

    fn by_sequences(&self, seqs: &[u64]) -> Vec<Arc<Record>> {
        seqs.iter()
            .filter_map(|s| {
                let i = self.position(s.saturating_sub(1));
                self.events.get(i).filter(|r| r.sequence == *s).cloned()
            })
            .collect()
    }
}

/// The in-memory store.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    hub: Arc<Hub>,
    opts: StoreOptions,
}

impl MemoryStore {
    /// An empty store publishing to `hub`.
    pub fn new(hub: Arc<Hub>, opts: StoreOptions) -> MemoryStore {
        MemoryStore { inner: Mutex::new(Inner::default()), hub, opts }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if guard.closed {
            return Err(StoreError::Closed);
        }
        Ok(guard)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ingest(&self, batch: IngestBatch) -> Result<IngestResult, StoreError> {
        let mut inner = self.lock()?;
        let mut next = inner.last + 1;
        let plan = plan::plan(&batch, &mut *inner, &mut next, self.opts.windows())?;
        let tenant = batch.tenant.as_str().to_string();
        for (key, entry) in plan.dedup_writes {
            inner.dedup.insert((tenant.clone(), key), Box::new(entry));
        }
        if plan.outcome != IngestOutcome::Accepted {
            let records = inner.by_sequences(&plan.duplicate_of);
            return Ok(IngestResult { outcome: plan.outcome, records, dedup_hit: plan.dedup_hit });
        }
        let mut records = Vec::with_capacity(plan.appended.len());
        for (event, call) in plan.appended {
            inner.last = event.sequence;
            let record = Arc::new(Record::from_event(event, call.as_ref()));
            inner.events.push_back(record.clone());
            if let Some(call) = call {
                if let Some(key) = &call.correlation_key {
                    let ids = inner.correlated.entry((tenant.clone(), key.clone())).or_default();
                    ids.retain(|id| *id != call.call_id);
                    ids.push(call.call_id.clone());
                    if ids.len() > plan::CORRELATION_CANDIDATES {
                        ids.remove(0);
                    }
                }
                match inner.calls.get_mut(&KeyRef(&tenant, &call.call_id)) {
                    Some(stored) => **stored = call,
                    None => {
                        inner.calls.insert((tenant.clone(), call.call_id.clone()), Box::new(call));
                    }
                }
            }
            records.push(record);
        }
        // Publishing under the lock keeps the hub in log order.
        self.hub.publish(&records);
        Ok(IngestResult { outcome: IngestOutcome::Accepted, records, dedup_hit: None })
    }

    async fn read(&self, tenant: &TenantId, after: u64, limit: usize) -> Result<Vec<Arc<Record>>, StoreError> {
        let inner = self.lock()?;
        if after < inner.pruned_through {
            return Err(StoreError::CursorExpired { oldest: inner.pruned_through + 1 });
        }
        let start = inner.position(after);
        Ok(inner.events.range(start..).filter(|r| r.tenant == tenant.as_str()).take(limit).cloned().collect())
    }

    async fn bounds(&self) -> Result<LogBounds, StoreError> {
        let inner = self.lock()?;
        Ok(LogBounds {
            last: inner.last,
            pruned_through: inner.pruned_through,
            pruned_through_time: inner.pruned_through_time,
        })
    }

    async fn seek_time(&self, tenant: &TenantId, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let inner = self.lock()?;
        if inner.pruned_through_time.is_some_and(|t| t >= since) {
            return Err(StoreError::CursorExpired { oldest: inner.pruned_through + 1 });
        }
        let first = inner.events.iter().find(|r| r.tenant == tenant.as_str() && r.received_at >= since);
        Ok(match first {
            Some(r) => r.sequence - 1,
            None => inner.last,
        }
        .max(inner.pruned_through))
    }

    async fn get_call(&self, tenant: &TenantId, call_id: &str) -> Result<Option<Call>, StoreError> {
        Ok(self.lock()?.calls.get(&KeyRef(tenant.as_str(), call_id)).map(|c| Call::clone(c)))
    }

    async fn list_calls(&self, tenant: &TenantId, query: &CallQuery) -> Result<Vec<Call>, StoreError> {
        let inner = self.lock()?;
        let mine = inner.calls.iter().filter(|((t, _), _)| t == tenant.as_str()).map(|(_, c)| &**c);
        Ok(super::list_page(mine, query))
    }

    async fn snapshot(&self, tenant: &TenantId) -> Result<Snapshot, StoreError> {
        let inner = self.lock()?;
        let mine = inner.calls.iter().filter(|((t, _), _)| t == tenant.as_str()).map(|(_, c)| &**c);
        Ok(Snapshot { calls: super::active_calls(mine), as_of: inner.last })
    }

    async fn idle_calls(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Call>, StoreError> {
        Ok(super::idle_calls(self.lock()?.calls.values().map(|c| &**c), before, limit))
    }

    async fn prune(&self, now: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        let mut inner = self.lock()?;
        let mut stats = PruneStats::default();
        let max_age = self.opts.retention_max_age.and_then(|a| chrono::Duration::from_std(a).ok());
        let over = |inner: &Inner| self.opts.retention_max_events.is_some_and(|m| inner.events.len() as u64 > m);
        while let Some(front) = inner.events.front() {
            let old = max_age.and_then(|a| now.checked_sub_signed(a)).is_some_and(|oldest| front.received_at < oldest);
            if !old && !over(&inner) {
                break;
            }
            let (seq, t) = (front.sequence, front.received_at);
            inner.events.pop_front();
            inner.pruned_through = seq;
            inner.pruned_through_time = Some(inner.pruned_through_time.map_or(t, |p| p.max(t)));
            stats.events += 1;
        }
        let oldest = chrono::Duration::from_std(self.opts.dedup_window).ok().and_then(|w| now.checked_sub_signed(w));
        let before = inner.dedup.len();
        inner.dedup.retain(|_, e| oldest.is_none_or(|o| e.created_at >= o));
        stats.dedup_keys = (before - inner.dedup.len()) as u64;
        let pruned = inner.pruned_through;
        let before = inner.calls.len();
        inner.calls.retain(|_, c| c.state.is_active() || c.last_sequence > pruned);
        stats.calls = (before - inner.calls.len()) as u64;
        let Inner { correlated, calls, .. } = &mut *inner;
        correlated.retain(|(t, _), ids| {
            ids.retain(|id| calls.contains_key(&KeyRef(t, id)));
            !ids.is_empty()
        });
        Ok(stats)
    }

    async fn entry_counts(&self) -> Result<EntryCounts, StoreError> {
        let inner = self.lock()?;
        Ok(EntryCounts {
            events: inner.events.len() as u64,
            calls: inner.calls.len() as u64,
            correlation_keys: inner.correlated.len() as u64,
            dedup_keys: inner.dedup.len() as u64,
            cached_calls: 0,
        })
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
