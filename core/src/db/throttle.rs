//! Queries behind throttling. Each count is one statement that counts a hit
//! and answers with the new count (`INSERT … ON CONFLICT DO UPDATE …
//! RETURNING`, the same text on SQLite and PostgreSQL): concurrent hits on
//! any number of instances queue on the row and each sees the ones before it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Text, Timestamp};

use super::DbConnection;
use super::schema::{login_throttles, rate_limits};

/// A window's count after a hit.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Hits {
    #[diesel(sql_type = Integer)]
    pub hits: i32,
    #[diesel(sql_type = Timestamp)]
    pub window_start: NaiveDateTime,
}

/// Counts one hit of `key` in `bucket` and returns the window's count and
/// start. A window that started before `stale_before` starts again at `now`.
pub fn count_hit(
    conn: &mut DbConnection,
    bucket: &str,
    key: &str,
    now: NaiveDateTime,
    stale_before: NaiveDateTime,
) -> QueryResult<Hits> {
    // Parameters appear in the order they are bound ($1 first): SQLite
    // numbers `$N` parameters by first appearance.
    diesel::sql_query(
        "INSERT INTO rate_limits (bucket, key, window_start, hits) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (bucket, key) DO UPDATE SET \
           hits = CASE WHEN rate_limits.window_start < $4 THEN 1 \
                       ELSE rate_limits.hits + 1 END, \
           window_start = CASE WHEN rate_limits.window_start < $4 THEN $3 \
                               ELSE rate_limits.window_start END \
         RETURNING hits, window_start",
    )
    .bind::<Text, _>(bucket)
    .bind::<Text, _>(key)
    .bind::<Timestamp, _>(now)
    .bind::<Timestamp, _>(stale_before)
    .get_result(conn)
}

/// `key`'s count in `bucket` as it stands, without counting: `None` when it
/// has none, or only one in a window that started before `stale_before`.
pub fn current_hits(
    conn: &mut DbConnection,
    bucket: &str,
    key: &str,
    stale_before: NaiveDateTime,
) -> QueryResult<Option<Hits>> {
    rate_limits::table
        .find((bucket, key))
        .filter(rate_limits::window_start.ge(stale_before))
        .select((rate_limits::hits, rate_limits::window_start))
        .first::<(i32, NaiveDateTime)>(conn)
        .optional()
        .map(|row| row.map(|(hits, window_start)| Hits { hits, window_start }))
}

/// Takes one hit back out of `key`'s window in `bucket`, if that window is
/// still the one that started at `window_start`.
pub fn take_back_hit(
    conn: &mut DbConnection,
    bucket: &str,
    key: &str,
    window_start: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        rate_limits::table
            .find((bucket, key))
            .filter(rate_limits::window_start.eq(window_start))
            .filter(rate_limits::hits.gt(0)),
    )
    .set(rate_limits::hits.eq(rate_limits::hits - 1))
    .execute(conn)
    .map(|_| ())
}

/// An (e-mail, IP) pair's streak as an admission finds it.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Streak {
    /// Failures judged in the streak.
    #[diesel(sql_type = Integer)]
    pub failures: i32,
    /// Attempts admitted and not yet judged, this one included.
    #[diesel(sql_type = Integer)]
    pub in_flight: i32,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub locked_until: Option<NaiveDateTime>,
}

/// Counts one more attempt in flight for the pair and returns its streak. A
/// streak whose last attempt and lock both lie before `stale_before` starts
/// again; attempts still in flight when the last one was admitted before
/// `lost_before` are taken as lost (their process stopped).
pub fn count_attempt(
    conn: &mut DbConnection,
    email: &str,
    ip: &str,
    now: NaiveDateTime,
    stale_before: NaiveDateTime,
    lost_before: NaiveDateTime,
) -> QueryResult<Streak> {
    diesel::sql_query(
        "INSERT INTO login_throttles (email, ip, failures, last_failure_at, locked_until, in_flight) \
         VALUES ($1, $2, 0, $3, NULL, 1) \
         ON CONFLICT (email, ip) DO UPDATE SET \
           failures = CASE WHEN login_throttles.last_failure_at < $4 \
                            AND (login_throttles.locked_until IS NULL \
                                 OR login_throttles.locked_until < $4) THEN 0 \
                           ELSE login_throttles.failures END, \
           locked_until = CASE WHEN login_throttles.last_failure_at < $4 \
                                AND (login_throttles.locked_until IS NULL \
                                     OR login_throttles.locked_until < $4) THEN NULL \
                               ELSE login_throttles.locked_until END, \
           in_flight = CASE WHEN login_throttles.last_failure_at < $5 THEN 1 \
                            ELSE login_throttles.in_flight + 1 END, \
           last_failure_at = $3 \
         RETURNING failures, in_flight, locked_until",
    )
    .bind::<Text, _>(email)
    .bind::<Text, _>(ip)
    .bind::<Timestamp, _>(now)
    .bind::<Timestamp, _>(stale_before)
    .bind::<Timestamp, _>(lost_before)
    .get_result(conn)
}

#[derive(QueryableByName)]
struct Failures {
    #[diesel(sql_type = Integer)]
    failures: i32,
}

/// Records a judged failure of the pair (one attempt less in flight) and
/// returns the streak's failures. A streak a success cleared meanwhile
/// starts again with this failure.
pub fn count_failure(
    conn: &mut DbConnection,
    email: &str,
    ip: &str,
    now: NaiveDateTime,
) -> QueryResult<i32> {
    diesel::sql_query(
        "INSERT INTO login_throttles (email, ip, failures, last_failure_at, locked_until, in_flight) \
         VALUES ($1, $2, 1, $3, NULL, 0) \
         ON CONFLICT (email, ip) DO UPDATE SET \
           failures = login_throttles.failures + 1, \
           in_flight = CASE WHEN login_throttles.in_flight > 0 \
                            THEN login_throttles.in_flight - 1 ELSE 0 END \
         RETURNING failures",
    )
    .bind::<Text, _>(email)
    .bind::<Text, _>(ip)
    .bind::<Timestamp, _>(now)
    .get_result::<Failures>(conn)
    .map(|f| f.failures)
}

/// One attempt of the pair less in flight, without a judgement.
pub fn release_attempt(conn: &mut DbConnection, email: &str, ip: &str) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE login_throttles \
         SET in_flight = CASE WHEN in_flight > 0 THEN in_flight - 1 ELSE 0 END \
         WHERE email = $1 AND ip = $2",
    )
    .bind::<Text, _>(email)
    .bind::<Text, _>(ip)
    .execute(conn)
    .map(|_| ())
}

/// Locks the pair until `until`.
pub fn lock_pair(
    conn: &mut DbConnection,
    email: &str,
    ip: &str,
    until: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(login_throttles::table.find((email, ip)))
        .set(login_throttles::locked_until.eq(Some(until)))
        .execute(conn)
        .map(|_| ())
}

/// Records a success of the pair: its streak of failures and any lock are
/// forgotten, and the attempt is no longer in flight. The row stays, so the
/// other attempts in flight stay counted.
pub fn clear_pair(conn: &mut DbConnection, email: &str, ip: &str) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE login_throttles SET failures = 0, locked_until = NULL, \
           in_flight = CASE WHEN in_flight > 0 THEN in_flight - 1 ELSE 0 END \
         WHERE email = $1 AND ip = $2",
    )
    .bind::<Text, _>(email)
    .bind::<Text, _>(ip)
    .execute(conn)
    .map(|_| ())
}

/// Deletes throttle rows no rule looks at any more: pair streaks whose last
/// attempt and lock are older than `pair_before`, counters whose window
/// started before `window_before`. Returns how many.
pub fn delete_stale(
    conn: &mut DbConnection,
    pair_before: NaiveDateTime,
    window_before: NaiveDateTime,
) -> QueryResult<usize> {
    let pairs = diesel::delete(
        login_throttles::table
            .filter(login_throttles::last_failure_at.lt(pair_before))
            .filter(
                login_throttles::locked_until
                    .is_null()
                    .or(login_throttles::locked_until.lt(pair_before)),
            ),
    )
    .execute(conn)?;
    let counters =
        diesel::delete(rate_limits::table.filter(rate_limits::window_start.lt(window_before)))
            .execute(conn)?;
    Ok(pairs + counters)
}

/// Deletes the sign-in throttle rows of `email` (every IP) and its counters
/// in `buckets`: what an account's deletion leaves of its address.
pub fn forget_address(conn: &mut DbConnection, email: &str, buckets: &[&str]) -> QueryResult<()> {
    diesel::delete(login_throttles::table.filter(login_throttles::email.eq(email)))
        .execute(conn)?;
    diesel::delete(
        rate_limits::table
            .filter(rate_limits::key.eq(email))
            .filter(rate_limits::bucket.eq_any(buckets)),
    )
    .execute(conn)?;
    Ok(())
}
