//! The time the stores go by: idempotency leases and retention, rate
//! budgets, concurrency leases, the secrets cache's TTL, the embedded queue's
//! visibility. Production reads the system clock; a test hands the stores a
//! [`ManualClock`], which moves only when told, so "before expiry" and "after
//! expiry" are orderings the test sets, never durations it hopes for.

use jiff::{SignedDuration, Timestamp};
use std::sync::{Arc, Mutex, PoisonError};

/// Tells the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock: what every store uses unless given another.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until [`advance`](ManualClock::advance)d.
/// Clones share one time, so a test keeps a clone and moves the clock of the
/// stores it gave the others to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock by `by` (backwards, if negative).
    ///
    /// # Panics
    /// If that leaves the range of [`Timestamp`].
    pub fn advance(&self, by: SignedDuration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now
            .checked_add(by)
            .unwrap_or_else(|e| panic!("advancing the clock from {now} by {by:?}: {e}"));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The clock a store holds: the system's unless it was given another.
pub(crate) fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_move_with_it() {
        let start = Timestamp::from_second(1_700_000_000).unwrap();
        let clock = ManualClock::new(start);
        let held: Arc<dyn Clock> = Arc::new(clock.clone());
        assert_eq!(held.now(), start);
        clock.advance(SignedDuration::from_millis(1_500));
        assert_eq!(held.now(), start + SignedDuration::from_millis(1_500));
        clock.advance(SignedDuration::from_millis(-500));
        assert_eq!(held.now(), start + SignedDuration::from_secs(1));
    }
}
