//! Throttling counts in the database (the rules are in `auth::throttle`).

use std::time::Duration;

use chrono::NaiveDateTime;

use crate::auth::throttle::{IP_WINDOW, PAIR_WINDOW, ThrottlePolicy, lock_for, remaining};
use crate::db::{DbConnection, throttle, users};

/// When a sign-in for `email` from `ip` may be tried again, if it is locked now.
pub(super) fn login_blocked_for(
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

/// Counts a failed sign-in against the pair (locking it past the limit) and the IP.
pub(super) fn record_login_failure(
    conn: &mut DbConnection,
    policy: &ThrottlePolicy,
    email: &str,
    ip: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    let failures = throttle::count_failure(conn, email, ip, now, now - PAIR_WINDOW)?;
    if let Some(lock) = lock_for(failures, policy.max_failures) {
        throttle::lock_pair(conn, email, ip, now + lock)?;
    }
    throttle::record_ip_failure(conn, ip, now, now - IP_WINDOW)
}

/// A success forgets the pair's failures.
pub(super) fn record_login_success(
    conn: &mut DbConnection,
    email: &str,
    ip: &str,
) -> diesel::QueryResult<()> {
    throttle::clear_pair(conn, email, ip)
}

/// When `ip` may register again, if it has reached the hourly limit.
pub(super) fn registration_blocked_for(
    conn: &mut DbConnection,
    policy: &ThrottlePolicy,
    ip: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<Option<Duration>> {
    let (count, oldest) = users::registered_from_ip_since(conn, ip, now - IP_WINDOW)?;
    if count >= i64::from(policy.register_max_per_hour) {
        let until = oldest.unwrap_or(now) + IP_WINDOW;
        return Ok(Some(remaining(until - now)));
    }
    Ok(None)
}
