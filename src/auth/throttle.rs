//! Sign-in and registration throttling, kept in the database so that every
//! instance enforces the same limits.
//!
//! * Per (e-mail, client IP): after `max_failures` failures within 15 minutes
//!   the pair is locked, even for the right password: 1 minute, then 2, 4, …
//!   up to an hour for each further failure. The streak is forgotten 15 minutes
//!   after its last failure or lock, and a success clears it at once.
//! * Per client IP: at most `max_failures_per_ip` failures in any hour, across
//!   all e-mails; past it, every sign-in from that IP waits until the hour has
//!   passed.
//! * Registrations: at most `register_max_per_hour` per client IP.
//!
//! Other e-mails and other IPs are never affected, so nobody can lock a victim
//! out from the victim's own network.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

use crate::db::DbConnection;
use crate::db::throttle::{self, LoginThrottle};

use super::session::event;

const PAIR_WINDOW: TimeDelta = TimeDelta::minutes(15);
const IP_WINDOW: TimeDelta = TimeDelta::hours(1);
const FIRST_LOCK_SECS: i64 = 60;
const MAX_LOCK_SECS: i64 = 3600;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    pub max_failures_per_ip: u32,
    pub register_max_per_hour: u32,
}

/// When a sign-in for `email` from `ip` may be tried again, if it is locked now.
pub fn login_blocked_for(
    conn: &mut DbConnection,
    policy: &ThrottlePolicy,
    email: &str,
    ip: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<Option<Duration>> {
    if let Some(until) = throttle::find_pair(conn, email, ip)?.and_then(|t| t.locked_until)
        && until > now
    {
        return Ok(Some(remaining(until - now)));
    }
    let (count, oldest) = throttle::ip_failures_since(conn, ip, now - IP_WINDOW)?;
    if count >= i64::from(policy.max_failures_per_ip) {
        let until = oldest.unwrap_or(now) + IP_WINDOW;
        return Ok(Some(remaining(until - now)));
    }
    Ok(None)
}

/// Counts a failed sign-in against the pair and the IP.
pub fn record_login_failure(
    conn: &mut DbConnection,
    policy: &ThrottlePolicy,
    email: &str,
    ip: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    let previous = throttle::find_pair(conn, email, ip)?;
    let failures = match previous {
        Some(t)
            if now
                - t.last_failure_at
                    .max(t.locked_until.unwrap_or(t.last_failure_at))
                <= PAIR_WINDOW =>
        {
            t.failures.saturating_add(1)
        }
        _ => 1,
    };
    let locked_until = lock_for(failures, policy.max_failures).map(|lock| now + lock);
    throttle::save_pair(
        conn,
        &LoginThrottle {
            email: email.to_owned(),
            ip: ip.to_owned(),
            failures,
            last_failure_at: now,
            locked_until,
        },
    )?;
    throttle::record_ip_failure(conn, ip, now, now - IP_WINDOW)
}

/// A success forgets the pair's failures.
pub fn record_login_success(
    conn: &mut DbConnection,
    email: &str,
    ip: &str,
) -> diesel::QueryResult<()> {
    throttle::clear_pair(conn, email, ip)
}

/// When `ip` may register again, if it has reached the hourly limit.
pub fn registration_blocked_for(
    conn: &mut DbConnection,
    policy: &ThrottlePolicy,
    ip: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<Option<Duration>> {
    let (count, oldest) =
        throttle::events_from_ip_since(conn, ip, event::REGISTERED, now - IP_WINDOW)?;
    if count >= i64::from(policy.register_max_per_hour) {
        let until = oldest.unwrap_or(now) + IP_WINDOW;
        return Ok(Some(remaining(until - now)));
    }
    Ok(None)
}

/// The lock after the `failures`-th failure: none below the limit, then one
/// minute doubling with each further failure, capped at an hour.
fn lock_for(failures: i32, max_failures: u32) -> Option<TimeDelta> {
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

fn remaining(delta: TimeDelta) -> Duration {
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
