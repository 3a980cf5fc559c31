//! Rows and insertables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{auth_events, sessions, users};
use crate::ids::{Email, SessionId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: String,
    pub password_hash: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Set while an operator has the account disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// Counts password changes and resets (not re-hashes at a raised cost).
    pub password_version: i32,
    /// When the address was confirmed; `None` for an account registered
    /// while confirmation was off and not confirmed since.
    pub email_verified_at: Option<NaiveDateTime>,
    /// The TOTP secret, sealed (see `auth::sealed`); set at enrolment.
    pub totp_secret: Option<String>,
    /// When two-factor sign-in was turned on (a first valid code); `None`:
    /// off, whatever `totp_secret` holds.
    pub two_factor_enabled_at: Option<NaiveDateTime>,
    /// The last time step a code was accepted for.
    pub totp_last_step: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a UserId,
    pub email: &'a Email,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The address a self-registration came from (counted by the hourly
    /// registration limit); `None` for accounts an operator creates.
    pub registration_ip: Option<&'a str>,
    /// When the address was confirmed (`None`: not confirmed).
    pub email_verified_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub ip: String,
    pub user_agent: String,
    pub revoked_at: Option<NaiveDateTime>,
    /// SHA-256 (hex) of the current refresh token.
    pub refresh_hash: String,
    /// The token it replaced, still honoured during the reuse grace window.
    pub previous_refresh_hash: Option<String>,
    pub rotated_at: Option<NaiveDateTime>,
    pub remember: bool,
    /// Absolute end of the session, whatever the activity.
    pub expires_at: NaiveDateTime,
    pub revoke_reason: Option<String>,
    /// When the session last proved who it is (sign-in or step-up); `None`
    /// only for rows older than the column, read as `created_at`.
    pub authenticated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a SessionId,
    pub user_id: &'a UserId,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub refresh_hash: &'a str,
    pub remember: bool,
    pub expires_at: NaiveDateTime,
    pub authenticated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = auth_events)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct AuthEvent {
    pub id: String,
    pub user_id: Option<UserId>,
    pub session_id: Option<SessionId>,
    pub kind: String,
    pub ip: String,
    pub user_agent: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = auth_events)]
pub struct NewAuthEvent<'a> {
    pub id: String,
    pub user_id: Option<&'a UserId>,
    pub session_id: Option<&'a SessionId>,
    pub kind: &'a str,
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub created_at: NaiveDateTime,
}
