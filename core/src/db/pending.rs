//! Queries on `pending_registrations`: registrations of an address nobody
//! has confirmed yet.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::pending_registrations;
use crate::ids::Email;

/// How many registrations of one address are kept; an older one goes when
/// a newer one comes.
pub const KEPT_PER_ADDRESS: i64 = 3;

#[derive(Debug, Insertable)]
#[diesel(table_name = pending_registrations)]
pub struct NewPending<'a> {
    pub id: &'a str,
    pub email: &'a Email,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub ip: &'a str,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pending_registrations)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Pending {
    pub id: String,
    pub name: String,
    pub password_hash: String,
    pub ip: String,
}

/// Keeps a registration, dropping the oldest beyond [`KEPT_PER_ADDRESS`].
pub fn insert(conn: &mut DbConnection, pending: &NewPending<'_>) -> QueryResult<()> {
    diesel::insert_into(pending_registrations::table)
        .values(pending)
        .execute(conn)?;
    let kept: Vec<String> = pending_registrations::table
        .filter(pending_registrations::email.eq(pending.email))
        .order((
            pending_registrations::created_at.desc(),
            pending_registrations::id.desc(),
        ))
        .limit(KEPT_PER_ADDRESS)
        .select(pending_registrations::id)
        .load(conn)?;
    diesel::delete(
        pending_registrations::table
            .filter(pending_registrations::email.eq(pending.email))
            .filter(pending_registrations::id.ne_all(kept)),
    )
    .execute(conn)
    .map(|_| ())
}

/// The registrations kept for `email`, newest first.
pub fn for_address(conn: &mut DbConnection, email: &Email) -> QueryResult<Vec<Pending>> {
    pending_registrations::table
        .filter(pending_registrations::email.eq(email))
        .order((
            pending_registrations::created_at.desc(),
            pending_registrations::id.desc(),
        ))
        .select(Pending::as_select())
        .load(conn)
}

/// Drops every registration of `email` (it was confirmed, or its account
/// deleted); returns how many.
pub fn delete_for_address(conn: &mut DbConnection, email: &Email) -> QueryResult<usize> {
    diesel::delete(pending_registrations::table.filter(pending_registrations::email.eq(email)))
        .execute(conn)
}

/// Deletes registrations made before `before`; returns how many.
pub fn delete_older_than(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        pending_registrations::table.filter(pending_registrations::created_at.lt(before)),
    )
    .execute(conn)
}
