//! One heartbeat clock for all the live queues of a hub.
//!
//! A live subscriber must hear something every heartbeat interval, even when
//! its filter passes nothing. A tokio timer per subscription, re-armed on
//! every wake, made every delivery dearer (its symbols were about 5 % of the
//! server's samples in an S5 profile: BENCHMARKS.md, seventh sitting), so one
//! task sleeps until the earliest due heartbeat and puts a beat into that
//! subscriber's queue, where it wakes the subscriber as a record would. At
//! most one beat waits in a queue at a time, so beats never fill a queue that
//! records need.

use std::cmp::{Ordering as Order, Reverse};
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Delivery;

/// The heartbeats due, earliest first, and the task that sends them.
pub(super) struct HeartbeatClock {
    state: Mutex<State>,
    /// Wakes the task when a heartbeat earlier than all others is scheduled.
    earlier: Notify,
}

#[derive(Default)]
struct State {
    /// Bound: the open live queues with a heartbeat, plus closed ones until
    /// they come due or are swept: at most twice the queues open at the last
    /// sweep, plus 64.
    due: BinaryHeap<Reverse<Due>>,
    /// Entries after the last sweep of closed queues: the next sweep waits
    /// until the heap doubled, so sweeping costs O(1) per schedule.
    swept_len: usize,
    /// Runs while anything is due; exits when nothing is, and is started
    /// again by the next schedule (or when its runtime went away).
    task: Option<JoinHandle<()>>,
}

/// One live queue's next heartbeat.
struct Due {
    at: Instant,
    every: Duration,
    /// Weak: a queue the hub dropped (lag, unsubscribe) must close, and its
    /// entry is forgotten when it comes due or at the next sweep.
    queue: mpsc::WeakSender<Delivery>,
    /// A beat sits in the queue and was not received yet.
    pending: Arc<AtomicBool>,
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Order {
        self.at.cmp(&other.at)
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Order> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

impl HeartbeatClock {
    pub(super) fn new() -> Arc<HeartbeatClock> {
        Arc::new(HeartbeatClock { state: Mutex::new(State::default()), earlier: Notify::new() })
    }

    /// Beats into `queue` every `every`, the first one `every` from now,
    /// while the queue is open. Needs a tokio runtime to send them; without
    /// one the heartbeat waits for the next schedule made inside one.
    pub(super) fn schedule(
        self: &Arc<Self>,
        every: Duration,
        queue: &mpsc::Sender<Delivery>,
        pending: Arc<AtomicBool>,
    ) {
        // The clock sends a due beat and reschedules it after `now`: a zero
        // interval would never let it sleep.
        let every = every.max(Duration::from_millis(1));
        let at = Instant::now() + every;
        let mut state = self.lock();
        let earliest = state.due.peek().is_none_or(|Reverse(d)| at < d.at);
        state.due.push(Reverse(Due { at, every, queue: queue.downgrade(), pending }));
        if state.due.len() > 2 * state.swept_len + 64 {
            state.due.retain(|Reverse(d)| d.queue.strong_count() > 0);
            state.swept_len = state.due.len();
        }
        if state.task.as_ref().is_none_or(JoinHandle::is_finished) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => state.task = Some(runtime.spawn(self.clone().run())),
                Err(_) => tracing::warn!("a heartbeat was scheduled outside a tokio runtime; it waits for the next"),
            }
        } else if earliest {
            self.earlier.notify_one();
        }
    }

    async fn run(self: Arc<Self>) {
        while let Some(next) = self.beat(Instant::now()) {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.earlier.notified() => {}
            }
        }
    }

    /// Sends the heartbeats due at `now` and schedules their next ones.
    /// Returns when the next one is due; `None` (and the task ends) when
    /// nothing is scheduled.
    fn beat(&self, now: Instant) -> Option<Instant> {
        let mut state = self.lock();
        let heap = &mut state.due;
        loop {
            let Some(top) = heap.peek_mut() else { break };
            if top.0.at > now {
                break;
            }
            let Reverse(mut due) = PeekMut::pop(top);
            let Some(queue) = due.queue.upgrade() else { continue };
            // A full queue holds records that wake the subscriber anyway.
            if !due.pending.swap(true, Ordering::AcqRel) && queue.try_send(Delivery::Heartbeat).is_err() {
                due.pending.store(false, Ordering::Release);
            }
            due.at = now + due.every;
            heap.push(Reverse(due));
        }
        let next = state.due.peek().map(|Reverse(d)| d.at);
        if next.is_none() {
            state.task = None;
        }
        next
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    pub(super) fn scheduled(&self) -> usize {
        self.lock().due.len()
    }

    #[cfg(test)]
    pub(super) fn idle(&self) -> bool {
        self.lock().task.is_none()
    }
}
