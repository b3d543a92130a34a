//! Time as an explicit input. The server reads the time through a [`Clock`]
//! passed in when it is built ([`crate::app::App::builder`]): the wall
//! clock that stamps events (`received_at`, and through it the dedup,
//! correlation and retention windows and `Subscribe.since`) and the
//! monotonic clock that request rates are measured with. Tests pass a
//! [`ManualClock`] and move it forward instead of sleeping.
//!
//! Timers (heartbeats, deadlines, the periodic loops) run on tokio's clock,
//! which tests pause and advance with `tokio::time::pause`/`advance` or
//! `#[tokio::test(start_paused = true)]`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Where the server reads the time.
pub trait Clock: Send + Sync + 'static {
    /// The wall-clock time.
    fn now(&self) -> DateTime<Utc>;

    /// A monotonic instant, for measuring rates.
    fn instant(&self) -> Instant;
}

/// The clock the server runs on unless told otherwise.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it; both
/// its wall and its monotonic time move together. For tests.
#[derive(Debug)]
pub struct ManualClock {
    wall: DateTime<Utc>,
    instant: Instant,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at the system's current time.
    pub fn new() -> Arc<ManualClock> {
        ManualClock::starting_at(Utc::now())
    }

    /// A clock standing at `wall`.
    pub fn starting_at(wall: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock { wall, instant: Instant::now(), elapsed: Mutex::new(Duration::ZERO) })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.wall + self.elapsed()
    }

    fn instant(&self) -> Instant {
        self.instant + self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new();
        let (wall, mono) = (clock.now(), clock.instant());
        assert_eq!((clock.now(), clock.instant()), (wall, mono));
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now() - wall, chrono::Duration::milliseconds(1500));
        assert_eq!(clock.instant() - mono, Duration::from_millis(1500));
    }
}
