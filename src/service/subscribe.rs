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
//!
//! The code is those steps: `Subscriber::open` takes the slot and works
//! out the starting cursor (so a bad cursor is an error status, not a
//! stream), then the stream is `Subscriber::next_frame`, which runs one
//! step of the current `Phase` whenever the queued frames are sent: the
//! snapshot, a replay batch, a live wake (a record, a heartbeat, shutdown),
//! the fall-back to the log, the final checkpoint.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::{ServiceError, Services, SubscriberSlot};
use crate::codec::Record;
use crate::codec::proto::v1 as pb;
use crate::codec::wire::EncodedResponse;
use crate::domain::{Call, EventFilter, TenantId};
use crate::hub::{Delivery, Hub, LiveFeed};
use crate::store::{Store, StoreError};

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
pub type Subscription = Pin<Box<dyn Stream<Item = Result<EncodedResponse, StoreError>> + Send>>;

impl Services {
    /// Opens a subscription. Errors that can be known up front (expired
    /// cursor) are returned here, before the stream starts.
    pub async fn subscribe(&self, spec: SubscribeSpec) -> Result<Subscription, ServiceError> {
        let mut subscriber = Subscriber::open(self, spec).await?;
        // The subscriber stays in place inside the stream's state (`unfold`
        // would move it in and out of a future on every frame).
        Ok(Box::pin(async_stream::stream! {
            while let Some(frame) = subscriber.next_frame().await {
                yield frame;
            }
        }))
    }
}

type Frame = Result<EncodedResponse, StoreError>;

/// Where a subscription is; `Subscriber::next_frame` runs one step of the
/// current phase at a time.
enum Phase {
    /// Sending the active calls, then SNAPSHOT_COMPLETE at `as_of`.
    Snapshot { calls: std::vec::IntoIter<Call>, as_of: u64 },
    /// About to replay: the replay heartbeat clock starts once the snapshot
    /// is sent.
    Begin,
    /// Reading the log above the cursor, one batch per step.
    Replay,
    /// Forwarding the live queue, one wake per step.
    Live,
    /// The last frame is queued.
    Done,
}

/// What woke the live phase.
enum Wake {
    Queue(Option<Delivery>),
    Shutdown,
}

/// One Subscribe stream.
struct Subscriber {
    tenant: TenantId,
    filter: Arc<EventFilter>,
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    /// Records per log read.
    batch: usize,
    /// Started at the oldest event and not yet caught up: while nothing was
    /// sent, a start that retention overtook moves on to the new oldest
    /// instead of failing.
    from_beginning: bool,
    /// Whether replay sent an update.
    sent_any: bool,
    /// The registration with the hub: taken before the last replay read,
    /// dropped when the hub closes the queue.
    live: Option<LiveFeed>,
    beats: Heartbeats,
    shutdown: CancellationToken,
    /// One registration with the shutdown token for the whole stream (not
    /// one per delivery).
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    phase: Phase,
    out: Outbox,
    _slot: SubscriberSlot,
}

/// The frames queued for the client, and the cursor they bring it to.
struct Outbox {
    /// The invariant's cursor (module doc).
    cursor: u64,
    frames: VecDeque<Frame>,
}

impl Outbox {
    fn checkpoint(&mut self, reason: pb::CheckpointReason) {
        self.frames.push_back(Ok(EncodedResponse::checkpoint(self.cursor, reason)));
    }

    /// A record from the live queue (the hub applied the filter), unless
    /// the log already brought the client past it.
    fn live(&mut self, record: &Record) {
        if record.sequence > self.cursor {
            self.cursor = record.sequence;
            self.frames.push_back(Ok(EncodedResponse::update(record)));
        }
    }
}

/// When to send heartbeats. While live the hub's heartbeat clock puts them
/// into the live queue (no timer per subscription); during replay the
/// subscriber checks the time of the last one after each batch.
struct Heartbeats {
    every: Duration,
    last: Instant,
}

impl Heartbeats {
    fn start(every: Duration) -> Heartbeats {
        Heartbeats { every, last: Instant::now() }
    }

    /// During replay: true once an interval has passed since the last one.
    fn replay_due(&mut self) -> bool {
        if self.last.elapsed() < self.every {
            return false;
        }
        self.last = Instant::now();
        true
    }
}

impl Subscriber {
    /// Takes a slot, registers with the hub where the start needs it, takes
    /// the snapshot and works out the starting cursor.
    async fn open(services: &Services, spec: SubscribeSpec) -> Result<Subscriber, ServiceError> {
        let slot = services.subscribers.acquire(spec.tenant.as_str(), services.options.max_subscribers_per_tenant)?;
        let (store, hub) = (&services.store, &services.hub);
        let every = spec.heartbeat.unwrap_or(services.options.heartbeat_interval);
        let mut live = None;
        let mut snapshot = None;
        if spec.include_snapshot {
            live = Some(hub.subscribe(spec.tenant.as_str(), spec.filter.clone(), Some(every)));
            snapshot = Some(store.snapshot(&spec.tenant).await?);
        }
        let cursor = match spec.start {
            Start::Live => match &snapshot {
                Some(s) => s.as_of,
                None => {
                    live = Some(hub.subscribe(spec.tenant.as_str(), spec.filter.clone(), Some(every)));
                    hub.head()
                }
            },
            Start::After(n) => resume_cursor(store.as_ref(), hub, n).await?,
            Start::FromBeginning => store.bounds().await?.pruned_through,
            Start::Since(t) => store.seek_time(&spec.tenant, t).await?,
        };
        let phase = match snapshot {
            Some(s) => Phase::Snapshot { calls: s.calls.into_iter(), as_of: s.as_of },
            None => Phase::Begin,
        };
        Ok(Subscriber {
            tenant: spec.tenant,
            filter: spec.filter,
            store: store.clone(),
            hub: hub.clone(),
            batch: store.replay_batch(),
            from_beginning: spec.start == Start::FromBeginning,
            sent_any: false,
            live,
            beats: Heartbeats::start(every),
            shutdown: services.shutdown.clone(),
            cancelled: Box::pin(services.shutdown.clone().cancelled_owned()),
            phase,
            out: Outbox { cursor, frames: VecDeque::new() },
            _slot: slot,
        })
    }

    /// The next frame to send; `None` once the stream is over.
    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.out.frames.pop_front() {
                return Some(frame);
            }
            match self.phase {
                Phase::Snapshot { .. } => self.snapshot(),
                Phase::Begin => {
                    self.beats = Heartbeats::start(self.beats.every);
                    self.phase = Phase::Replay;
                }
                Phase::Replay => self.replay_batch().await,
                Phase::Live => self.live().await,
                Phase::Done => return None,
            }
        }
    }

    /// The next active call that passes the filter, or SNAPSHOT_COMPLETE.
    fn snapshot(&mut self) {
        let Phase::Snapshot { calls, as_of } = &mut self.phase else { return };
        let as_of = *as_of;
        match calls.find(|c| self.filter.matches_call(c)) {
            Some(call) => self.out.frames.push_back(Ok(EncodedResponse::snapshot(&call))),
            None => {
                let done = EncodedResponse::checkpoint(as_of, pb::CheckpointReason::SnapshotComplete);
                self.out.frames.push_back(Ok(done));
                self.phase = Phase::Begin;
            }
        }
    }

    /// One read of the log above the cursor. A short read with no live
    /// queue yet registers with the hub and reads once more; a short read
    /// with one is CAUGHT_UP.
    async fn replay_batch(&mut self) {
        if self.shutdown.is_cancelled() {
            return self.finish();
        }
        let records = match self.store.read(&self.tenant, self.out.cursor, self.batch).await {
            Ok(r) => r,
            // "The oldest available" moved on before anything was sent:
            // start at the new oldest.
            Err(StoreError::CursorExpired { oldest }) if self.from_beginning && !self.sent_any => {
                self.out.cursor = oldest.saturating_sub(1);
                return;
            }
            Err(e) => {
                self.out.frames.push_back(Err(e));
                self.phase = Phase::Done;
                return;
            }
        };
        let short = records.len() < self.batch;
        for r in records {
            if r.sequence <= self.out.cursor {
                continue;
            }
            self.out.cursor = r.sequence;
            // A stored record decodes its filter fields on first use: a
            // subscription that filters nothing never asks.
            if self.filter.is_empty() || self.filter.matches(r.meta()) {
                self.sent_any = true;
                self.out.frames.push_back(Ok(EncodedResponse::update(&r)));
            }
        }
        // A long, filtered replay still sends a fresh cursor now and then, so
        // load balancers and watchdogs see traffic and a reconnect resumes
        // from here.
        if self.beats.replay_due() {
            self.out.checkpoint(pb::CheckpointReason::Heartbeat);
        }
        if !short {
            return;
        }
        if self.live.is_none() {
            self.live = Some(self.hub.subscribe(self.tenant.as_str(), self.filter.clone(), Some(self.beats.every)));
            return;
        }
        self.out.checkpoint(pb::CheckpointReason::CaughtUp);
        self.phase = Phase::Live;
        // From here the client holds a cursor (CAUGHT_UP, then live
        // updates): a later fall-back to the log whose cursor retention
        // overtook must fail with CURSOR_EXPIRED, not skip silently.
        self.from_beginning = false;
    }

    /// Waits for the next thing to happen while live: shutdown, a record,
    /// a heartbeat (both from the live queue), or the queue closing.
    async fn live(&mut self) {
        let Some(feed) = self.live.as_mut() else {
            self.phase = Phase::Done;
            return;
        };
        let wake = tokio::select! {
            biased;
            _ = &mut self.cancelled => Wake::Shutdown,
            r = feed.recv() => Wake::Queue(r),
        };
        match wake {
            Wake::Shutdown => {
                self.drain_live();
                self.finish();
            }
            Wake::Queue(Some(Delivery::Record(r))) => self.out.live(&r),
            Wake::Queue(Some(Delivery::Heartbeat)) => self.heartbeat(),
            Wake::Queue(None) => self.fall_back_to_log(),
        }
    }

    /// Sends what the live queue holds.
    fn drain_live(&mut self) {
        if let Some(feed) = self.live.as_mut() {
            while let Some(r) = feed.try_recv() {
                self.out.live(&r);
            }
        }
    }

    /// A live heartbeat: the queue drained, then the cursor moves to the
    /// hub's head unless the queue lagged (module doc).
    fn heartbeat(&mut self) {
        let head = self.hub.head();
        metrics::histogram!("switchboard_subscriber_lag_events").record(head.saturating_sub(self.out.cursor) as f64);
        self.drain_live();
        if self.live.as_ref().is_some_and(|feed| !feed.lagged()) {
            self.out.cursor = self.out.cursor.max(head);
        }
        self.out.checkpoint(pb::CheckpointReason::Heartbeat);
    }

    /// The hub closed the live queue: after a lag, replay from the cursor;
    /// otherwise the hub went away and the server is stopping.
    fn fall_back_to_log(&mut self) {
        let lagged = self.live.take().is_some_and(|feed| feed.lagged());
        if !lagged {
            return self.finish();
        }
        metrics::counter!("switchboard_subscriber_lagged_to_log_total").increment(1);
        tracing::debug!(tenant = %self.tenant, cursor = self.out.cursor, "subscriber lagged; continuing from the log");
        self.phase = Phase::Replay;
    }

    /// The final SHUTDOWN checkpoint, a resume cursor; the stream ends.
    fn finish(&mut self) {
        self.out.checkpoint(pb::CheckpointReason::Shutdown);
        self.phase = Phase::Done;
    }
}

/// The cursor of `Start::After(n)`: not below what retention removed, not
/// above the log.
async fn resume_cursor(store: &dyn Store, hub: &Hub, n: u64) -> Result<u64, StoreError> {
    let bounds = store.bounds().await?;
    if n < bounds.pruned_through {
        return Err(StoreError::CursorExpired { oldest: bounds.oldest_available() });
    }
    let last = bounds.last.max(hub.head());
    if n > last {
        return Err(StoreError::CursorAhead { cursor: n, last });
    }
    Ok(n)
}
