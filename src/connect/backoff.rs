//! Exponential backoff with jitter, for Ingest retries and vendor reconnects.
//!
//! Jitter keeps many connectors that lost the same broker (or the same
//! switchboard) from coming back in lock-step.

use std::time::Duration;

/// The bounds of a backoff: the first delay and the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The first delay (before jitter).
    pub initial: Duration,
    /// No delay is longer than this.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy { initial: Duration::from_millis(200), max: Duration::from_secs(30) }
    }
}

/// The delays of one run of failures: each twice the last up to the cap, each
/// drawn uniformly from its upper half ("equal jitter", so a delay never
/// collapses to zero).
#[derive(Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    ceiling: Duration,
    attempts: u32,
}

impl Backoff {
    /// A fresh run of failures.
    pub fn new(policy: BackoffPolicy) -> Backoff {
        Backoff { policy, ceiling: policy.initial.min(policy.max), attempts: 0 }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (ceiling * 2).min(self.policy.max);
        self.attempts = self.attempts.saturating_add(1);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_nanos().min(u128::from(u64::MAX)) as u64;
        half + Duration::from_nanos(fastrand::u64(0..=spread))
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.ceiling = self.policy.initial.min(self.policy.max);
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_in_the_upper_half() {
        let policy = BackoffPolicy { initial: Duration::from_millis(100), max: Duration::from_millis(800) };
        let mut b = Backoff::new(policy);
        for ceiling_ms in [100u64, 200, 400, 800, 800, 800] {
            let d = b.next_delay();
            let ceiling = Duration::from_millis(ceiling_ms);
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} not in [{:?}, {ceiling:?}]", ceiling / 2);
        }
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let policy = BackoffPolicy { initial: Duration::from_secs(1), max: Duration::from_secs(1) };
        let mut b = Backoff::new(policy);
        let delays: std::collections::HashSet<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(delays.len() > 1, "20 draws gave one delay: {delays:?}");
    }
}
