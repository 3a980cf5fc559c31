//! Two-factor sign-in: enrolment (a TOTP secret sealed at rest, on after a
//! first valid code), the challenge a right password opens instead of a
//! session, finishing it with a TOTP or recovery code, step-up ("confirm
//! it's you"), trusted devices, and turning it off.
//!
//! A code is used in the transaction that starts what it unlocks, by one
//! conditional statement (`db::two_factor`): a replayed code, an older one,
//! or the loser of two at once changes nothing and unlocks nothing.

use std::time::Duration;

use chrono::NaiveDateTime;

use super::events::{self, EventKind};
use super::profile::Profile;
use super::service::{
    Accounts, Requester, ServiceError, SessionPolicy, SessionUser, Sessions, SignInError, SignedIn,
    delta,
};
use super::sessions::NewTokens;
use super::throttle;
use crate::auth::recovery;
use crate::auth::sealed::SealingKey;
use crate::auth::token::{hash_token, is_token_shaped, new_token};
use crate::auth::totp::{self, TotpSecret};
use crate::db::models::User;
use crate::db::{self, DbConnection, sessions, two_factor, users};
use crate::ids::{ChallengeId, Email, TrustedDeviceId, UserId};
use crate::secret::Password;

/// How long a sign-in waits for its second factor.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a trusted device skips the second factor.
pub const TRUSTED_DEVICE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The account page warns when this many recovery codes or fewer are left.
pub const FEW_CODES_LEFT: i64 = 2;

/// Two-factor settings.
#[derive(Debug, Clone)]
pub struct TwoFactorPolicy {
    /// Seals TOTP secrets at rest; `None`: enrolment is unavailable.
    pub key: Option<SealingKey>,
    /// How recent a proof of sign-in the sensitive changes need.
    pub step_up_max_age: Duration,
    /// The issuer an authenticator app shows beside the account.
    pub issuer: String,
}

impl Default for TwoFactorPolicy {
    fn default() -> Self {
        Self {
            key: None,
            step_up_max_age: Duration::from_secs(5 * 60),
            issuer: "Gatehouse".to_owned(),
        }
    }
}

/// What a door gets once a password (or a link) has proven who someone is:
/// a session, or, for an account with two-factor on, a challenge to finish.
#[derive(Debug)]
pub enum Entry {
    SignedIn(Box<SignedIn>),
    SecondFactor(Challenge),
}

impl Entry {
    /// The session, when one was started.
    pub fn signed_in(self) -> Option<SignedIn> {
        match self {
            Self::SignedIn(signed_in) => Some(*signed_in),
            Self::SecondFactor(_) => None,
        }
    }
}

/// A sign-in waiting for its second factor: the opaque token the browser
/// keeps (in an HttpOnly cookie) for [`CHALLENGE_TTL`]. `Debug` hides it.
#[derive(Clone)]
pub struct Challenge {
    pub token: String,
    pub expires_in: Duration,
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenge")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A browser just trusted: the token its cookie keeps, and for how long.
/// `Debug` hides the token.
#[derive(Clone)]
pub struct DeviceTrust {
    pub token: String,
    pub max_age: Duration,
}

impl std::fmt::Debug for DeviceTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTrust")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// A second factor accepted: the session, the account, and the device
/// trust when one was asked for.
#[derive(Debug)]
pub struct SecondFactorDone {
    pub signed_in: SignedIn,
    pub profile: Profile,
    pub trusted: Option<DeviceTrust>,
}

/// Why a second factor did not finish the sign-in.
#[derive(Debug, thiserror::Error)]
pub enum SecondFactorError {
    /// No live challenge: expired, used, failed too often, or the password
    /// changed since. Sign in again.
    #[error("the sign-in expired")]
    Expired,
    /// A wrong, used or replayed code; the challenge lives on.
    #[error("wrong code")]
    WrongCode,
    #[error("too many attempts")]
    Throttled { retry_after: Duration },
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

/// The enrolment page's data: the secret as text and as the address a QR
/// code carries. `Debug` shows neither.
#[derive(Clone)]
pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_url: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment([redacted])")
    }
}

/// Who a two-factor change concerns, for the notice mailed to them.
#[derive(Debug, Clone)]
pub struct TwoFactorNotice {
    pub email: Email,
    pub name: String,
}

/// Why an enrolment, a regeneration or a disable did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TwoFactorError {
    /// No key to seal secrets with (the operator must set one).
    #[error("two-factor sign-in is not available")]
    Unavailable,
    /// On already (enrolling), or off (disabling, regenerating).
    #[error("two-factor sign-in is not in the state this needs")]
    WrongState,
    /// The session's proof of sign-in is older than the step-up limit:
    /// confirm it's you first.
    #[error("a recent sign-in is needed")]
    StepUpRequired,
    #[error("wrong code")]
    WrongCode,
    #[error("too many attempts")]
    Throttled { retry_after: Duration },
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

/// Why "confirm it's you" did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum StepUpError {
    #[error("wrong password")]
    WrongPassword,
    #[error("wrong code")]
    WrongCode,
    #[error("too many attempts")]
    Throttled { retry_after: Duration },
    /// The session or the account ended meanwhile.
    #[error("the session ended")]
    SessionEnded,
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

/// An account's two-factor state, for the account pages.
#[derive(Debug, Clone)]
pub struct TwoFactorStatus {
    /// Whether enrolment can be offered (a sealing key is set).
    pub available: bool,
    pub enabled: bool,
    pub codes_left: i64,
    pub devices: Vec<TrustedDevice>,
}

/// A trusted browser, as the account page lists it.
#[derive(Debug, Clone)]
pub struct TrustedDevice {
    pub id: TrustedDeviceId,
    pub user_agent: String,
    pub ip: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A typed code once read: which step of the account's TOTP it is, which
/// recovery code (by hash), or neither.
enum Code {
    Totp(i64),
    Recovery(String),
    Wrong,
}

/// What using a code in a transaction found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Used {
    Totp,
    Recovery,
    /// Its step was used before (or at once, by a winner): refused.
    Replayed,
}

/// What a transaction opened for an account a password (or link) proved.
pub(super) enum Opened {
    Session(NewTokens),
    Challenge(String),
}

impl Opened {
    /// The door's answer: `user_id`'s session signed in at `now`, or the
    /// challenge to finish.
    pub(super) fn into_entry(
        self,
        sessions: &Sessions,
        user_id: UserId,
        name: String,
        now: NaiveDateTime,
    ) -> Result<Entry, ServiceError> {
        Ok(match self {
            Self::Session(tokens) => {
                let user = SessionUser {
                    user_id,
                    session_id: tokens.id.clone(),
                    name,
                    auth_time: now.and_utc().timestamp(),
                };
                Entry::SignedIn(Box::new(sessions.issue(user, tokens)?))
            }
            Self::Challenge(token) => Entry::SecondFactor(Challenge {
                token,
                expires_in: CHALLENGE_TTL,
            }),
        })
    }

    /// The session started, if one was.
    pub(super) fn session_id(&self) -> Option<&crate::ids::SessionId> {
        match self {
            Self::Session(tokens) => Some(&tokens.id),
            Self::Challenge(_) => None,
        }
    }
}

/// Inside the transaction that proved who someone is: starts their session,
/// or, when the account has two-factor on and `trusted` is not one of its
/// live trusted devices, a challenge instead (recording the password
/// version the row holds now).
pub(super) fn open(
    conn: &mut DbConnection,
    policy: &SessionPolicy,
    user_id: &UserId,
    who: &Requester,
    remember: bool,
    trusted: Option<&str>,
    now: NaiveDateTime,
) -> diesel::QueryResult<Opened> {
    let user = users::find(conn, user_id)?;
    let challenged = user.as_ref().filter(|u| u.two_factor_enabled_at.is_some());
    if let Some(user) = challenged {
        let trusted = match trusted.filter(|t| is_token_shaped(t)) {
            Some(token) => two_factor::use_device(conn, user_id, &hash_token(token), now)?,
            None => false,
        };
        if !trusted {
            let token = new_token();
            two_factor::insert_challenge(
                conn,
                &two_factor::NewChallenge {
                    id: &ChallengeId::random(),
                    token_hash: &hash_token(&token),
                    user_id,
                    password_version: user.password_version,
                    remember,
                    failures: 0,
                    ip: &who.ip,
                    created_at: now,
                    expires_at: now + delta(CHALLENGE_TTL),
                },
            )?;
            return Ok(Opened::Challenge(token));
        }
    }
    super::sessions::create(conn, policy, user_id, who, remember, now).map(Opened::Session)
}

/// Uses `code` for `user_id` in the caller's transaction.
fn use_code(
    conn: &mut DbConnection,
    user_id: &UserId,
    code: &Code,
    now: NaiveDateTime,
) -> diesel::QueryResult<Option<Used>> {
    Ok(match code {
        Code::Totp(step) => Some(if two_factor::accept_step(conn, user_id, *step)? {
            Used::Totp
        } else {
            Used::Replayed
        }),
        Code::Recovery(hash) => Some(if two_factor::burn_code(conn, user_id, hash, now)? {
            Used::Recovery
        } else {
            Used::Replayed
        }),
        Code::Wrong => None,
    })
}

/// A refused code's audit kind.
fn failure_kind(used: Option<Used>) -> EventKind {
    match used {
        Some(Used::Replayed) => EventKind::CodeReplayRefused,
        _ => EventKind::SecondFactorFailed,
    }
}

impl Accounts {
    /// The same service with two-factor settings (the default has no
    /// sealing key: enrolment unavailable).
    pub fn with_two_factor(mut self, policy: TwoFactorPolicy) -> Self {
        self.two_factor = policy;
        self
    }

    /// Whether `user`'s proof of sign-in is older than the step-up limit
    /// (compared without the access token's leeway).
    pub fn needs_step_up(&self, user: &SessionUser) -> bool {
        let max = i64::try_from(self.two_factor.step_up_max_age.as_secs()).unwrap_or(i64::MAX);
        self.clock.timestamp().saturating_sub(user.auth_time) > max
    }

    /// Whether any account has two-factor on (start-up refuses to run
    /// without the sealing key then).
    pub async fn any_two_factor(&self) -> Result<bool, ServiceError> {
        db::run(&self.pool, |conn| {
            Ok::<_, ServiceError>(users::count_two_factor(conn)? > 0)
        })
        .await
    }

    /// The account's two-factor state.
    pub async fn two_factor_status(
        &self,
        user_id: &UserId,
    ) -> Result<TwoFactorStatus, ServiceError> {
        let (user_id, clock) = (user_id.clone(), self.clock.clone());
        let available = self.two_factor.key.is_some();
        db::run(&self.pool, move |conn| {
            let enabled =
                users::find(conn, &user_id)?.is_some_and(|u| u.two_factor_enabled_at.is_some());
            let codes_left = two_factor::codes_left(conn, &user_id)?;
            let devices = two_factor::devices(conn, &user_id, clock.now())?
                .into_iter()
                .map(|d| TrustedDevice {
                    id: d.id,
                    user_agent: d.user_agent,
                    ip: d.ip,
                    created_at: d.created_at,
                    last_used_at: d.last_used_at,
                    expires_at: d.expires_at,
                })
                .collect();
            Ok(TwoFactorStatus {
                available,
                enabled,
                codes_left,
                devices,
            })
        })
        .await
    }

    /// Starts (or shows again) an enrolment: a new secret sealed in the
    /// account's row, or the one an unfinished enrolment left, so two tabs
    /// show the same.
    pub async fn begin_two_factor(
        &self,
        user_id: &UserId,
        email: &Email,
    ) -> Result<Enrolment, TwoFactorError> {
        let key = self
            .two_factor
            .key
            .clone()
            .ok_or(TwoFactorError::Unavailable)?;
        let user = self
            .account(user_id)
            .await?
            .ok_or(TwoFactorError::WrongState)?;
        if user.two_factor_enabled_at.is_some() {
            return Err(TwoFactorError::WrongState);
        }
        let kept = user
            .totp_secret
            .as_deref()
            .and_then(|sealed| key.open(user_id.as_str(), sealed).ok());
        let secret = match kept {
            Some(bytes) => TotpSecret::from_bytes(bytes),
            None => {
                let secret = TotpSecret::generate();
                let sealed = key
                    .seal(user_id.as_str(), secret.expose())
                    .map_err(|_| ServiceError::Inconsistent("a secret could not be sealed"))?;
                let id = user_id.clone();
                let stored = db::run(&self.pool, move |conn| {
                    Ok::<_, ServiceError>(two_factor::set_enrolling_secret(conn, &id, &sealed)?)
                })
                .await?;
                if !stored {
                    return Err(TwoFactorError::WrongState);
                }
                secret
            }
        };
        Ok(Enrolment {
            secret_base32: secret.base32(),
            otpauth_url: secret.otpauth_url(&self.two_factor.issuer, email.as_str()),
        })
    }

    /// Turns two-factor on with a first valid code of the enrolling secret
    /// (so no one locks themselves out with a secret their app never read);
    /// returns the 10 recovery codes to show once.
    pub async fn enable_two_factor(
        &self,
        user: &SessionUser,
        code: &str,
        who: &Requester,
    ) -> Result<(Vec<String>, TwoFactorNotice), TwoFactorError> {
        if self.needs_step_up(user) {
            return Err(TwoFactorError::StepUpRequired);
        }
        let key = self
            .two_factor
            .key
            .clone()
            .ok_or(TwoFactorError::Unavailable)?;
        let account = self
            .account(&user.user_id)
            .await?
            .ok_or(TwoFactorError::WrongState)?;
        if account.two_factor_enabled_at.is_some() {
            return Err(TwoFactorError::WrongState);
        }
        let sealed = account
            .totp_secret
            .clone()
            .ok_or(TwoFactorError::WrongState)?;
        let secret = key
            .open(user.user_id.as_str(), &sealed)
            .map(TotpSecret::from_bytes)
            .map_err(|_| TwoFactorError::WrongState)?;
        let step = secret
            .matching_step(code.trim(), self.clock.timestamp())
            .ok_or(TwoFactorError::WrongCode)?;
        let codes = recovery::generate_set();
        let hashes: Vec<String> = codes.iter().filter_map(|c| recovery::hash(c)).collect();
        let (user_id, who_owned, clock) = (user.user_id.clone(), who.clone(), self.clock.clone());
        let session_id = user.session_id.clone();
        db::write(&self.pool, move |conn| {
            let now = clock.now();
            if !two_factor::enable(conn, &user_id, &sealed, step, now)? {
                return Err(TwoFactorError::WrongState);
            }
            two_factor::replace_codes(conn, &user_id, &hashes, now)?;
            let kind = EventKind::TwoFactorEnabled;
            events::record(
                conn,
                Some(&user_id),
                Some(&session_id),
                kind,
                &who_owned,
                now,
            )?;
            Ok(())
        })
        .await?;
        tracing::info!(event = EventKind::TwoFactorEnabled.as_str(), user_id = %user.user_id);
        Ok((codes, notice(account)))
    }

    /// A new set of recovery codes; the old set is void.
    pub async fn regenerate_recovery_codes(
        &self,
        user: &SessionUser,
        who: &Requester,
    ) -> Result<(Vec<String>, TwoFactorNotice), TwoFactorError> {
        if self.needs_step_up(user) {
            return Err(TwoFactorError::StepUpRequired);
        }
        let codes = recovery::generate_set();
        let hashes: Vec<String> = codes.iter().filter_map(|c| recovery::hash(c)).collect();
        let (user_id, who_owned, clock) = (user.user_id.clone(), who.clone(), self.clock.clone());
        let session_id = user.session_id.clone();
        let account = db::write(&self.pool, move |conn| {
            let now = clock.now();
            users::lock(conn, &user_id)?;
            let account = users::find(conn, &user_id)?
                .filter(|u| u.two_factor_enabled_at.is_some())
                .ok_or(TwoFactorError::WrongState)?;
            two_factor::replace_codes(conn, &user_id, &hashes, now)?;
            let kind = EventKind::RecoveryCodesRegenerated;
            events::record(
                conn,
                Some(&user_id),
                Some(&session_id),
                kind,
                &who_owned,
                now,
            )?;
            Ok::<_, TwoFactorError>(account)
        })
        .await?;
        tracing::info!(event = EventKind::RecoveryCodesRegenerated.as_str(), user_id = %user.user_id);
        Ok((codes, notice(account)))
    }

    /// Turns two-factor off with a current code (TOTP or recovery): the
    /// secret, the codes and every trusted device go.
    pub async fn disable_two_factor(
        &self,
        user: &SessionUser,
        code: &str,
        who: &Requester,
    ) -> Result<TwoFactorNotice, TwoFactorError> {
        if self.needs_step_up(user) {
            return Err(TwoFactorError::StepUpRequired);
        }
        let account = self.account(&user.user_id).await?;
        let Some(account) = account.filter(|u| u.two_factor_enabled_at.is_some()) else {
            return Err(TwoFactorError::WrongState);
        };
        let admitted = self.admit_code(&account, who).await.map_err(|e| match e {
            SignInError::Throttled { retry_after } => TwoFactorError::Throttled { retry_after },
            SignInError::Failed(e) => TwoFactorError::Failed(e),
            _ => TwoFactorError::Failed(ServiceError::Inconsistent("an admission judged")),
        })?;
        let read = match self.read_code(&account, code) {
            Ok(read) => read,
            Err(e) => {
                self.release_attempt(&account.email, who).await;
                return Err(e.into());
            }
        };
        let (user_id, who_owned, clock) = (user.user_id.clone(), who.clone(), self.clock.clone());
        let (email, session_id) = (account.email.clone(), user.session_id.clone());
        let used = db::write(&self.pool, move |conn| {
            let now = clock.now();
            let used = use_code(conn, &user_id, &read, now)?;
            if !matches!(used, Some(Used::Totp | Used::Recovery)) {
                return Ok::<_, ServiceError>(used);
            }
            admitted.succeeded(conn, &email, &who_owned.ip, &user_id)?;
            two_factor::disable(conn, &user_id, now)?;
            let kind = EventKind::TwoFactorDisabled;
            events::record(
                conn,
                Some(&user_id),
                Some(&session_id),
                kind,
                &who_owned,
                now,
            )?;
            Ok(used)
        })
        .await?;
        if !matches!(used, Some(Used::Totp | Used::Recovery)) {
            self.code_failed(&account, None, who, failure_kind(used))
                .await?;
            return Err(TwoFactorError::WrongCode);
        }
        self.waiters.judged(account.email.as_str(), &who.ip);
        tracing::info!(event = EventKind::TwoFactorDisabled.as_str(), user_id = %user.user_id);
        Ok(notice(account))
    }

    /// Ends one of `user`'s trusted devices; whether it was theirs.
    pub async fn revoke_trusted_device(
        &self,
        user: &SessionUser,
        device_id: &TrustedDeviceId,
        who: &Requester,
    ) -> Result<bool, ServiceError> {
        let (user_id, who, clock) = (user.user_id.clone(), who.clone(), self.clock.clone());
        let device_id = device_id.clone();
        db::write(&self.pool, move |conn| {
            let revoked = two_factor::revoke_device(conn, &user_id, &device_id)?;
            if revoked {
                let kind = EventKind::TrustedDeviceRevoked;
                events::record(conn, Some(&user_id), None, kind, &who, clock.now())?;
            }
            Ok(revoked)
        })
        .await
    }

    /// Finishes a sign-in waiting for its second factor (the challenge
    /// `token`) with a TOTP or recovery code. Throttled as a sign-in to the
    /// account (pair, IP, and codes per account); a wrong code counts
    /// against the challenge too, which the fifth ends. The session starts
    /// in the transaction that uses the code and the challenge, after the
    /// re-check every door makes (the password unchanged, the account
    /// enabled). A recovery code ends the account's trusted devices.
    pub async fn finish_sign_in(
        &self,
        sessions: &Sessions,
        token: &str,
        code: &str,
        trust_device: bool,
        replacing: Option<&SessionUser>,
        who: &Requester,
    ) -> Result<SecondFactorDone, SecondFactorError> {
        let (challenge, account) = self
            .challenge(token)
            .await?
            .ok_or(SecondFactorError::Expired)?;
        let admitted = self.admit_code(&account, who).await.map_err(|e| match e {
            SignInError::Throttled { retry_after } => SecondFactorError::Throttled { retry_after },
            SignInError::Failed(e) => SecondFactorError::Failed(e),
            _ => SecondFactorError::Failed(ServiceError::Inconsistent("an admission judged")),
        })?;
        let read = match self.read_code(&account, code) {
            Ok(read) => read,
            Err(e) => {
                self.release_attempt(&account.email, who).await;
                return Err(SecondFactorError::Failed(e));
            }
        };
        // The try counts against the challenge before it is judged, so
        // codes sent together get no more than its tries between them.
        let counted = {
            let (id, clock) = (challenge.id.clone(), self.clock.clone());
            db::write(&self.pool, move |conn| {
                Ok::<_, ServiceError>(two_factor::count_try(conn, &id, clock.now())?)
            })
            .await
        };
        if !matches!(counted, Ok(true)) {
            self.release_attempt(&account.email, who).await;
            return Err(match counted {
                Err(e) => SecondFactorError::Failed(e),
                _ => SecondFactorError::Expired,
            });
        }
        let now = self.clock.now();
        let (policy, who_owned) = (self.policy.clone(), who.clone());
        let (email, replaced) = (account.email.clone(), replacing.cloned());
        let for_tx = challenge.clone();
        let outcome = db::write(&self.pool, move |conn| {
            let challenge = for_tx;
            let user_id = challenge.user_id.clone();
            let used = use_code(conn, &user_id, &read, now)?;
            let Some(used @ (Used::Totp | Used::Recovery)) = used else {
                // Nothing written: commits as nothing.
                return Ok(Err(used));
            };
            if !two_factor::take_challenge(conn, &challenge.id, now)?
                || !users::still_signs_in_with(conn, &user_id, challenge.password_version, None)?
            {
                // Rolls the code's use back.
                return Err(SecondFactorError::Expired);
            }
            admitted.succeeded(conn, &email, &who_owned.ip, &user_id)?;
            if let Some(old) = &replaced {
                let reason = EventKind::SignedOut.as_str();
                sessions::revoke(conn, &old.session_id, &old.user_id, now, reason)?;
            }
            if used == Used::Recovery {
                two_factor::revoke_all_devices(conn, &user_id)?;
                events::record(
                    conn,
                    Some(&user_id),
                    None,
                    EventKind::RecoveryCodeUsed,
                    &who_owned,
                    now,
                )?;
            }
            let tokens = super::sessions::create(
                conn,
                &policy,
                &user_id,
                &who_owned,
                challenge.remember,
                now,
            )?;
            let sid = Some(&tokens.id);
            events::record(
                conn,
                Some(&user_id),
                sid,
                EventKind::SignedIn,
                &who_owned,
                now,
            )?;
            // A recovery code ends the trusted devices and trusts none: it
            // may be a stolen one.
            let trusted = if trust_device && used == Used::Totp {
                let token = new_token();
                two_factor::insert_device(
                    conn,
                    &two_factor::NewDevice {
                        id: &TrustedDeviceId::random(),
                        token_hash: &hash_token(&token),
                        user_id: &user_id,
                        user_agent: &who_owned.user_agent,
                        ip: &who_owned.ip,
                        created_at: now,
                        last_used_at: now,
                        expires_at: now + delta(TRUSTED_DEVICE_TTL),
                    },
                )?;
                events::record(
                    conn,
                    Some(&user_id),
                    sid,
                    EventKind::TrustedDeviceAdded,
                    &who_owned,
                    now,
                )?;
                Some(DeviceTrust {
                    token,
                    max_age: TRUSTED_DEVICE_TTL,
                })
            } else {
                None
            };
            Ok(Ok((tokens, trusted)))
        })
        .await;
        let (tokens, trusted) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(used)) => {
                let ended = self
                    .code_failed(&account, Some(&challenge.id), who, failure_kind(used))
                    .await?;
                return Err(if ended {
                    SecondFactorError::Expired
                } else {
                    SecondFactorError::WrongCode
                });
            }
            Err(e) => {
                self.release_attempt(&account.email, who).await;
                return Err(e);
            }
        };
        self.waiters.judged(account.email.as_str(), &who.ip);
        if let Some(old) = replacing {
            sessions.revoked.insert([old.session_id.clone()], now);
        }
        tracing::info!(
            event = EventKind::SignedIn.as_str(),
            user_id = %account.id,
            session_id = %tokens.id,
            second_factor = true,
            trusted_device = trusted.is_some(),
            ip = %who.ip
        );
        let user = SessionUser {
            user_id: account.id.clone(),
            session_id: tokens.id.clone(),
            name: account.name.clone(),
            auth_time: now.and_utc().timestamp(),
        };
        Ok(SecondFactorDone {
            signed_in: sessions.issue(user, tokens)?,
            profile: Profile {
                id: account.id,
                name: account.name,
                email: account.email,
            },
            trusted,
        })
    }

    /// Whether `token` is a live challenge (the second-factor page shows its
    /// form only then).
    pub async fn challenge_is_live(&self, token: &str) -> Result<bool, ServiceError> {
        Ok(self.challenge(token).await?.is_some())
    }

    /// "Confirm it's you": the password, and a code when two-factor is on,
    /// renew the session's proof of sign-in (`auth_time`) and give it a new
    /// access token (its refresh token stays). Throttled as a sign-in.
    pub async fn step_up(
        &self,
        sessions: &Sessions,
        user: &SessionUser,
        password: Password,
        code: &str,
        who: &Requester,
    ) -> Result<SignedIn, StepUpError> {
        let account = self
            .account(&user.user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(StepUpError::SessionEnded)?;
        let email = account.email.clone();
        let (admission, _) = self.admit(&email, who).await.map_err(|e| match e {
            SignInError::Throttled { retry_after } => StepUpError::Throttled { retry_after },
            SignInError::Failed(e) => StepUpError::Failed(e),
            _ => StepUpError::Failed(ServiceError::Inconsistent("an admission judged")),
        })?;
        let verified = match self
            .hasher
            .verify(password, Some(account.password_hash.clone()))
            .await
        {
            Ok(verified) => verified,
            Err(e) => {
                self.release_attempt(&email, who).await;
                return Err(StepUpError::Failed(e.into()));
            }
        };
        if !verified {
            return Err(
                match self
                    .sign_in_failed(&email, Some(account.id.clone()), who)
                    .await
                {
                    SignInError::Failed(e) => StepUpError::Failed(e),
                    _ => StepUpError::WrongPassword,
                },
            );
        }
        let two_factor = account.two_factor_enabled_at.is_some();
        // With two-factor on, the code also counts against the account's
        // hourly count of codes, as at sign-in: a session and the password
        // do not buy more guesses.
        let code_admission = if two_factor {
            match self.admit_account_code(&account).await {
                Ok(Ok(admission)) => Some(admission),
                refused => {
                    self.release_attempt(&email, who).await;
                    return Err(match refused {
                        Err(e) => StepUpError::Failed(e),
                        Ok(Err(retry_after)) => StepUpError::Throttled { retry_after },
                        Ok(Ok(_)) => StepUpError::Failed(ServiceError::Inconsistent("admitted")),
                    });
                }
            }
        } else {
            None
        };
        let read = if two_factor {
            match self.read_code(&account, code) {
                Ok(read) => Some(read),
                Err(e) => {
                    self.release_attempt(&email, who).await;
                    return Err(StepUpError::Failed(e));
                }
            }
        } else {
            None
        };
        let now = self.clock.now();
        let (who_owned, user_owned) = (who.clone(), user.clone());
        let version = account.password_version;
        let email_owned = email.clone();
        let outcome = db::write(&self.pool, move |conn| {
            let user = user_owned;
            let used = match &read {
                Some(read) => use_code(conn, &user.user_id, read, now)?,
                None => Some(Used::Totp),
            };
            if !matches!(used, Some(Used::Totp | Used::Recovery)) {
                return Ok(Err(used));
            }
            if !users::still_signs_in_with(conn, &user.user_id, version, None)?
                || !sessions::set_authenticated(conn, &user.session_id, &user.user_id, now)?
            {
                return Err(StepUpError::SessionEnded);
            }
            throttle::record_sign_in_success(conn, admission, email_owned.as_str(), &who_owned.ip)?;
            if let Some(code) = code_admission {
                throttle::record_code_success(conn, code, user.user_id.as_str())?;
            }
            if used == Some(Used::Recovery) {
                two_factor::revoke_all_devices(conn, &user.user_id)?;
                events::record(
                    conn,
                    Some(&user.user_id),
                    None,
                    EventKind::RecoveryCodeUsed,
                    &who_owned,
                    now,
                )?;
            }
            let sid = Some(&user.session_id);
            events::record(
                conn,
                Some(&user.user_id),
                sid,
                EventKind::SteppedUp,
                &who_owned,
                now,
            )?;
            Ok(Ok(()))
        })
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(used)) => {
                // The password was right: the pair's streak counts the code.
                let kind = failure_kind(used);
                return Err(
                    match self
                        .failed_as(&email, Some(account.id.clone()), who, kind)
                        .await
                    {
                        SignInError::Failed(e) => StepUpError::Failed(e),
                        _ => StepUpError::WrongCode,
                    },
                );
            }
            Err(e) => {
                self.release_attempt(&email, who).await;
                return Err(e);
            }
        }
        self.waiters.judged(email.as_str(), &who.ip);
        tracing::info!(event = EventKind::SteppedUp.as_str(), user_id = %user.user_id, session_id = %user.session_id);
        let renewed = SessionUser {
            auth_time: now.and_utc().timestamp(),
            ..user.clone()
        };
        let tokens = NewTokens {
            id: user.session_id.clone(),
            refresh_token: None,
            remember: false,
        };
        Ok(sessions.issue(renewed, tokens)?)
    }

    /// Whether the account has two-factor on (the step-up form asks for a
    /// code then).
    pub async fn has_two_factor(&self, user_id: &UserId) -> Result<bool, ServiceError> {
        Ok(self
            .account(user_id)
            .await?
            .is_some_and(|u| u.two_factor_enabled_at.is_some()))
    }

    /// `gatehouse user two-factor-reset EMAIL`: turns two-factor off for a
    /// person who lost their device and their codes (support vouches for
    /// them), audited. `None` when it was off.
    pub async fn reset_two_factor(
        &self,
        email: &Email,
        who: &Requester,
    ) -> Result<Option<TwoFactorNotice>, super::OperatorError> {
        let (email, who, clock) = (email.clone(), who.clone(), self.clock.clone());
        db::write(&self.pool, move |conn| {
            let now = clock.now();
            let Some(user) = users::find_by_email(conn, &email)? else {
                return Err(super::OperatorError::NoSuchUser(email.clone()));
            };
            if !two_factor::disable(conn, &user.id, now)? {
                return Ok(None);
            }
            let kind = EventKind::TwoFactorResetByOperator;
            events::record(conn, Some(&user.id), None, kind, &who, now)?;
            tracing::info!(event = kind.as_str(), user_id = %user.id, by = "operator");
            Ok(Some(notice(user)))
        })
        .await
    }

    pub(super) async fn account(&self, user_id: &UserId) -> Result<Option<User>, ServiceError> {
        let id = user_id.clone();
        db::run(&self.pool, move |conn| Ok(users::find(conn, &id)?)).await
    }

    /// The live challenge `token` names and its account (enabled, two-factor
    /// on).
    pub(super) async fn challenge(
        &self,
        token: &str,
    ) -> Result<Option<(two_factor::Challenge, User)>, ServiceError> {
        if !is_token_shaped(token) {
            return Ok(None);
        }
        let (hash, clock) = (hash_token(token), self.clock.clone());
        db::run(&self.pool, move |conn| {
            let Some(challenge) = two_factor::live_challenge(conn, &hash, clock.now())? else {
                return Ok(None);
            };
            let user = users::find(conn, &challenge.user_id)?
                .filter(|u| u.disabled_at.is_none() && u.two_factor_enabled_at.is_some());
            Ok(user.map(|user| (challenge, user)))
        })
        .await
    }

    /// Admits a code for `account`: as a sign-in to its address (pair and
    /// IP), then against the account's own hourly count of codes.
    async fn admit_code(
        &self,
        account: &User,
        who: &Requester,
    ) -> Result<CodeAdmitted, SignInError> {
        let (sign_in, _) = self.admit(&account.email, who).await?;
        let (id, clock) = (account.id.clone(), self.clock.clone());
        let admitted = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(throttle::admitting(conn, |conn| {
                throttle::admit_code(conn, id.as_str(), clock.now())
            })?)
        })
        .await;
        match admitted {
            Ok(Ok(Some(code))) => Ok(CodeAdmitted { sign_in, code }),
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                self.release_attempt(&account.email, who).await;
                match admitted {
                    Ok(Err(retry_after)) => {
                        tracing::info!(event = "second_factor_throttled", user_id = %account.id, ip = %who.ip);
                        Err(SignInError::Throttled { retry_after })
                    }
                    Err(e) => Err(SignInError::Failed(e)),
                    _ => Err(SignInError::Throttled {
                        retry_after: Duration::from_secs(1),
                    }),
                }
            }
        }
    }

    /// Counts a code against `account`'s hourly count of codes; `Err(wait)`
    /// when the count is full.
    async fn admit_account_code(
        &self,
        account: &User,
    ) -> Result<Result<throttle::CodeAdmission, Duration>, ServiceError> {
        let (id, clock) = (account.id.clone(), self.clock.clone());
        let admitted = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(throttle::admitting(conn, |conn| {
                throttle::admit_code(conn, id.as_str(), clock.now())
            })?)
        })
        .await?;
        Ok(match admitted {
            Ok(Some(admission)) => Ok(admission),
            Ok(None) => Err(Duration::from_secs(1)),
            Err(wait) => Err(wait),
        })
    }

    /// Reads a typed code for `account`: the TOTP step it matches, or the
    /// recovery code it is. A secret that does not open is our failure.
    fn read_code(&self, account: &User, typed: &str) -> Result<Code, ServiceError> {
        let typed = typed.trim();
        if totp::looks_like_totp(typed) {
            let (Some(key), Some(sealed)) = (&self.two_factor.key, &account.totp_secret) else {
                return Err(ServiceError::Inconsistent(
                    "two-factor is on but its secret cannot be read (TOTP_ENCRYPTION_KEY)",
                ));
            };
            let secret = key
                .open(account.id.as_str(), sealed)
                .map(TotpSecret::from_bytes)
                .map_err(|_| {
                    ServiceError::Inconsistent("a TOTP secret does not open with this key")
                })?;
            return Ok(secret
                .matching_step(typed, self.clock.timestamp())
                .map_or(Code::Wrong, Code::Totp));
        }
        Ok(recovery::hash(typed).map_or(Code::Wrong, Code::Recovery))
    }

    /// Records a refused code: in the pair's streak and the audit trail
    /// (`kind`: wrong, or replayed), and against the challenge when there is
    /// one. Returns whether that ended the challenge.
    async fn code_failed(
        &self,
        account: &User,
        challenge: Option<&ChallengeId>,
        who: &Requester,
        kind: EventKind,
    ) -> Result<bool, ServiceError> {
        let ended = match challenge {
            Some(id) => {
                let id = id.clone();
                !db::write(&self.pool, move |conn| {
                    Ok::<_, ServiceError>(two_factor::end_if_spent(conn, &id)?)
                })
                .await?
            }
            None => false,
        };
        match self
            .failed_as(&account.email, Some(account.id.clone()), who, kind)
            .await
        {
            SignInError::Failed(e) => Err(e),
            _ => Ok(ended),
        }
    }
}

/// A code's admission: as a sign-in, and per account.
#[derive(Debug, Clone, Copy)]
struct CodeAdmitted {
    sign_in: throttle::SignInAdmission,
    code: throttle::CodeAdmission,
}

impl CodeAdmitted {
    /// A right code: the pair's streak and the counts forget it.
    fn succeeded(
        self,
        conn: &mut DbConnection,
        email: &Email,
        ip: &str,
        user_id: &UserId,
    ) -> diesel::QueryResult<()> {
        throttle::record_sign_in_success(conn, self.sign_in, email.as_str(), ip)?;
        throttle::record_code_success(conn, self.code, user_id.as_str())
    }
}

fn notice(user: User) -> TwoFactorNotice {
    TwoFactorNotice {
        email: user.email,
        name: user.name,
    }
}
