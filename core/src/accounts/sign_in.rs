//! Sign-in: admit the attempt (throttling) → verify → record a failure, or
//! re-hash at a raised cost and create the session, having checked again, in
//! that transaction, that the password verified is still the account's.

use super::events::{self, EventKind};
use super::profile::Profile;
use super::service::{Accounts, Requester, ServiceError, SessionUser, Sessions, SignInError};
use super::throttle;
use super::two_factor::{self, Entry};
use crate::db::models::User;
use crate::db::{self, sessions, users};
use crate::ids::{Email, UserId};
use crate::secret::Password;

/// The one message for every failed sign-in, so no door tells whether an
/// e-mail has an account.
pub const INVALID_CREDENTIALS: &str = "Invalid email or password.";

/// What an empty sign-in form is told. Not a failed sign-in: nothing is
/// counted, throttled or audited.
pub const MISSING_CREDENTIALS: &str = "Enter your e-mail and password.";

/// What a person signs in with, as typed.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub email: Email,
    pub password: Password,
    /// Keep the session beyond the browser session ("remember me").
    pub remember: bool,
    /// The trusted-device token this browser holds, if any: with it, an
    /// account with two-factor on signs in without a second factor.
    pub trusted_device: Option<String>,
}

impl Accounts {
    /// Signs a person in; returns the new session (or, for an account with
    /// two-factor on, the challenge its second factor finishes) and the
    /// account as stored (for doors that show it). A locked (e-mail, IP) pair or IP is refused before
    /// any hashing, right password or not, and an attempt beyond what the
    /// pair's limit leaves waits for those being checked; an unknown e-mail costs the same
    /// bcrypt work and database writes as a wrong password. `replacing` is the
    /// session this client had, which the new one ends.
    pub async fn sign_in(
        &self,
        sessions: &Sessions,
        credentials: Credentials,
        replacing: Option<&SessionUser>,
        who: &Requester,
    ) -> Result<(Entry, Profile), SignInError> {
        let email = credentials.email.clone();
        if email.is_empty() || credentials.password.is_empty() {
            return Err(SignInError::MissingCredentials);
        }
        let admitted = self.admit(&email, who).await?;

        let judged = self
            .judge(sessions, credentials, replacing, who, &email, admitted)
            .await;
        if matches!(judged, Err(SignInError::Failed(_))) {
            // Our failure, not a judgement: the attempt leaves the pair's
            // count of attempts being checked.
            self.release_attempt(&email, who).await;
        }
        judged
    }

    /// Checks the password of an admitted attempt (its admission, and the
    /// account found for it) and, when it is right and still the account's,
    /// creates the session.
    async fn judge(
        &self,
        sessions: &Sessions,
        credentials: Credentials,
        replacing: Option<&SessionUser>,
        who: &Requester,
        email: &Email,
        (admission, user): (throttle::SignInAdmission, Option<User>),
    ) -> Result<(Entry, Profile), SignInError> {
        let password = credentials.password;
        let verified = self
            .hasher
            .verify(
                password.clone(),
                user.as_ref().map(|u| u.password_hash.clone()),
            )
            .await?;
        if self
            .unconfirmed(email, user.as_ref(), verified, &password)
            .await?
        {
            // The right password, but nothing signs in to an address nobody
            // has confirmed: a fresh link instead (within its limits). Not a
            // failure; the attempt leaves the pair's count.
            let link = self.fresh_link_for(email).await?;
            self.release_attempt(email, who).await;
            tracing::info!(event = "sign_in_unconfirmed", mailed = link.is_some(), ip = %who.ip);
            return Err(SignInError::EmailUnverified { link });
        }
        let user = match user {
            // A disabled account fails like a wrong password: the page says
            // nothing about which e-mails exist or what state they are in.
            Some(user) if verified && user.disabled_at.is_none() => user,
            // Recorded for unknown e-mails too (without a user), so both
            // failures do the same database work.
            found => {
                let user_id = found.map(|u| u.id);
                return Err(self.sign_in_failed(email, user_id, who).await);
            }
        };

        // A raised BCRYPT_COST upgrades the stored hash at the next sign-in.
        let rehashed = if self.hasher.needs_rehash(&user.password_hash) {
            Some(self.hasher.hash(password).await?)
        } else {
            None
        };

        let now = self.clock.now();
        let opened = {
            let (policy, user_id, who) = (self.policy.clone(), user.id.clone(), who.clone());
            let email = email.clone();
            let verified_version = user.password_version;
            let replaced = replacing.cloned();
            let trusted = credentials.trusted_device;
            db::write(&self.pool, move |conn| {
                // The password was checked outside any transaction; a
                // reset, password change or disable may have committed
                // since. Checked again here, holding the account's row.
                let current = users::still_signs_in_with(
                    conn,
                    &user_id,
                    verified_version,
                    rehashed.as_deref(),
                )?;
                if !current {
                    return Ok(None);
                }
                throttle::record_sign_in_success(conn, admission, email.as_str(), &who.ip)?;
                if let Some(old) = &replaced {
                    sessions::revoke(
                        conn,
                        &old.session_id,
                        &old.user_id,
                        now,
                        EventKind::SignedOut.as_str(),
                    )?;
                }
                let opened = two_factor::open(
                    conn,
                    &policy,
                    &user_id,
                    &who,
                    credentials.remember,
                    trusted.as_deref(),
                    now,
                )?;
                if let Some(sid) = opened.session_id() {
                    events::record(
                        conn,
                        Some(&user_id),
                        Some(sid),
                        EventKind::SignedIn,
                        &who,
                        now,
                    )?;
                }
                Ok::<_, ServiceError>(Some(opened))
            })
            .await?
        };
        let Some(opened) = opened else {
            tracing::info!(
                user_id = %user.id,
                "the password changed or the account was disabled while the sign-in was checked"
            );
            return Err(self.sign_in_failed(email, Some(user.id), who).await);
        };
        self.waiters.judged(email.as_str(), &who.ip);
        if let Some(old) = replacing {
            sessions.revoked.insert([old.session_id.clone()], now);
        }
        match opened.session_id() {
            Some(session_id) => tracing::info!(
                event = EventKind::SignedIn.as_str(),
                user_id = %user.id,
                session_id = %session_id,
                replaced_session = replacing.map(|c| c.session_id.as_str()),
                ip = %who.ip
            ),
            None => tracing::info!(
                event = "second_factor_required",
                user_id = %user.id,
                replaced_session = replacing.map(|c| c.session_id.as_str()),
                ip = %who.ip
            ),
        }
        let account = Profile {
            id: user.id.clone(),
            name: user.name.clone(),
            email: user.email,
        };
        Ok((
            opened.into_entry(sessions, user.id, user.name, now)?,
            account,
        ))
    }

    /// Whether `password` is right for an address nobody has confirmed,
    /// while confirmation is required: an enabled account registered
    /// unconfirmed (`verified`: its password matched), or, with no account,
    /// one of the address's pending registrations.
    async fn unconfirmed(
        &self,
        email: &Email,
        user: Option<&User>,
        verified: bool,
        password: &Password,
    ) -> Result<bool, ServiceError> {
        if self.verify.mode != super::VerifyMode::Required {
            return Ok(false);
        }
        if let Some(user) = user {
            return Ok(verified && user.email_verified_at.is_none() && user.disabled_at.is_none());
        }
        for hash in self.pending_hashes(email).await? {
            if self.hasher.verify(password.clone(), Some(hash)).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Admits the attempt (see [`throttle::admit_sign_in`]), waiting in the
    /// pair's queue while its limit is taken by attempts being checked, and
    /// finds the account when admitted.
    pub(super) async fn admit(
        &self,
        email: &Email,
        who: &Requester,
    ) -> Result<(throttle::SignInAdmission, Option<User>), SignInError> {
        let started = std::time::Instant::now();
        // Behind the attempts of the pair already waiting here, not ahead.
        let mut queued = self.waiters.queue_behind_others(email.as_str(), &who.ip);
        if let Some(turn) = queued.as_mut() {
            turn.wait().await;
        }
        loop {
            let (limits, key, ip) = (self.throttle, email.clone(), who.ip.clone());
            let clock = self.clock.clone();
            let (admitted, user) = db::run(&self.pool, move |conn| {
                let email = key;
                let admitted = throttle::admitting(conn, |conn| {
                    throttle::admit_sign_in(conn, &limits, email.as_str(), &ip, clock.now())
                })?;
                let user = match admitted {
                    Ok(Some(_)) => users::find_by_email(conn, &email)?,
                    _ => None,
                };
                Ok::<_, ServiceError>((admitted, user))
            })
            .await?;
            if !matches!(admitted, Ok(None)) {
                // Out of the queue at once: a wake-up meant for the next
                // attempt must not be spent on this one.
                queued = None;
            }
            let retry_after = match admitted {
                Ok(Some(admission)) => return Ok((admission, user)),
                Ok(None) if started.elapsed() < throttle::MAX_WAIT => {
                    let turn =
                        queued.get_or_insert_with(|| self.waiters.queue(email.as_str(), &who.ip));
                    turn.wait().await;
                    continue;
                }
                Ok(None) => std::time::Duration::from_secs(1),
                Err(retry_after) => retry_after,
            };
            tracing::info!(event = "sign_in_throttled", ip = %who.ip, retry_after = retry_after.as_secs());
            return Err(SignInError::Throttled { retry_after });
        }
    }

    /// Takes an attempt that was never judged out of its pair's count of
    /// attempts being checked (it stays counted against the IP).
    pub(super) async fn release_attempt(&self, email: &Email, who: &Requester) {
        let (email_owned, ip) = (email.clone(), who.ip.clone());
        let released = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(throttle::release_sign_in(conn, email_owned.as_str(), &ip)?)
        })
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "an unjudged sign-in attempt stays counted until its pair is quiet");
        }
        self.waiters.judged(email.as_str(), &who.ip);
    }

    /// Records a failed sign-in in the pair's streak and the audit trail,
    /// and returns the one answer every failure gets.
    pub(super) async fn sign_in_failed(
        &self,
        email: &Email,
        user_id: Option<UserId>,
        who: &Requester,
    ) -> SignInError {
        self.failed_as(email, user_id, who, EventKind::SignInFailed)
            .await
    }

    /// Records a failure of `kind` (a password, or a second-factor code) in
    /// the pair's streak and the audit trail.
    pub(super) async fn failed_as(
        &self,
        email: &Email,
        user_id: Option<UserId>,
        who: &Requester,
        kind: EventKind,
    ) -> SignInError {
        tracing::info!(event = kind.as_str(), user_id = user_id.as_ref().map(UserId::as_str), ip = %who.ip);
        let (limits, email_owned, who_owned) = (self.throttle, email.clone(), who.clone());
        let clock = self.clock.clone();
        let recorded = db::run(&self.pool, move |conn| {
            let now = clock.now();
            Ok::<_, ServiceError>(db::write_transaction(conn, |conn| {
                throttle::record_sign_in_failure(
                    conn,
                    &limits,
                    email_owned.as_str(),
                    &who_owned.ip,
                    now,
                )?;
                let user = user_id.as_ref();
                events::record(conn, user, None, kind, &who_owned, now)
            })?)
        })
        .await;
        self.waiters.judged(email.as_str(), &who.ip);
        match recorded {
            Ok(()) => SignInError::InvalidCredentials,
            Err(e) => SignInError::Failed(e),
        }
    }
}
