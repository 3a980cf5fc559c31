//! The rules of sign-in and registration throttling. The counts live in the
//! database (see `accounts::throttle`), so every instance enforces the same limits.
//!
//! * Per (e-mail, client IP): after `max_failures` failures within 15 minutes
//!   the pair is locked, even for the right password: 1 minute, then 2, 4, …
//!   up to an hour for each further failure. Attempts being checked count
//!   with the failures, so guesses sent together never get more checks than
//!   the limit (the ones beyond it wait). The streak is forgotten 15 minutes
//!   after its last attempt or lock, and a success clears it at once.
//! * Per client IP: at most `max_failures_per_ip` failures (and attempts being
//!   checked) in an hour that starts at the IP's first attempt, across all
//!   e-mails; past it, every sign-in from that IP waits until that hour has
//!   passed.
//! * Registrations: at most `register_max_per_hour` per client IP.
//!
//! Other e-mails and other IPs are never affected, so nobody can lock a victim
//! out from the victim's own network.

use std::time::Duration;

use chrono::TimeDelta;

/// A pair's streak counts failures this close together.
pub const PAIR_WINDOW: TimeDelta = TimeDelta::minutes(15);
/// The per-IP cap and the registration limit count over this window.
pub const IP_WINDOW: TimeDelta = TimeDelta::hours(1);
/// The confirmation-mail limits per address count over a minute and this
/// day; the longest window any counter has.
pub const DAY_WINDOW: TimeDelta = TimeDelta::days(1);
const FIRST_LOCK_SECS: i64 = 60;
const MAX_LOCK_SECS: i64 = 3600;

/// The limits, from settings.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    pub max_failures_per_ip: u32,
    pub register_max_per_hour: u32,
}

/// The lock after the `failures`-th failure: none below the limit, then one
/// minute doubling with each further failure, capped at an hour.
pub fn lock_for(failures: i32, max_failures: u32) -> Option<TimeDelta> {
    let over = i64::from(failures) - i64::from(max_failures);
    if over < 0 {
        return None;
    }
    let secs = FIRST_LOCK_SECS
        .checked_shl(u32::try_from(over.min(32)).unwrap_or(32))
        .unwrap_or(MAX_LOCK_SECS)
        .min(MAX_LOCK_SECS);
    Some(TimeDelta::seconds(secs))
}

/// Time left until a lock ends, at least a second (for `Retry-After`).
pub fn remaining(delta: TimeDelta) -> Duration {
    delta
        .to_std()
        .unwrap_or_default()
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_the_limit_and_double_up_to_an_hour() {
        let mins = |n| lock_for(n, 5).map(|d| d.num_minutes());
        assert_eq!(mins(4), None);
        assert_eq!(mins(5), Some(1));
        assert_eq!(mins(6), Some(2));
        assert_eq!(mins(7), Some(4));
        assert_eq!(mins(11), Some(60));
        assert_eq!(mins(200), Some(60));
        assert_eq!(mins(i32::MAX), Some(60));
    }
}
