//! Queries behind sign-in and registration throttling.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{auth_events, ip_login_failures, login_throttles};

/// Recent failures of one (e-mail, IP) pair.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = login_throttles)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
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

pub fn save_pair(conn: &mut DbConnection, row: &LoginThrottle) -> QueryResult<()> {
    diesel::insert_into(login_throttles::table)
        .values(row)
        .on_conflict((login_throttles::email, login_throttles::ip))
        .do_update()
        .set(row)
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

/// How many events of `kind` came from `ip` since `since`, and the oldest.
pub fn events_from_ip_since(
    conn: &mut DbConnection,
    ip: &str,
    kind: &str,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    auth_events::table
        .filter(auth_events::ip.eq(ip))
        .filter(auth_events::kind.eq(kind))
        .filter(auth_events::created_at.ge(since))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(auth_events::created_at),
        ))
        .first(conn)
}
