//! The audit trail: what happened to an account, when, from where. A record,
//! never a control: no limit counts these rows.

use chrono::NaiveDateTime;

use super::service::Requester;
use crate::db::models::NewAuthEvent;
use crate::db::{DbConnection, events};

/// Names of the events written to `auth_events`.
pub mod event {
    pub const REGISTERED: &str = "registered";
    pub const SIGNED_IN: &str = "signed_in";
    pub const SIGN_IN_FAILED: &str = "sign_in_failed";
    pub const SIGNED_OUT: &str = "signed_out";
    pub const SESSION_REVOKED: &str = "session_revoked";
    pub const PASSWORD_CHANGED: &str = "password_changed";
    pub const REFRESH_REUSE: &str = "refresh_token_reuse";
    pub const SESSION_EXPIRED: &str = "session_expired";
    pub const ACCOUNT_DISABLED: &str = "account_disabled";
    pub const ACCOUNT_ENABLED: &str = "account_enabled";
    pub const PASSWORD_RESET_REQUESTED: &str = "password_reset_requested";
    pub const PASSWORD_RESET_THROTTLED: &str = "password_reset_throttled";
    pub const PASSWORD_RESET: &str = "password_reset";
    pub const RESET_LINK_BY_OPERATOR: &str = "reset_link_by_operator";
}

/// One entry of an account's recent activity.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: String,
    pub ip: String,
    pub user_agent: String,
    pub at: NaiveDateTime,
}

impl Event {
    /// How the account page names the event.
    pub fn label(&self) -> &'static str {
        match self.kind.as_str() {
            event::REGISTERED => "Account created",
            event::SIGNED_IN => "Signed in",
            event::SIGN_IN_FAILED => "Failed sign-in",
            event::SIGNED_OUT => "Signed out",
            event::SESSION_REVOKED => "Session revoked",
            event::PASSWORD_CHANGED => "Password changed",
            event::REFRESH_REUSE => "Stolen session token detected; session ended",
            event::SESSION_EXPIRED => "Session expired",
            event::ACCOUNT_DISABLED => "Account disabled by an operator",
            event::ACCOUNT_ENABLED => "Account enabled by an operator",
            event::PASSWORD_RESET_REQUESTED => "Password reset link sent",
            event::PASSWORD_RESET_THROTTLED => "Password reset link refused (too many)",
            event::PASSWORD_RESET => "Password reset by e-mail",
            event::RESET_LINK_BY_OPERATOR => "Reset link made by an operator",
            _ => "Other",
        }
    }
}

/// Writes one row to `auth_events`, inside the caller's transaction.
pub(super) fn record(
    conn: &mut DbConnection,
    user_id: Option<&str>,
    session_id: Option<&str>,
    kind: &str,
    who: &Requester,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    events::record(
        conn,
        &NewAuthEvent {
            id: uuid::Uuid::new_v4().to_string(),
            user_id,
            session_id,
            kind,
            ip: &who.ip,
            user_agent: &who.user_agent,
            created_at: now,
        },
    )
}
