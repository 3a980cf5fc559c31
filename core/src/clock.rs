//! The one source of time for the domain. Everything that expires — access
//! tokens, refresh grace, session lifetimes, throttle windows, reset links,
//! the verified-token memory — reads [`Clock::now`], never the system clock,
//! so a test can move time forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

/// The time: the system's, or (for tests) the system's plus an offset that
/// only [`ClockControl::advance`] moves. Cheap to clone; clones share the
/// offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Microseconds added to the system time; `None` for the system clock.
    offset: Option<Arc<AtomicI64>>,
}

/// Moves an adjustable [`Clock`] forward. Only tests hold one.
#[derive(Clone, Debug)]
pub struct ClockControl {
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock, as the binary runs.
    pub fn system() -> Self {
        Self { offset: None }
    }

    /// A clock that follows the system's and can be moved forward: time still
    /// passes (servers and databases keep working), and a test that waits
    /// for an expiry advances it instead of sleeping.
    pub fn adjustable() -> (Self, ClockControl) {
        let offset = Arc::new(AtomicI64::new(0));
        (
            Self {
                offset: Some(offset.clone()),
            },
            ClockControl { offset },
        )
    }

    /// Now, in UTC.
    pub fn now_utc(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match &self.offset {
            None => now,
            Some(offset) => now + TimeDelta::microseconds(offset.load(Ordering::Relaxed)),
        }
    }

    /// Now, as the database stores it (UTC, no zone).
    pub fn now(&self) -> NaiveDateTime {
        self.now_utc().naive_utc()
    }

    /// Now, in whole seconds since the Unix epoch (as tokens carry it).
    pub fn timestamp(&self) -> i64 {
        self.now_utc().timestamp()
    }
}

impl ClockControl {
    /// Moves the clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.offset.fetch_add(micros, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_forward_for_every_clone() {
        let (clock, control) = Clock::adjustable();
        let copy = clock.clone();
        let before = copy.now();
        control.advance(Duration::from_secs(3600));
        let after = copy.now();
        assert!(after - before >= TimeDelta::seconds(3600));
        assert!(after - before < TimeDelta::seconds(3660));
        assert!(clock.now() >= after);
    }

    #[test]
    fn the_system_clock_is_the_system_time() {
        let clock = Clock::system();
        let gap = (clock.now_utc() - Utc::now()).abs();
        assert!(gap < TimeDelta::seconds(5));
    }
}
