//! Queries on `sessions`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::models::NewSession;
use super::schema::sessions;

pub fn insert(conn: &mut DbConnection, session: &NewSession<'_>) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .map(|_| ())
}

/// Marks one of `user_id`'s sessions ended; returns whether a live one was found.
pub fn revoke(
    conn: &mut DbConnection,
    session_id: &str,
    user_id: &str,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(at))
    .execute(conn)
    .map(|n| n > 0)
}
