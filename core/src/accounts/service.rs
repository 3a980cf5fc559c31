//! What every part of the domain shares: the [`Accounts`] service (pool,
//! hasher, keys, revocation list, policies), the plain data its calls take and
//! return, and its errors.

use std::time::Duration;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::{HashError, PasswordHasher};
use crate::auth::revocation::RevokedSessions;
use crate::auth::throttle::ThrottlePolicy;
use crate::clock::Clock;
use crate::db::{DbError, DbPool};
use crate::ids::{Email, SessionId, UserId};

/// Who is asking: recorded with sessions and events, and the key of the
/// per-IP limits. The pages build it from the request; the command line names
/// itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub ip: String,
    pub user_agent: String,
}

/// A signed-in user as a verified access token (or a refresh) describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub name: String,
    /// When this session signed in (Unix seconds).
    pub auth_time: i64,
}

/// Tokens just issued for a session.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub session_id: SessionId,
    /// A signed access token (JWT) for the session.
    pub access_token: String,
    /// The new refresh token, when one was issued (none to a tab that lost a
    /// refresh race: its browser already holds the newest one).
    pub refresh_token: Option<String>,
    /// How long the refresh token may be kept: `Some` with "remember me",
    /// `None` for a browser-session cookie.
    pub refresh_max_age: Option<Duration>,
}

/// The outcome of a successful sign-in, registration, refresh or password change.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: SessionUser,
    pub session: IssuedSession,
}

/// Session limits, all enforced by the server.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// How long a rotated refresh token is still accepted (tabs racing at expiry).
    pub refresh_reuse_grace: Duration,
    /// Absolute lifetime without "remember me".
    pub max_age: Duration,
    /// Absolute lifetime with "remember me" (also the refresh cookie's Max-Age).
    pub max_age_remember: Duration,
    /// A session not refreshed for this long ends.
    pub idle_timeout: Duration,
    /// An access token's lifetime: a revoked session's row is kept this long
    /// (and more) before a prune deletes it.
    pub access_token_ttl: Duration,
}

/// The rules for reset links, from settings.
#[derive(Debug, Clone, Copy)]
pub struct ResetPolicy {
    pub ttl: Duration,
    pub max_per_account_per_hour: u32,
    pub max_per_ip_per_hour: u32,
}

/// Sessions once they exist: access tokens signed and checked, the list of
/// revoked sessions, refresh, sign-out and revocation. What the web doors
/// consult on every request; the command line never builds it (it signs no
/// token).
pub struct Sessions {
    pub(super) pool: DbPool,
    pub(super) keys: JwtKeys,
    pub(super) revoked: RevokedSessions,
    pub(super) policy: SessionPolicy,
    /// The time for every rule that expires; the keys share it.
    pub(super) clock: Clock,
}

impl Sessions {
    pub fn new(pool: DbPool, keys: JwtKeys, policy: SessionPolicy, clock: Clock) -> Self {
        Self {
            pool,
            revoked: RevokedSessions::new(keys.ttl()),
            keys: keys.with_clock(clock.clone()),
            policy,
            clock,
        }
    }
}

/// Accounts and their passwords: registration, sign-in, password changes
/// and resets, the account page's data and the operator's commands. What
/// starts a session takes the [`Sessions`] to start it in.
pub struct Accounts {
    pub(super) pool: DbPool,
    pub(super) hasher: PasswordHasher,
    /// Session lifetimes, for the sessions accounts start and for pruning.
    pub(super) policy: SessionPolicy,
    pub(super) throttle: ThrottlePolicy,
    pub(super) resets: ResetPolicy,
    pub(super) verify: super::VerifyPolicy,
    pub(super) two_factor: super::TwoFactorPolicy,
    pub(super) passkeys: super::PasskeyPolicy,
    /// The time for every rule that expires.
    pub(super) clock: Clock,
    /// Sign-ins waiting for room in their pair's limit.
    pub(super) waiters: super::throttle::PairWaiters,
}

impl Accounts {
    pub fn new(
        pool: DbPool,
        hasher: PasswordHasher,
        policy: SessionPolicy,
        throttle: ThrottlePolicy,
        resets: ResetPolicy,
        verify: super::VerifyPolicy,
        clock: Clock,
    ) -> Self {
        Self {
            pool,
            hasher,
            policy,
            throttle,
            resets,
            verify,
            two_factor: Default::default(),
            passkeys: Default::default(),
            clock,
            waiters: Default::default(),
        }
    }

    /// The pool, for tests that look at the rows directly.
    #[cfg(test)]
    pub(super) fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Answers when the database does (the readiness probe).
    pub async fn ping(&self) -> Result<(), ServiceError> {
        crate::db::run(&self.pool, |conn| Ok(crate::db::ping(conn)?)).await
    }
}

/// Our failure, never the user's: the database does not answer (the doors say
/// 503) or something else broke (500). The source chain is for the log only.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hashing(#[from] HashError),
    #[error("cannot sign an access token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    #[error("{0}")]
    Inconsistent(&'static str),
}

impl ServiceError {
    /// Whether the database did not answer (as opposed to a bug or bad data).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Db(e) if e.is_unavailable())
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

/// Why a sign-in did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The e-mail or the password is empty; nothing was checked or counted.
    #[error("e-mail or password missing")]
    MissingCredentials,
    /// Unknown e-mail or wrong password; deliberately one case.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The (e-mail, IP) pair or the IP is locked; no password was checked.
    #[error("too many failed sign-ins")]
    Throttled { retry_after: Duration },
    /// The right password of an address nobody has confirmed: no session; a
    /// fresh link to mail when its limits allowed one.
    #[error("the e-mail address is not confirmed")]
    EmailUnverified { link: Option<super::ConfirmLink> },
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

/// A message per registration field that needs fixing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors {
    pub name: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
}

impl FieldErrors {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none() && self.password.is_none()
    }
}

/// A message per field of the password-change form.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PasswordErrors {
    pub current: Option<String>,
    pub new: Option<String>,
}

/// Why a registration did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// A message per field that needs fixing.
    #[error("the registration has invalid fields")]
    Invalid(FieldErrors),
    /// An account with this (normalised) e-mail exists; also when two
    /// registrations race, since the unique index decides.
    #[error("an account with this email already exists")]
    EmailTaken { email: Email },
    /// This address has reached the hourly registration limit.
    #[error("too many registrations from this address")]
    Throttled { retry_after: Duration },
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

/// Why a password change did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordChangeError {
    #[error("the password change has invalid fields")]
    Invalid(PasswordErrors),
    /// The session asking ended (elsewhere) while the change was on its way;
    /// nothing was changed.
    #[error("the session ended during the password change")]
    SessionEnded,
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

/// Why a session could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// No live session of this user has that id.
    #[error("no such session")]
    NotFound,
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

macro_rules! failure_from {
    ($($ty:ty),*) => {
        $(impl From<DbError> for $ty {
            fn from(e: DbError) -> Self {
                Self::Failed(ServiceError::Db(e))
            }
        }
        impl From<HashError> for $ty {
            fn from(e: HashError) -> Self {
                Self::Failed(ServiceError::Hashing(e))
            }
        }
        impl From<diesel::result::Error> for $ty {
            fn from(e: diesel::result::Error) -> Self {
                Self::Failed(ServiceError::from(e))
            }
        })*
    };
}

failure_from!(
    SignInError,
    RegisterError,
    PasswordChangeError,
    RevokeError,
    super::SecondFactorError,
    super::TwoFactorError,
    super::StepUpError
);

pub(super) fn delta(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}
