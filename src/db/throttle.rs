//! Queries behind sign-in and registration throttling.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{ip_login_failures, login_throttles};

/// Recent failures of one (e-mail, IP) pair.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = login_throttles)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct LoginThrottle {
    pub email: String,
    pub ip: String,
    pub failures: i32,
    pub last_failure_at: NaiveDateTime,
    pub locked_until: Option<NaiveDateTime>,
}

pub fn find_pair(
    conn: &mut DbConnection,
    email: &str,
    ip: &str,
) -> QueryResult<Option<LoginThrottle>> {
    login_throttles::table
        .find((email, ip))
        .select(LoginThrottle::as_select())
        .first(conn)
        .optional()
}

/// Counts one more failure for the pair and returns the streak's new length.
///
/// Atomic without `ON CONFLICT`: a streak whose last failure and lock both lie
/// before `stale_before` starts again from zero, then `failures = failures + 1`
/// runs as one statement; when no row exists one is inserted, and an insert
/// that loses a race (unique violation, inside a savepoint) retries the update.
pub fn count_failure(
    conn: &mut DbConnection,
    email: &str,
    ip: &str,
    now: NaiveDateTime,
    stale_before: NaiveDateTime,
) -> QueryResult<i32> {
    let pair = || {
        login_throttles::table
            .filter(login_throttles::email.eq(email))
            .filter(login_throttles::ip.eq(ip))
    };
    diesel::update(
        pair()
            .filter(login_throttles::last_failure_at.lt(stale_before))
            .filter(
                login_throttles::locked_until
                    .is_null()
                    .or(login_throttles::locked_until.lt(stale_before)),
            ),
    )
    .set((
        login_throttles::failures.eq(0),
        login_throttles::locked_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    let increment = |conn: &mut DbConnection| {
        diesel::update(pair())
            .set((
                login_throttles::failures.eq(login_throttles::failures + 1),
                login_throttles::last_failure_at.eq(now),
            ))
            .execute(conn)
    };
    if increment(conn)? == 0 {
        let inserted = conn.transaction(|conn| {
            diesel::insert_into(login_throttles::table)
                .values(&LoginThrottle {
                    email: email.to_owned(),
                    ip: ip.to_owned(),
                    failures: 1,
                    last_failure_at: now,
                    locked_until: None,
                })
                .execute(conn)
        });
        match inserted {
            Ok(_) => {}
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {
                increment(conn)?;
            }
            Err(e) => return Err(e),
        }
    }
    pair().select(login_throttles::failures).first(conn)
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

pub fn clear_pair(conn: &mut DbConnection, email: &str, ip: &str) -> QueryResult<()> {
    diesel::delete(login_throttles::table.find((email, ip)))
        .execute(conn)
        .map(|_| ())
}

/// Records one failed sign-in from `ip` and forgets that IP's failures older
/// than `keep_since`.
pub fn record_ip_failure(
    conn: &mut DbConnection,
    ip: &str,
    now: NaiveDateTime,
    keep_since: NaiveDateTime,
) -> QueryResult<()> {
    diesel::delete(
        ip_login_failures::table
            .filter(ip_login_failures::ip.eq(ip))
            .filter(ip_login_failures::created_at.lt(keep_since)),
    )
    .execute(conn)?;
    diesel::insert_into(ip_login_failures::table)
        .values((
            ip_login_failures::id.eq(uuid::Uuid::new_v4().to_string()),
            ip_login_failures::ip.eq(ip),
            ip_login_failures::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// How many failures `ip` had since `since`, and the oldest of them.
pub fn ip_failures_since(
    conn: &mut DbConnection,
    ip: &str,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    ip_login_failures::table
        .filter(ip_login_failures::ip.eq(ip))
        .filter(ip_login_failures::created_at.ge(since))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(ip_login_failures::created_at),
        ))
        .first(conn)
}

/// Deletes throttle rows no rule looks at any more: pair streaks whose last
/// failure and lock are older than `pair_before`, IP failures older than
/// `ip_before`. Returns how many.
pub fn delete_stale(
    conn: &mut DbConnection,
    pair_before: NaiveDateTime,
    ip_before: NaiveDateTime,
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
    let ips = diesel::delete(
        ip_login_failures::table.filter(ip_login_failures::created_at.lt(ip_before)),
    )
    .execute(conn)?;
    Ok(pairs + ips)
}
