//! The hot tail of the log: the most recent committed records, in log
//! order, bounded by bytes, so that a subscriber catching up (a reconnect
//! with `after_sequence`, a lagging reader, a replay of the recent past)
//! reads memory instead of the database.
//!
//! Why: replay from SQLite spends about half its CPU walking B-trees and
//! copying each row's blob and strings into a fresh record (BENCHMARKS.md,
//! S8); the records the writer just committed are already encoded and
//! shared (`Arc`), so keeping the newest of them costs only memory.
//!
//! Correctness rests on one invariant: every committed record with a
//! sequence above [`Tail::complete_after`] is in the tail (or was removed by
//! retention). The writer pushes each group right after its commit, in log
//! order, so a read served from here returns a prefix of what is committed
//! — never a gap; a read that starts below that line goes to the database.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::codec::Record;

/// Bytes a record costs beyond its frame (the `Arc`, the metadata strings).
const RECORD_OVERHEAD: usize = 160;

/// The most recent records (see the module docs).
pub struct Tail {
    budget: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    records: VecDeque<Arc<Record>>,
    bytes: usize,
    /// Every committed record with a greater sequence is in `records`.
    complete_after: u64,
}

fn cost(r: &Record) -> usize {
    r.frame().len() + RECORD_OVERHEAD
}

impl Tail {
    /// An empty tail for a log whose last sequence is `last`: what comes
    /// next is pushed, so it is complete after `last`. A budget of 0 keeps
    /// nothing.
    pub fn new(budget_bytes: usize, last: u64) -> Tail {
        Tail {
            budget: budget_bytes,
            inner: Mutex::new(Inner { records: VecDeque::new(), bytes: 0, complete_after: last }),
        }
    }

    /// The byte budget the tail keeps within.
    pub fn budget(&self) -> usize {
        self.budget
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fills an empty tail at open with the newest records already in the
    /// log (`newest_first`, each older than anything pushed later), as many
    /// as the budget holds.
    pub fn warm(&self, newest_first: impl IntoIterator<Item = Arc<Record>>) {
        let mut inner = self.lock();
        for r in newest_first {
            let c = cost(&r);
            if inner.bytes + c > self.budget || inner.records.front().is_some_and(|f| f.sequence <= r.sequence) {
                break;
            }
            inner.bytes += c;
            inner.complete_after = inner.complete_after.min(r.sequence - 1);
            inner.records.push_front(r);
        }
    }

    /// Appends records just committed, in log order; the oldest leave when
    /// the budget is exceeded.
    pub fn push(&self, records: &[Arc<Record>]) {
        if records.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for r in records {
            if inner.records.back().is_some_and(|b| b.sequence >= r.sequence) {
                // Out of order would break the invariant: start over after it.
                inner.records.clear();
                inner.bytes = 0;
                inner.complete_after = r.sequence;
                continue;
            }
            inner.bytes += cost(r);
            inner.records.push_back(r.clone());
        }
        while inner.bytes > self.budget {
            let Some(old) = inner.records.pop_front() else { break };
            inner.bytes -= cost(&old);
            inner.complete_after = old.sequence;
        }
    }

    /// Forgets records up to and including `sequence` (retention removed
    /// them from the log).
    pub fn trim_through(&self, sequence: u64) {
        let mut inner = self.lock();
        while inner.records.front().is_some_and(|r| r.sequence <= sequence) {
            if let Some(old) = inner.records.pop_front() {
                inner.bytes -= cost(&old);
            }
        }
        inner.complete_after = inner.complete_after.max(sequence);
    }

    /// Up to `limit` records of `tenant` after `after`, or `None` when the
    /// tail does not hold everything after `after` (read the log instead).
    pub fn read(&self, tenant: &str, after: u64, limit: usize) -> Option<Vec<Arc<Record>>> {
        let inner = self.lock();
        if after < inner.complete_after {
            return None;
        }
        let start = inner.records.partition_point(|r| r.sequence <= after);
        Some(inner.records.range(start..).filter(|r| r.tenant == tenant).take(limit).cloned().collect())
    }

    /// Records held now (for [`crate::store::EntryCounts`]-style gauges and tests).
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether the tail holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventMeta;
    use chrono::Utc;

    fn rec(seq: u64, tenant: &str) -> Arc<Record> {
        Arc::new(Record::from_parts(seq, tenant.to_string(), Utc::now(), EventMeta::default(), &[0u8; 100]))
    }

    fn seqs(v: &[Arc<Record>]) -> Vec<u64> {
        v.iter().map(|r| r.sequence).collect()
    }

    #[test]
    fn serves_only_what_it_holds_completely() {
        let tail = Tail::new(1 << 20, 10);
        assert!(tail.read("t", 9, 10).is_none(), "sequence 10 was committed before the tail existed");
        assert_eq!(tail.read("t", 10, 10).map(|v| v.len()), Some(0));
        tail.push(&[rec(11, "t"), rec(12, "u"), rec(13, "t")]);
        assert_eq!(seqs(&tail.read("t", 10, 10).unwrap()), [11, 13]);
        assert_eq!(seqs(&tail.read("t", 11, 10).unwrap()), [13]);
        assert_eq!(seqs(&tail.read("t", 10, 1).unwrap()), [11]);
        assert_eq!(seqs(&tail.read("u", 10, 10).unwrap()), [12]);
    }

    #[test]
    fn eviction_moves_the_line_and_reads_below_it_go_to_the_log() {
        let one = cost(&rec(1, "t"));
        let tail = Tail::new(one * 2, 0);
        tail.push(&[rec(1, "t"), rec(2, "t"), rec(3, "t")]);
        assert_eq!(tail.len(), 2);
        assert!(tail.read("t", 0, 10).is_none(), "1 was evicted");
        assert_eq!(seqs(&tail.read("t", 1, 10).unwrap()), [2, 3]);
    }

    #[test]
    fn warm_fills_from_the_newest_and_retention_trims() {
        let one = cost(&rec(1, "t"));
        let tail = Tail::new(one * 3, 20);
        tail.warm((15..=20).rev().map(|s| rec(s, "t")));
        assert_eq!(tail.len(), 3);
        assert!(tail.read("t", 16, 10).is_none());
        assert_eq!(seqs(&tail.read("t", 17, 10).unwrap()), [18, 19, 20]);
        tail.trim_through(18);
        assert!(tail.read("t", 17, 10).is_none());
        assert_eq!(seqs(&tail.read("t", 18, 10).unwrap()), [19, 20]);
    }

    #[test]
    fn a_zero_budget_keeps_nothing_and_stays_correct() {
        let tail = Tail::new(0, 0);
        tail.push(&[rec(1, "t"), rec(2, "t")]);
        assert!(tail.is_empty());
        assert!(tail.read("t", 0, 10).is_none());
        assert_eq!(tail.read("t", 2, 10).map(|v| v.len()), Some(0));
    }
}
