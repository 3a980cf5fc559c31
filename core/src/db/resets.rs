//! Queries on `password_resets`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::password_resets;
use crate::ids::{Email, UserId};

/// A request for a reset link (with no user for an unknown address).
#[derive(Debug, Insertable)]
#[diesel(table_name = password_resets)]
pub struct NewReset<'a> {
    pub id: &'a str,
    /// The normalised address asked for.
    pub email: Option<&'a Email>,
    pub user_id: Option<&'a UserId>,
    pub token_hash: Option<&'a str>,
    pub ip: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, reset: &NewReset<'_>) -> QueryResult<()> {
    diesel::insert_into(password_resets::table)
        .values(reset)
        .execute(conn)
        .map(|_| ())
}

/// Supersedes the live links asked for `email` (of an account or not) by a
/// new request: the same statement for either; returns how many.
pub fn supersede(conn: &mut DbConnection, email: &Email, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        password_resets::table
            .filter(password_resets::email.eq(email))
            .filter(password_resets::used_at.is_null()),
    )
    .set(password_resets::used_at.eq(Some(at)))
    .execute(conn)
}

/// Ends every outstanding link of `user_id` (a newer link, or any password
/// change); returns how many.
pub fn invalidate_all(
    conn: &mut DbConnection,
    user_id: &UserId,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        password_resets::table
            .filter(password_resets::user_id.eq(user_id))
            .filter(password_resets::used_at.is_null()),
    )
    .set(password_resets::used_at.eq(Some(at)))
    .execute(conn)
}

/// The account whose live link has this hash (unused, unexpired), if any.
pub fn live_user(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<UserId>> {
    password_resets::table
        .filter(password_resets::token_hash.eq(token_hash))
        .filter(password_resets::user_id.is_not_null())
        .filter(password_resets::used_at.is_null())
        .filter(password_resets::expires_at.gt(now))
        .select(password_resets::user_id.assume_not_null())
        .first(conn)
        .optional()
}

/// Uses the link with this hash: exactly one live link changes (a race of
/// two uses has one winner); returns whether it was this call.
pub fn use_link(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        password_resets::table
            .filter(password_resets::token_hash.eq(token_hash))
            .filter(password_resets::user_id.is_not_null())
            .filter(password_resets::used_at.is_null())
            .filter(password_resets::expires_at.gt(now)),
    )
    .set(password_resets::used_at.eq(Some(now)))
    .execute(conn)
    .map(|n| n == 1)
}

/// Deletes links that can no longer be used: used (or superseded) or
/// expired by `now`. Returns how many.
pub fn delete_dead(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        password_resets::table.filter(
            password_resets::used_at
                .is_not_null()
                .or(password_resets::expires_at.le(now)),
        ),
    )
    .execute(conn)
}
