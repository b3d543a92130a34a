//! Subscribe (DESIGN §5): snapshot, replay from the log, hand-off to live,
//! heartbeats, and falling back to the log when a subscriber lags.
//!
//! The invariant: `cursor` is the highest log sequence this subscription has
//! fully dealt with (sent, or skipped by the filter or the tenant). Every
//! record above it reaches the client exactly once, in order:
//!
//! * Replay reads the log above `cursor` in batches. Only when a read comes
//!   back short does the subscription register with the hub, and then it
//!   reads once more: everything published before the registration is in the
//!   log by then (records are published after they commit), everything after
//!   it is in the live queue. Live records at or below `cursor` are dropped.
//! * Lagging: the hub closes a full queue after a gap-free prefix; the
//!   subscription drains that prefix and goes back to replay at `cursor`.
//! * A heartbeat may advance `cursor` to the hub's head only when the queue
//!   was drained after reading the head and the queue is not lagged: then
//!   every matching record up to the head has been sent.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::time::{Instant, MissedTickBehavior};

use super::{ServiceError, Services};
use crate::codec::Record;
use crate::codec::proto::v1 as pb;
use crate::codec::wire::EncodedResponse;
use crate::domain::{EventFilter, TenantId};
use crate::hub::LiveFeed;
use crate::store::StoreError;

/// Where a subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Live from now.
    Live,
    /// After this sequence (exclusive).
    After(u64),
    /// At the first event received at or after this time.
    Since(DateTime<Utc>),
    /// At the oldest event in the log.
    FromBeginning,
}

/// A validated Subscribe request.
#[derive(Clone, Debug)]
pub struct SubscribeSpec {
    /// Whose events.
    pub tenant: TenantId,
    /// Which events.
    pub filter: Arc<EventFilter>,
    /// Where to start.
    pub start: Start,
    /// Send active calls first.
    pub include_snapshot: bool,
    /// Heartbeat interval (`None`: the server default).
    pub heartbeat: Option<Duration>,
}

/// A stream of encoded `SubscribeResponse`s; ends with an error or, on
/// shutdown, after a SHUTDOWN checkpoint.
pub type Subscription = std::pin::Pin<Box<dyn Stream<Item = Result<EncodedResponse, StoreError>> + Send>>;

/// What woke the live loop.
enum Wake {
    Record(Option<Arc<Record>>),
    Heartbeat,
    Shutdown,
}

impl Services {
    /// Opens a subscription. Errors that can be known up front (expired
    /// cursor) are returned here, before the stream starts.
    pub async fn subscribe(&self, spec: SubscribeSpec) -> Result<Subscription, ServiceError> {
        let slot = self.subscribers.acquire(spec.tenant.as_str(), self.options.max_subscribers_per_tenant)?;
        let store = self.store.clone();
        let hub = self.hub.clone();
        let shutdown = self.shutdown.clone();
        let batch = self.store.replay_batch();
        let heartbeat = spec.heartbeat.unwrap_or(self.options.heartbeat_interval);
        let tenant = spec.tenant.clone();
        let filter = spec.filter.clone();

        let mut live: Option<LiveFeed> = None;
        let mut snap = None;
        if spec.include_snapshot {
            live = Some(hub.subscribe(tenant.as_str(), filter.clone()));
            snap = Some(store.snapshot(&tenant).await?);
        }
        let from_beginning = spec.start == Start::FromBeginning;
        let cursor = match spec.start {
            Start::Live => match &snap {
                Some(s) => s.as_of,
                None => {
                    live = Some(hub.subscribe(tenant.as_str(), filter.clone()));
                    hub.head()
                }
            },
            Start::After(n) => {
                let bounds = store.bounds().await?;
                if n < bounds.pruned_through {
                    return Err(StoreError::CursorExpired { oldest: bounds.oldest_available() }.into());
                }
                let last = bounds.last.max(hub.head());
                if n > last {
                    return Err(StoreError::CursorAhead { cursor: n, last }.into());
                }
                n
            }
            Start::FromBeginning => store.bounds().await?.pruned_through,
            Start::Since(t) => store.seek_time(&tenant, t).await?,
        };

        let stream = async_stream::stream! {
            let _slot = slot;
            if let Some(s) = snap {
                for call in s.calls.iter().filter(|c| filter.matches_call(c)) {
                    yield Ok(EncodedResponse::snapshot(call));
                }
                yield Ok(EncodedResponse::checkpoint(s.as_of, pb::CheckpointReason::SnapshotComplete));
            }
            let mut cursor = cursor;
            // One registration with the shutdown token for the whole stream
            // (not one per delivery).
            let mut cancelled = std::pin::pin!(shutdown.cancelled());
            let mut ticks = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut sent_any = false;
            let mut last_beat = Instant::now();
            loop {
                // Replay until the log is exhausted with a live feed in place.
                loop {
                    if shutdown.is_cancelled() {
                        yield Ok(EncodedResponse::checkpoint(cursor, pb::CheckpointReason::Shutdown));
                        return;
                    }
                    let records = match store.read(&tenant, cursor, batch).await {
                        Ok(r) => r,
                        // "The oldest available" moved on before anything was
                        // sent: start at the new oldest.
                        Err(StoreError::CursorExpired { oldest }) if from_beginning && !sent_any => {
                            cursor = oldest.saturating_sub(1);
                            continue;
                        }
                        Err(e) => {
                            yield Err(e);
                            return;
                        }
                    };
                    let short = records.len() < batch;
                    for r in records {
                        if r.sequence <= cursor {
                            continue;
                        }
                        cursor = r.sequence;
                        if filter.matches(&r.meta) {
                            sent_any = true;
                            yield Ok(EncodedResponse::update(&r));
                        }
                    }
                    // A long, filtered replay still sends a fresh cursor now
                    // and then, so load balancers and watchdogs see traffic
                    // and a reconnect resumes from here.
                    if last_beat.elapsed() >= heartbeat {
                        last_beat = Instant::now();
                        yield Ok(EncodedResponse::checkpoint(cursor, pb::CheckpointReason::Heartbeat));
                    }
                    if !short {
                        continue;
                    }
                    if live.is_none() {
                        live = Some(hub.subscribe(tenant.as_str(), filter.clone()));
                        continue;
                    }
                    break;
                }
                yield Ok(EncodedResponse::checkpoint(cursor, pb::CheckpointReason::CaughtUp));

                // Live until the hub drops us (lag) or shutdown.
                let Some(feed) = live.as_mut() else { return };
                let lagged = loop {
                    let wake = tokio::select! {
                        biased;
                        _ = &mut cancelled => Wake::Shutdown,
                        r = feed.recv() => Wake::Record(r),
                        _ = ticks.tick() => Wake::Heartbeat,
                    };
                    match wake {
                        Wake::Shutdown => {
                            while let Some(r) = feed.try_recv() {
                                if r.sequence > cursor {
                                    cursor = r.sequence;
                                    yield Ok(EncodedResponse::update(&r));
                                }
                            }
                            yield Ok(EncodedResponse::checkpoint(cursor, pb::CheckpointReason::Shutdown));
                            return;
                        }
                        Wake::Record(Some(r)) => {
                            if r.sequence > cursor {
                                cursor = r.sequence;
                                yield Ok(EncodedResponse::update(&r));
                            }
                        }
                        Wake::Record(None) => break feed.lagged(),
                        Wake::Heartbeat => {
                            let head = hub.head();
                            metrics::histogram!("switchboard_subscriber_lag_events").record(head.saturating_sub(cursor) as f64);
                            while let Some(r) = feed.try_recv() {
                                if r.sequence > cursor {
                                    cursor = r.sequence;
                                    yield Ok(EncodedResponse::update(&r));
                                }
                            }
                            if !feed.lagged() {
                                cursor = cursor.max(head);
                            }
                            yield Ok(EncodedResponse::checkpoint(cursor, pb::CheckpointReason::Heartbeat));
                        }
                    }
                };
                live = None;
                if !lagged {
                    // The hub went away: the server is stopping.
                    yield Ok(EncodedResponse::checkpoint(cursor, pb::CheckpointReason::Shutdown));
                    return;
                }
                metrics::counter!("switchboard_subscriber_lagged_to_log_total").increment(1);
                tracing::debug!(tenant = %tenant, cursor, "subscriber lagged; continuing from the log");
            }
        };
        Ok(Box::pin(stream))
    }
}
