//! The audit trail: what happened to an account, when, from where. A record,
//! never a control: no limit counts these rows.

use chrono::NaiveDateTime;

use super::service::Requester;
use crate::db::models::NewAuthEvent;
use crate::db::{DbConnection, events};
use crate::ids::{SessionId, UserId};

/// What happened. Stored in `auth_events.kind` (and, for the ends of
/// sessions, `sessions.revoke_reason`) as the text [`EventKind::as_str`]
/// gives, which log lines carry as their `event` field too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Registered,
    SignedIn,
    SignInFailed,
    SignedOut,
    SessionRevoked,
    PasswordChanged,
    RefreshReuse,
    SessionExpired,
    AccountDisabled,
    AccountEnabled,
    PasswordResetRequested,
    PasswordResetThrottled,
    PasswordReset,
    ResetLinkByOperator,
    /// Its sessions' revoke reason; the account's own rows go with it.
    AccountDeleted,
    /// The address confirmed: from its link, or by an operator.
    EmailVerified,
    /// A change of address asked for (its link mailed, or its notice).
    EmailChangeRequested,
    /// Also the revoke reason of the sessions the change ended.
    EmailChanged,
    TwoFactorEnabled,
    TwoFactorDisabled,
    TwoFactorResetByOperator,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    SecondFactorFailed,
    CodeReplayRefused,
    TrustedDeviceAdded,
    TrustedDeviceRevoked,
    SteppedUp,
    PasskeyAdded,
    PasskeyRemoved,
    /// A passkey's signature counter did not move on: possibly cloned.
    PasskeyCounterRefused,
    PasskeysResetByOperator,
}

impl EventKind {
    /// Every kind, for reading stored text back.
    pub const ALL: [Self; 32] = [
        Self::Registered,
        Self::SignedIn,
        Self::SignInFailed,
        Self::SignedOut,
        Self::SessionRevoked,
        Self::PasswordChanged,
        Self::RefreshReuse,
        Self::SessionExpired,
        Self::AccountDisabled,
        Self::AccountEnabled,
        Self::PasswordResetRequested,
        Self::PasswordResetThrottled,
        Self::PasswordReset,
        Self::ResetLinkByOperator,
        Self::AccountDeleted,
        Self::EmailVerified,
        Self::EmailChangeRequested,
        Self::EmailChanged,
        Self::TwoFactorEnabled,
        Self::TwoFactorDisabled,
        Self::TwoFactorResetByOperator,
        Self::RecoveryCodesRegenerated,
        Self::RecoveryCodeUsed,
        Self::SecondFactorFailed,
        Self::CodeReplayRefused,
        Self::TrustedDeviceAdded,
        Self::TrustedDeviceRevoked,
        Self::SteppedUp,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::PasskeyCounterRefused,
        Self::PasskeysResetByOperator,
    ];

    /// The stored and logged name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::SignedIn => "signed_in",
            Self::SignInFailed => "sign_in_failed",
            Self::SignedOut => "signed_out",
            Self::SessionRevoked => "session_revoked",
            Self::PasswordChanged => "password_changed",
            Self::RefreshReuse => "refresh_token_reuse",
            Self::SessionExpired => "session_expired",
            Self::AccountDisabled => "account_disabled",
            Self::AccountEnabled => "account_enabled",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordResetThrottled => "password_reset_throttled",
            Self::PasswordReset => "password_reset",
            Self::ResetLinkByOperator => "reset_link_by_operator",
            Self::AccountDeleted => "account_deleted",
            Self::EmailVerified => "email_verified",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::TwoFactorEnabled => "two_factor_enabled",
            Self::TwoFactorDisabled => "two_factor_disabled",
            Self::TwoFactorResetByOperator => "two_factor_reset_by_operator",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::SecondFactorFailed => "second_factor_failed",
            Self::CodeReplayRefused => "code_replay_refused",
            Self::TrustedDeviceAdded => "trusted_device_added",
            Self::TrustedDeviceRevoked => "trusted_device_revoked",
            Self::SteppedUp => "stepped_up",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::PasskeyCounterRefused => "passkey_counter_refused",
            Self::PasskeysResetByOperator => "passkeys_reset_by_operator",
        }
    }

    /// The kind a stored name stands for; `None` for a name this version
    /// does not know (written by hand, or by a newer version).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// How the account page names the event.
    pub fn label(self) -> &'static str {
        match self {
            Self::Registered => "Account created",
            Self::SignedIn => "Signed in",
            Self::SignInFailed => "Failed sign-in",
            Self::SignedOut => "Signed out",
            Self::SessionRevoked => "Session revoked",
            Self::PasswordChanged => "Password changed",
            Self::RefreshReuse => "Stolen session token detected; session ended",
            Self::SessionExpired => "Session expired",
            Self::AccountDisabled => "Account disabled by an operator",
            Self::AccountEnabled => "Account enabled by an operator",
            Self::PasswordResetRequested => "Password reset link sent",
            Self::PasswordResetThrottled => "Password reset link refused (too many)",
            Self::PasswordReset => "Password reset by e-mail",
            Self::ResetLinkByOperator => "Reset link made by an operator",
            Self::AccountDeleted => "Account deleted",
            Self::EmailVerified => "E-mail address confirmed",
            Self::EmailChangeRequested => "E-mail change requested",
            Self::EmailChanged => "E-mail address changed",
            Self::TwoFactorEnabled => "Two-factor sign-in turned on",
            Self::TwoFactorDisabled => "Two-factor sign-in turned off",
            Self::TwoFactorResetByOperator => "Two-factor sign-in turned off by support",
            Self::RecoveryCodesRegenerated => "New recovery codes made",
            Self::RecoveryCodeUsed => "Recovery code used",
            Self::SecondFactorFailed => "Wrong two-factor code",
            Self::CodeReplayRefused => "Used code refused",
            Self::TrustedDeviceAdded => "Device trusted",
            Self::TrustedDeviceRevoked => "Trusted device removed",
            Self::SteppedUp => "Identity confirmed",
            Self::PasskeyAdded => "Passkey added",
            Self::PasskeyRemoved => "Passkey removed",
            Self::PasskeyCounterRefused => "Passkey refused (possibly copied)",
            Self::PasskeysResetByOperator => "Passkeys removed by support",
        }
    }
}

/// One entry of an account's recent activity.
#[derive(Debug, Clone)]
pub struct Event {
    /// `None` for a stored name this version does not know.
    pub kind: Option<EventKind>,
    pub ip: String,
    pub user_agent: String,
    pub at: NaiveDateTime,
}

impl Event {
    /// How the account page names the event.
    pub fn label(&self) -> &'static str {
        self.kind.map_or("Other", EventKind::label)
    }
}

/// Writes one row to `auth_events`, inside the caller's transaction.
pub(super) fn record(
    conn: &mut DbConnection,
    user_id: Option<&UserId>,
    session_id: Option<&SessionId>,
    kind: EventKind,
    who: &Requester,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    events::record(
        conn,
        &NewAuthEvent {
            id: uuid::Uuid::new_v4().to_string(),
            user_id,
            session_id,
            kind: kind.as_str(),
            ip: &who.ip,
            user_agent: &who.user_agent,
            created_at: now,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_stored_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("something_newer"), None);
        let unknown = Event {
            kind: None,
            ip: String::new(),
            user_agent: String::new(),
            at: NaiveDateTime::default(),
        };
        assert_eq!(unknown.label(), "Other");
    }
}
