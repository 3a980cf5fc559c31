//! Queries on `email_confirmations`: the links that confirm an address.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::email_confirmations;
use crate::ids::{Email, UserId};

/// What a link confirms: a registration's address, or an account's new one.
pub const REGISTRATION: &str = "registration";
pub const EMAIL_CHANGE: &str = "email_change";

#[derive(Debug, Insertable)]
#[diesel(table_name = email_confirmations)]
pub struct NewConfirmation<'a> {
    pub id: &'a str,
    pub token_hash: &'a str,
    pub purpose: &'static str,
    pub email: &'a Email,
    pub user_id: Option<&'a UserId>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A live link as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_confirmations)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Confirmation {
    pub purpose: String,
    pub email: Email,
    pub user_id: Option<UserId>,
}

/// Stores a new link after ending every live one for the same address and,
/// for an e-mail change, every live change of the same account: a newer link
/// supersedes the older ones.
pub fn replace(conn: &mut DbConnection, link: &NewConfirmation<'_>) -> QueryResult<()> {
    end_for_address(conn, link.email, link.created_at)?;
    if let (EMAIL_CHANGE, Some(user_id)) = (link.purpose, link.user_id) {
        end_changes_of(conn, user_id, link.created_at)?;
    }
    diesel::insert_into(email_confirmations::table)
        .values(link)
        .execute(conn)
        .map(|_| ())
}

/// Ends every live link for `email`; returns how many.
pub fn end_for_address(
    conn: &mut DbConnection,
    email: &Email,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        email_confirmations::table
            .filter(email_confirmations::email.eq(email))
            .filter(email_confirmations::used_at.is_null()),
    )
    .set(email_confirmations::used_at.eq(Some(at)))
    .execute(conn)
}

/// Ends every live e-mail-change link of `user_id` (a newer change, or a
/// cancelled one); returns how many.
pub fn end_changes_of(
    conn: &mut DbConnection,
    user_id: &UserId,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        email_confirmations::table
            .filter(email_confirmations::user_id.eq(user_id))
            .filter(email_confirmations::purpose.eq(EMAIL_CHANGE))
            .filter(email_confirmations::used_at.is_null()),
    )
    .set(email_confirmations::used_at.eq(Some(at)))
    .execute(conn)
}

/// The live link (unused, unexpired) with this hash, if any.
pub fn live(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<Confirmation>> {
    email_confirmations::table
        .filter(email_confirmations::token_hash.eq(token_hash))
        .filter(email_confirmations::used_at.is_null())
        .filter(email_confirmations::expires_at.gt(now))
        .select(Confirmation::as_select())
        .first(conn)
        .optional()
}

/// Uses the link with this hash: exactly one live link changes (of two uses
/// at once, one wins); returns whether it was this call.
pub fn use_link(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        email_confirmations::table
            .filter(email_confirmations::token_hash.eq(token_hash))
            .filter(email_confirmations::used_at.is_null())
            .filter(email_confirmations::expires_at.gt(now)),
    )
    .set(email_confirmations::used_at.eq(Some(now)))
    .execute(conn)
    .map(|n| n == 1)
}

/// The new address of the account's live e-mail change, if any.
pub fn pending_change(
    conn: &mut DbConnection,
    user_id: &UserId,
    now: NaiveDateTime,
) -> QueryResult<Option<Email>> {
    email_confirmations::table
        .filter(email_confirmations::user_id.eq(user_id))
        .filter(email_confirmations::purpose.eq(EMAIL_CHANGE))
        .filter(email_confirmations::used_at.is_null())
        .filter(email_confirmations::expires_at.gt(now))
        .order(email_confirmations::created_at.desc())
        .select(email_confirmations::email)
        .first(conn)
        .optional()
}

/// Deletes every link for `email` (its address was just confirmed: the used
/// link with the others).
pub fn delete_for_address(conn: &mut DbConnection, email: &Email) -> QueryResult<usize> {
    diesel::delete(email_confirmations::table.filter(email_confirmations::email.eq(email)))
        .execute(conn)
}

/// Deletes every link of `user_id` (its address just changed).
pub fn delete_for_user(conn: &mut DbConnection, user_id: &UserId) -> QueryResult<usize> {
    diesel::delete(email_confirmations::table.filter(email_confirmations::user_id.eq(user_id)))
        .execute(conn)
}

/// Deletes every link of `user_id` and every link for `email` (an account
/// being deleted).
pub fn delete_for(conn: &mut DbConnection, user_id: &UserId, email: &Email) -> QueryResult<()> {
    diesel::delete(
        email_confirmations::table.filter(
            email_confirmations::user_id
                .eq(user_id)
                .or(email_confirmations::email.eq(email)),
        ),
    )
    .execute(conn)
    .map(|_| ())
}

/// Deletes links that can no longer be used (used, superseded or expired by
/// `now`); returns how many.
pub fn delete_dead(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        email_confirmations::table.filter(
            email_confirmations::used_at
                .is_not_null()
                .or(email_confirmations::expires_at.le(now)),
        ),
    )
    .execute(conn)
}
