//! Live fan-out of committed records to subscribers.
//!
//! The store publishes every committed record here, in log order, from one
//! thread at a time. Each subscriber has a bounded queue; the filter is
//! checked at publish time so filtered-out subscribers are never woken.
//!
//! Slow-consumer policy: when a subscriber's queue is full, the hub marks it
//! lagged and drops its sender. The subscriber drains what it already has
//! (a gap-free prefix), sees the queue close, and continues from its cursor
//! by reading the log. Nobody is dropped silently; publishing never waits for
//! a subscriber; memory per slow subscriber is bounded by the queue.
//!
//! Heartbeats travel through the same queues (see [`heartbeat`]): a live
//! subscriber waits on its queue alone, with no timer of its own.

mod heartbeat;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;

use self::heartbeat::HeartbeatClock;
use crate::codec::Record;
use crate::domain::EventFilter;

/// What a live queue carries.
pub enum Delivery {
    /// The next committed record that passed the filter.
    Record(Arc<Record>),
    /// The subscription's heartbeat interval passed.
    Heartbeat,
}

struct Slot {
    id: u64,
    filter: Arc<EventFilter>,
    tx: mpsc::Sender<Delivery>,
    lagged: Arc<AtomicBool>,
}

/// Routes committed records to live subscribers.
pub struct Hub {
    /// Tenant → live subscribers' slots. Bound: open subscriptions; a
    /// [`LiveFeed`] removes its slot when dropped, the hub removes a lagged
    /// one, and a tenant's entry goes with its last slot.
    tenants: RwLock<HashMap<String, Vec<Slot>>>,
    head: AtomicU64,
    next_id: AtomicU64,
    capacity: usize,
    lag_events: AtomicU64,
    heartbeats: Arc<HeartbeatClock>,
}

/// One subscriber's live queue. Dropping it unsubscribes at once.
pub struct LiveFeed {
    id: u64,
    tenant: String,
    rx: mpsc::Receiver<Delivery>,
    lagged: Arc<AtomicBool>,
    /// A heartbeat is in the queue (the clock sends one at a time).
    beat_pending: Arc<AtomicBool>,
    hub: Arc<Hub>,
}

impl LiveFeed {
    /// The next record or heartbeat; `None` once the hub dropped this feed
    /// (see [`LiveFeed::lagged`]).
    pub async fn recv(&mut self) -> Option<Delivery> {
        let delivery = self.rx.recv().await;
        if let Some(Delivery::Heartbeat) = delivery {
            self.beat_pending.store(false, Ordering::Release);
        }
        delivery
    }

    /// The next record, past any heartbeats; `None` once the hub dropped
    /// this feed.
    pub async fn recv_record(&mut self) -> Option<Arc<Record>> {
        loop {
            if let Delivery::Record(record) = self.recv().await? {
                return Some(record);
            }
        }
    }

    /// The next record if one is queued; a queued heartbeat is skipped (the
    /// caller is draining the queue already).
    pub fn try_recv(&mut self) -> Option<Arc<Record>> {
        loop {
            match self.rx.try_recv().ok()? {
                Delivery::Record(record) => return Some(record),
                Delivery::Heartbeat => self.beat_pending.store(false, Ordering::Release),
            }
        }
    }

    /// True when the hub dropped this feed because its queue was full.
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        self.hub.remove(&self.tenant, self.id);
    }
}

impl Hub {
    /// A hub whose subscribers each queue at most `capacity` records.
    pub fn new(capacity: usize) -> Arc<Hub> {
        Arc::new(Hub {
            tenants: RwLock::new(HashMap::new()),
            head: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            capacity: capacity.max(1),
            lag_events: AtomicU64::new(0),
            heartbeats: HeartbeatClock::new(),
        })
    }

    /// Starts delivering `tenant`'s records that pass `filter`, and a
    /// [`Delivery::Heartbeat`] every `heartbeat` (the first one `heartbeat`
    /// from now) while the feed is open. Heartbeats need a tokio runtime.
    pub fn subscribe(
        self: &Arc<Self>,
        tenant: &str,
        filter: Arc<EventFilter>,
        heartbeat: Option<Duration>,
    ) -> LiveFeed {
        let (tx, rx) = mpsc::channel(self.capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let lagged = Arc::new(AtomicBool::new(false));
        let beat_pending = Arc::new(AtomicBool::new(false));
        if let Some(every) = heartbeat {
            self.heartbeats.schedule(every, &tx, beat_pending.clone());
        }
        let slot = Slot { id, filter, tx, lagged: lagged.clone() };
        self.write().entry(tenant.to_string()).or_default().push(slot);
        LiveFeed { id, tenant: tenant.to_string(), rx, lagged, beat_pending, hub: self.clone() }
    }

    /// Delivers committed records. Must be called in log order, by one
    /// caller at a time (the store's commit path).
    pub fn publish(&self, records: &[Arc<Record>]) {
        let mut overflowed = Vec::new();
        {
            let tenants = self.read();
            for rec in records {
                if let Some(slots) = tenants.get(&rec.tenant) {
                    for slot in slots {
                        if slot.lagged.load(Ordering::Relaxed) || !slot.filter.matches(rec.meta()) {
                            continue;
                        }
                        if let Err(mpsc::error::TrySendError::Full(_)) = slot.tx.try_send(Delivery::Record(rec.clone()))
                        {
                            // Skip this subscriber from here on: sending it a
                            // later record would open a gap.
                            slot.lagged.store(true, Ordering::Release);
                            overflowed.push((rec.tenant.clone(), slot.id));
                        }
                    }
                }
                self.head.store(rec.sequence, Ordering::Release);
            }
        }
        if !overflowed.is_empty() {
            self.lag_events.fetch_add(overflowed.len() as u64, Ordering::Relaxed);
            metrics::counter!("switchboard_subscriber_lagged_total").increment(overflowed.len() as u64);
            for (tenant, id) in overflowed {
                self.remove(&tenant, id);
            }
        }
    }

    /// The sequence of the last record published. Every matching record up
    /// to it is already in the queues of current subscribers.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Raises the head without records (a store's starting position).
    pub fn set_head(&self, sequence: u64) {
        self.head.fetch_max(sequence, Ordering::AcqRel);
    }

    /// Live subscribers of one tenant.
    pub fn tenant_subscribers(&self, tenant: &str) -> usize {
        self.read().get(tenant).map_or(0, Vec::len)
    }

    /// Live subscribers of all tenants.
    pub fn subscribers(&self) -> usize {
        self.read().values().map(Vec::len).sum()
    }

    /// How many times a subscriber was moved from live to the log.
    pub fn lag_events(&self) -> u64 {
        self.lag_events.load(Ordering::Relaxed)
    }

    fn remove(&self, tenant: &str, id: u64) {
        let mut tenants = self.write();
        if let Some(slots) = tenants.get_mut(tenant) {
            slots.retain(|s| s.id != id);
            if slots.is_empty() {
                tenants.remove(tenant);
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<Slot>>> {
        self.tenants.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Vec<Slot>>> {
        self.tenants.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventMeta, EventType};
    use chrono::Utc;

    fn record(seq: u64, tenant: &str, t: EventType) -> Arc<Record> {
        let meta = EventMeta { call_id: "c".into(), event_type: Some(t), ..EventMeta::default() };
        Arc::new(Record::from_parts(seq, tenant.into(), Utc::now(), meta, b""))
    }

    fn all() -> Arc<EventFilter> {
        Arc::new(EventFilter::default())
    }

    /// The next delivery: a record's sequence, or `Some(0)` for a heartbeat.
    async fn next(feed: &mut LiveFeed) -> Option<u64> {
        match feed.recv().await? {
            Delivery::Record(r) => Some(r.sequence),
            Delivery::Heartbeat => Some(0),
        }
    }

    #[tokio::test]
    async fn records_reach_matching_subscribers_of_their_tenant_only() {
        let hub = Hub::new(8);
        let mut everything = hub.subscribe("a", all(), None);
        let mut held = {
            let mut f = EventFilter::default();
            f.types.insert(EventType::CallHeld);
            hub.subscribe("a", Arc::new(f), None)
        };
        let mut other = hub.subscribe("b", all(), None);
        hub.publish(&[record(1, "a", EventType::CallStarted), record(2, "a", EventType::CallHeld)]);
        assert_eq!(next(&mut everything).await, Some(1));
        assert_eq!(next(&mut everything).await, Some(2));
        assert_eq!(next(&mut held).await, Some(2));
        assert!(other.try_recv().is_none());
        assert_eq!(hub.head(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_marks_the_subscriber_lagged_and_closes_after_a_gap_free_prefix() {
        let hub = Hub::new(2);
        // The heartbeat clock holds the queue weakly: it must not keep a
        // lagged queue open.
        let mut slow = hub.subscribe("a", all(), Some(Duration::from_secs(3600)));
        hub.publish(&[record(1, "a", EventType::CallStarted), record(2, "a", EventType::CallHeld)]);
        hub.publish(&[record(3, "a", EventType::CallResumed)]);
        assert_eq!(next(&mut slow).await, Some(1));
        hub.publish(&[record(4, "a", EventType::CallHeld)]);
        assert_eq!(next(&mut slow).await, Some(2));
        assert!(slow.recv().await.is_none(), "no record after the overflow may be delivered");
        assert!(slow.lagged());
        assert_eq!(hub.subscribers(), 0);
    }

    #[test]
    fn dropping_a_feed_unsubscribes_it() {
        let hub = Hub::new(2);
        let feed = hub.subscribe("a", all(), None);
        assert_eq!(hub.tenant_subscribers("a"), 1);
        drop(feed);
        assert_eq!(hub.subscribers(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_feed_hears_a_heartbeat_every_interval() {
        let hub = Hub::new(8);
        let started = tokio::time::Instant::now();
        let mut fast = hub.subscribe("a", all(), Some(Duration::from_millis(100)));
        let mut slow = hub.subscribe("a", all(), Some(Duration::from_millis(250)));
        for n in 1..=3u32 {
            assert_eq!(next(&mut fast).await, Some(0));
            assert_eq!(started.elapsed(), Duration::from_millis(100) * n);
        }
        assert_eq!(next(&mut slow).await, Some(0));
        assert_eq!(started.elapsed(), Duration::from_millis(300), "the 250 ms beat was sent; the feed read it now");
        // A heartbeat scheduled earlier than everything else wakes the clock.
        let mut quick = hub.subscribe("a", all(), Some(Duration::from_millis(10)));
        assert_eq!(next(&mut quick).await, Some(0));
        assert_eq!(started.elapsed(), Duration::from_millis(310));
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_one_heartbeat_waits_in_a_queue() {
        let hub = Hub::new(3);
        let mut feed = hub.subscribe("a", all(), Some(Duration::from_millis(10)));
        tokio::time::sleep(Duration::from_secs(1)).await;
        // A hundred intervals passed unread; the queue still has room for
        // two records behind the one heartbeat.
        hub.publish(&[record(1, "a", EventType::CallStarted), record(2, "a", EventType::CallHeld)]);
        assert!(!feed.lagged());
        assert_eq!(next(&mut feed).await, Some(0));
        assert_eq!(next(&mut feed).await, Some(1));
        assert_eq!(next(&mut feed).await, Some(2));
        // Once read, the next one comes.
        assert_eq!(next(&mut feed).await, Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_feed_is_forgotten_by_the_heartbeat_clock() {
        let hub = Hub::new(2);
        let feed = hub.subscribe("a", all(), Some(Duration::from_millis(50)));
        let mut other = hub.subscribe("a", all(), Some(Duration::from_millis(80)));
        assert_eq!(hub.heartbeats.scheduled(), 2);
        drop(feed);
        assert_eq!(next(&mut other).await, Some(0));
        assert_eq!(hub.heartbeats.scheduled(), 1, "the dropped feed's entry went when it came due");
        drop(other);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(hub.heartbeats.scheduled(), 0);
        assert!(hub.heartbeats.idle(), "with nothing scheduled the clock's task ends");
    }
}
