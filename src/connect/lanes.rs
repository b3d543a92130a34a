//! Ordered pipelining: frames with the same key (a Pulsar `interactionGUID`,
//! a Xelion `callId`) go to the same lane and are handled one after another
//! in arrival order; different keys run in parallel on other lanes.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// A fixed set of sequential workers, chosen by key.
pub struct Lanes<J> {
    senders: Vec<mpsc::Sender<J>>,
    tasks: JoinSet<()>,
}

impl<J: Send + 'static> Lanes<J> {
    /// Starts `count` lanes, each holding up to `depth` waiting jobs, each
    /// running `handle` on its jobs in order. A lane stops when `handle`
    /// returns false.
    pub fn spawn<F, Fut>(count: usize, depth: usize, handle: F) -> Lanes<J>
    where
        F: Fn(J) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let mut tasks = JoinSet::new();
        let senders = (0..count.max(1))
            .map(|_| {
                let (tx, mut rx) = mpsc::channel::<J>(depth.max(1));
                let handle = handle.clone();
                tasks.spawn(async move {
                    while let Some(job) = rx.recv().await {
                        if !handle(job).await {
                            return;
                        }
                    }
                });
                tx
            })
            .collect();
        Lanes { senders, tasks }
    }

    /// The lane of `key` (stable for the life of the process).
    pub fn lane_of(&self, key: &str) -> usize {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        (hash % self.senders.len().max(1) as u64) as usize
    }

    /// Queues `job` on the lane of `key`, waiting while that lane is full
    /// (backpressure: the vendor socket is not read meanwhile). Returns the
    /// job back if the lane has stopped.
    pub async fn dispatch(&self, key: &str, job: J) -> Result<(), J> {
        match self.senders.get(self.lane_of(key)) {
            Some(lane) => lane.send(job).await.map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// Takes no more jobs; the lanes finish those already queued and stop.
    pub fn close(&mut self) {
        self.senders.clear();
    }

    /// Lets every lane finish the jobs already queued, then waits for them.
    pub async fn drain(mut self) {
        self.close();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Stops every lane now; queued jobs are dropped.
    pub async fn abort(mut self) {
        self.senders.clear();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn jobs_of_one_key_run_in_arrival_order() {
        let seen = Arc::new(Mutex::new(Vec::<(String, u32)>::new()));
        let log = seen.clone();
        let lanes = Lanes::spawn(4, 2, move |(key, n): (String, u32)| {
            let log = log.clone();
            async move {
                // Later jobs of a key finish faster; order must still hold.
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(5 - n))).await;
                log.lock().unwrap().push((key, n));
                true
            }
        });
        for n in 0..5 {
            for key in ["a", "b", "c"] {
                lanes.dispatch(key, (key.to_string(), n)).await.unwrap();
            }
        }
        lanes.drain().await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 15);
        for key in ["a", "b", "c"] {
            let order: Vec<u32> = seen.iter().filter(|(k, _)| k == key).map(|(_, n)| *n).collect();
            assert_eq!(order, vec![0, 1, 2, 3, 4], "key {key}");
        }
    }
}
