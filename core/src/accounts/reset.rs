//! Forgotten passwords: single-use links that expire, superseded by newer
//! ones and by any password change, throttled per account and per IP, and
//! answered alike whether or not the address has an account.

use std::time::Duration;

use super::events::{self, EventKind};
use super::service::{Accounts, Requester, ServiceError, Sessions, delta};
use super::throttle;
use super::two_factor::Entry;
use crate::auth::token::{MAX_TOKEN_LEN, hash_token, new_token};
use crate::db::{self, resets, sessions, two_factor, users};
use crate::ids::Email;
use crate::secret::Password;

/// A link to send: to whom, and the token for `/password/reset/{token}`.
#[derive(Debug, Clone)]
pub struct ResetLink {
    pub email: Email,
    pub name: String,
    pub token: String,
    pub expires_in: Duration,
}

impl ResetLink {
    /// The link to mail or print: the reset page for this token on the site
    /// at `origin` (`scheme://host[:port]`).
    pub fn url(&self, origin: &str) -> String {
        format!("{origin}/password/reset/{}", self.token)
    }
}

/// Who to tell that their password changed.
#[derive(Debug, Clone)]
pub struct PasswordChanged {
    pub email: Email,
    pub name: String,
}

/// Why a reset did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// Used, expired, superseded or unknown: one answer for all.
    #[error("the link has expired or was already used")]
    InvalidLink,
    /// The new password breaks the rules (the message says which).
    #[error("the new password is not accepted: {0}")]
    Weak(String),
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

impl From<db::DbError> for ResetError {
    fn from(e: db::DbError) -> Self {
        Self::Failed(e.into())
    }
}

impl From<diesel::result::Error> for ResetError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Failed(e.into())
    }
}

impl From<crate::auth::password::HashError> for ResetError {
    fn from(e: crate::auth::password::HashError) -> Self {
        Self::Failed(e.into())
    }
}

impl Accounts {
    /// Asks for a reset link for `email`. The request is admitted against the
    /// per-IP and per-address limits first (counted per normalised address
    /// whether or not it has an account, so the work does not tell them
    /// apart); a throttled request writes nothing. The link comes back only
    /// for an enabled account. The caller answers alike in every case and
    /// mails the link off the request path.
    pub async fn request_password_reset(
        &self,
        email: &Email,
        who: &Requester,
    ) -> Result<Option<ResetLink>, ServiceError> {
        let email = email.clone();
        let policy = self.resets;
        let who = who.clone();
        let token = new_token();
        let token_hash = hash_token(&token);
        let clock = self.clock.clone();
        let admitted = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(throttle::admitting(conn, |conn| {
                let now = clock.now();
                let limits = (policy.max_per_ip_per_hour, policy.max_per_account_per_hour);
                throttle::admit_reset_request(conn, limits, email.as_str(), &who.ip, now)?;
                let user = users::find_enabled_recipient(conn, &email)?;
                // The same statements, writing the same kinds of values, run
                // for every address admitted: the row of an unknown address
                // holds the hash of a token nobody gets and no account (never
                // a link), and a new request supersedes the live rows of the
                // address whoever it belongs to. Timing does not tell them
                // apart.
                let user_id = user.as_ref().map(|(id, ..)| id);
                resets::supersede(conn, &email, now)?;
                resets::insert(
                    conn,
                    &resets::NewReset {
                        id: &uuid::Uuid::new_v4().to_string(),
                        email: Some(&email),
                        user_id,
                        token_hash: Some(&token_hash),
                        ip: &who.ip,
                        created_at: now,
                        expires_at: now + delta(policy.ttl),
                    },
                )?;
                let kind = EventKind::PasswordResetRequested;
                events::record(conn, user_id, None, kind, &who, now)?;
                Ok(user.map(|(_, email, name)| ResetLink {
                    email,
                    name,
                    token,
                    expires_in: policy.ttl,
                }))
            })?)
        })
        .await?;
        match &admitted {
            Ok(Some(Some(_))) => {
                tracing::info!(
                    event = EventKind::PasswordResetRequested.as_str(),
                    "reset link made"
                )
            }
            Ok(_) => tracing::info!(
                event = "password_reset_not_sent",
                "no reset link made (unknown or disabled address)"
            ),
            Err(retry_after) => tracing::info!(
                event = EventKind::PasswordResetThrottled.as_str(),
                retry_after = retry_after.as_secs(),
                "no reset link made (too many requests)"
            ),
        }
        Ok(admitted.ok().flatten().flatten())
    }

    /// A reset link for support staff (`gatehouse user reset-link`): the same
    /// tokens and expiry as a mailed one, superseding older links, and said so
    /// in the audit trail. Not throttled; a disabled account gets none.
    pub async fn operator_reset_link(
        &self,
        email: &Email,
        who: &Requester,
    ) -> Result<ResetLink, super::OperatorError> {
        use super::OperatorError;
        let email = email.clone();
        let (ttl, who) = (self.resets.ttl, who.clone());
        let token = new_token();
        let token_hash = hash_token(&token);
        let clock = self.clock.clone();
        db::write(&self.pool, move |conn| {
            let now = clock.now();
            let Some(user) =
                users::find_by_email(conn, &email)?.filter(|u| u.disabled_at.is_none())
            else {
                return Err(OperatorError::NoSuchUser(email.clone()));
            };
            resets::invalidate_all(conn, &user.id, now)?;
            resets::insert(
                conn,
                &resets::NewReset {
                    id: &uuid::Uuid::new_v4().to_string(),
                    email: Some(&user.email),
                    user_id: Some(&user.id),
                    token_hash: Some(&token_hash),
                    ip: &who.ip,
                    created_at: now,
                    expires_at: now + delta(ttl),
                },
            )?;
            events::record(
                conn,
                Some(&user.id),
                None,
                EventKind::ResetLinkByOperator,
                &who,
                now,
            )?;
            Ok(ResetLink {
                email: user.email,
                name: user.name,
                token,
                expires_in: ttl,
            })
        })
        .await
    }

    /// How long a reset link works.
    pub fn reset_link_lifetime(&self) -> Duration {
        self.resets.ttl
    }

    /// The e-mail of the account `token` resets, while the link is live.
    /// The new-password form names it, so that someone lured into another
    /// person's link (to be signed in to the attacker's account afterwards)
    /// can see that it is not theirs.
    pub async fn reset_link_account(&self, token: &str) -> Result<Option<Email>, ServiceError> {
        if !crate::auth::token::is_token_shaped(token) {
            return Ok(None);
        }
        let hash = hash_token(token);
        let clock = self.clock.clone();
        db::run(&self.pool, move |conn| {
            let Some(user_id) = resets::live_user(conn, &hash, clock.now())? else {
                return Ok(None);
            };
            let user = users::find(conn, &user_id)?.filter(|u| u.disabled_at.is_none());
            Ok(user.map(|user| user.email))
        })
        .await
    }

    /// Sets a new password with a reset link: the link is used up, every
    /// other link and every session of the account end (on every instance),
    /// and this client is signed in with a new session (or, with two-factor
    /// on, sent to its second factor) — one transaction.
    pub async fn reset_password(
        &self,
        sessions: &Sessions,
        token: String,
        new_password: Password,
        who: &Requester,
    ) -> Result<(Entry, PasswordChanged), ResetError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ResetError::InvalidLink);
        }
        let hash = hash_token(&token);
        let user = {
            let hash = hash.clone();
            let clock = self.clock.clone();
            db::run(&self.pool, move |conn| {
                let Some(user_id) = resets::live_user(conn, &hash, clock.now())? else {
                    return Ok::<_, ResetError>(None);
                };
                Ok(users::find(conn, &user_id)?.filter(|u| u.disabled_at.is_none()))
            })
            .await?
            .ok_or(ResetError::InvalidLink)?
        };
        let problem = self
            .hasher
            .new_password_problem(new_password.clone(), user.email.clone(), user.name.clone())
            .await?;
        if let Some(message) = problem {
            return Err(ResetError::Weak(message));
        }
        let new_hash = self.hasher.hash(new_password).await?;

        let now = self.clock.now();
        let (policy, who_owned, user_id) = (self.policy.clone(), who.clone(), user.id.clone());
        let (ended, opened) = db::write(&self.pool, move |conn| {
            // A link used meanwhile, or an account disabled meanwhile,
            // changes nothing. The account's row first, as every
            // transaction that changes a password takes it, so none of
            // them waits for another in a circle.
            if !users::replace_password(conn, &user_id, None, &new_hash, now)?
                || !resets::use_link(conn, &hash, now)?
            {
                return Err(ResetError::InvalidLink);
            }
            resets::invalidate_all(conn, &user_id, now)?;
            let ended = sessions::revoke_all_except(
                conn,
                &user_id,
                None,
                now,
                EventKind::PasswordReset.as_str(),
            )?;
            // A reset ends the trusted devices too; with two-factor on, the
            // new password leads to the second factor, not to a session.
            two_factor::revoke_all_devices(conn, &user_id)?;
            let opened =
                super::two_factor::open(conn, &policy, &user_id, &who_owned, false, None, now)?;
            events::record(
                conn,
                Some(&user_id),
                opened.session_id(),
                EventKind::PasswordReset,
                &who_owned,
                now,
            )?;
            Ok((ended, opened))
        })
        .await?;
        sessions.revoked.insert(ended.iter().cloned(), now);
        tracing::info!(event = EventKind::PasswordReset.as_str(), user_id = %user.id, ended = ended.len());
        let notice = PasswordChanged {
            email: user.email,
            name: user.name.clone(),
        };
        Ok((
            opened.into_entry(sessions, user.id, user.name, now)?,
            notice,
        ))
    }
}
