//! What an operator does to accounts from the command line: list them,
//! disable or enable one, and prune rows no rule needs any more. Creating an
//! account is `create_user`, beside registration (one password policy).

use chrono::NaiveDateTime;

use super::events::{self, EventKind};
use super::service::{Accounts, Requester, ServiceError, delta};
use crate::auth::throttle::{DAY_WINDOW, PAIR_WINDOW};
use crate::db::{
    self, confirmations, passkeys, pending, resets, sessions, throttle, two_factor, users,
};
use crate::ids::{Email, UserId};

/// One account as `gatehouse user list` shows it.
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub email: Email,
    pub name: String,
    pub created_at: NaiveDateTime,
    pub disabled: bool,
    /// Whether the address is confirmed.
    pub verified: bool,
    /// Whether two-factor sign-in is on.
    pub two_factor: bool,
    pub passkeys: i64,
    pub live_sessions: i64,
}

/// What `sessions prune` deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Sessions, and the kept revocations of deleted accounts' sessions.
    pub sessions: usize,
    pub throttle_rows: usize,
    /// Reset links that can no longer be used (used, superseded or expired).
    pub reset_requests: usize,
    /// Confirmation links that can no longer be used.
    pub confirmations: usize,
    /// Registrations left unconfirmed for [`PENDING_KEPT`].
    pub pending_registrations: usize,
    /// Sign-ins that waited for a second factor past their lifetime.
    pub challenges: usize,
    /// Trusted devices past their 30 days.
    pub trusted_devices: usize,
    /// Passkey ceremonies never finished.
    pub passkey_ceremonies: usize,
}

/// How long a registration nobody confirms is kept (a fresh link can still
/// confirm it until then).
pub const PENDING_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Why an operator's change to an account did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("no account has the e-mail address {0}")]
    NoSuchUser(Email),
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

impl From<db::DbError> for OperatorError {
    fn from(e: db::DbError) -> Self {
        Self::Failed(e.into())
    }
}

impl From<diesel::result::Error> for OperatorError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Failed(e.into())
    }
}

/// Revoked sessions stay this long past the access token's lifetime before a
/// prune deletes them, so every instance's poll has long seen them.
const REVOKED_KEPT: chrono::TimeDelta = chrono::TimeDelta::hours(1);

impl Accounts {
    /// Every account, oldest first, with its number of live sessions.
    pub async fn list_users(&self) -> Result<Vec<UserSummary>, ServiceError> {
        let clock = self.clock.clone();
        db::run(&self.pool, move |conn| {
            let now = clock.now();
            let counts: std::collections::HashMap<UserId, i64> =
                sessions::live_counts(conn, now)?.into_iter().collect();
            let passkey_counts: std::collections::HashMap<UserId, i64> =
                passkeys::counts(conn)?.into_iter().collect();
            Ok(users::list(conn)?
                .into_iter()
                .map(|u| UserSummary {
                    live_sessions: counts.get(&u.id).copied().unwrap_or(0),
                    disabled: u.disabled_at.is_some(),
                    verified: u.email_verified_at.is_some(),
                    two_factor: u.two_factor_enabled_at.is_some(),
                    passkeys: passkey_counts.get(&u.id).copied().unwrap_or(0),
                    email: u.email,
                    name: u.name,
                    created_at: u.created_at,
                })
                .collect())
        })
        .await
    }

    /// `gatehouse user verify EMAIL`: counts the account's address as
    /// confirmed (an operator vouches for it), audited. `false` when it
    /// already was.
    pub async fn verify_user(&self, email: &Email, who: &Requester) -> Result<bool, OperatorError> {
        let (email, who, clock) = (email.clone(), who.clone(), self.clock.clone());
        db::write(&self.pool, move |conn| {
            let now = clock.now();
            let Some(user) = users::find_by_email(conn, &email)? else {
                return Err(OperatorError::NoSuchUser(email.clone()));
            };
            if !users::mark_verified(conn, &email, now)? {
                return Ok(false);
            }
            confirmations::end_for_address(conn, &email, now)?;
            let kind = EventKind::EmailVerified;
            events::record(conn, Some(&user.id), None, kind, &who, now)?;
            tracing::info!(event = kind.as_str(), user_id = %user.id, by = "operator");
            Ok(true)
        })
        .await
    }

    /// Disables the account with this e-mail: it cannot sign in, and every one
    /// of its sessions ends at once (database and revocation list, one
    /// transaction). Returns how many sessions ended.
    pub async fn disable_user(
        &self,
        email: &Email,
        who: &Requester,
    ) -> Result<usize, OperatorError> {
        self.set_disabled(email, true, who).await
    }

    /// Lets a disabled account sign in again.
    pub async fn enable_user(&self, email: &Email, who: &Requester) -> Result<(), OperatorError> {
        self.set_disabled(email, false, who).await.map(|_| ())
    }

    async fn set_disabled(
        &self,
        email: &Email,
        disable: bool,
        who: &Requester,
    ) -> Result<usize, OperatorError> {
        let now = self.clock.now();
        let (email_owned, who_owned) = (email.clone(), who.clone());
        let ended = db::write(&self.pool, move |conn| {
            let Some(user) = users::find_by_email(conn, &email_owned)? else {
                return Err(OperatorError::NoSuchUser(email_owned.clone()));
            };
            users::set_disabled(conn, &user.id, disable.then_some(now))?;
            let (kind, ended) = if disable {
                let ended = sessions::revoke_all_except(
                    conn,
                    &user.id,
                    None,
                    now,
                    EventKind::AccountDisabled.as_str(),
                )?;
                (EventKind::AccountDisabled, ended)
            } else {
                (EventKind::AccountEnabled, Vec::new())
            };
            events::record(conn, Some(&user.id), None, kind, &who_owned, now)?;
            Ok((user.id, ended))
        })
        .await;
        // Every instance's revocation list hears of these at its next poll
        // (or at once, through PostgreSQL's notifications).
        let (user_id, ended) = ended?;
        let kind = if disable {
            EventKind::AccountDisabled
        } else {
            EventKind::AccountEnabled
        };
        tracing::info!(event = kind.as_str(), user_id = %user_id, ended = ended.len());
        Ok(ended.len())
    }

    /// Deletes sessions that ended (revoked, past their absolute end, or idle)
    /// longer ago than any rule looks back, throttle rows past their window,
    /// reset and confirmation links that can no longer be used, and
    /// registrations long left unconfirmed.
    pub async fn prune(&self) -> Result<Pruned, ServiceError> {
        let now = self.clock.now();
        let ended_before = now - delta(self.policy.access_token_ttl) - REVOKED_KEPT;
        let idle_before = now - delta(self.policy.idle_timeout) - REVOKED_KEPT;
        db::run(&self.pool, move |conn| {
            let (challenges, trusted_devices) = two_factor::prune(conn, now)?;
            Ok(Pruned {
                sessions: sessions::delete_ended(conn, ended_before, idle_before)?
                    + sessions::delete_kept_revocations(conn, ended_before)?,
                throttle_rows: throttle::delete_stale(conn, now - PAIR_WINDOW, now - DAY_WINDOW)?,
                reset_requests: resets::delete_dead(conn, now)?,
                confirmations: confirmations::delete_dead(conn, now)?,
                pending_registrations: pending::delete_older_than(conn, now - PENDING_KEPT)?,
                challenges,
                trusted_devices,
                passkey_ceremonies: passkeys::prune(conn, now)?,
            })
        })
        .await
    }
}
