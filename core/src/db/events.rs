//! Queries on `auth_events`, the audit trail of sign-ins, sign-outs and the rest.

use diesel::prelude::*;

use super::DbConnection;
use super::models::{AuthEvent, NewAuthEvent};
use super::schema::auth_events;
use crate::ids::UserId;

pub fn record(conn: &mut DbConnection, event: &NewAuthEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(auth_events::table)
        .values(event)
        .execute(conn)
        .map(|_| ())
}

/// The latest `limit` events of a user, newest first.
pub fn recent(
    conn: &mut DbConnection,
    user_id: &UserId,
    limit: i64,
) -> QueryResult<Vec<AuthEvent>> {
    auth_events::table
        .filter(auth_events::user_id.eq(user_id))
        .order((auth_events::created_at.desc(), auth_events::id.desc()))
        .limit(limit)
        .select(AuthEvent::as_select())
        .load(conn)
}
