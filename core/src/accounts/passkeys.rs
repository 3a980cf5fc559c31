//! Passkeys (WebAuthn, through `webauthn-rs`): adding one to an account
//! (behind step-up), signing in with one (a discoverable credential, so no
//! address is typed; with user verification it counts as both factors),
//! one as the second factor of a pending sign-in, and the account's list.
//!
//! Every ceremony's state lives in a database row keyed by the hash of a
//! random token the browser keeps in a cookie, so any instance finishes what
//! another started; the one request that deletes the row uses it. A
//! credential's use is recorded by one conditional `UPDATE` that refuses a
//! signature counter going backwards (`db::passkeys`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use serde::Deserialize as _;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Uuid, Webauthn,
    WebauthnError,
};

use super::events::{self, EventKind};
use super::operator::OperatorError;
use super::profile::Profile;
use super::service::{Accounts, Requester, ServiceError, SessionUser, Sessions, SignedIn, delta};
use super::sessions::NewTokens;
use super::throttle;
use crate::auth::token::{hash_token, is_token_shaped, new_token};
use crate::db::models::User;
use crate::db::{self, DbConnection, passkeys, sessions, two_factor, users};
use crate::ids::{Email, PasskeyId, UserId};

/// How long a ceremony may take, from its options to its answer.
pub const CEREMONY_TTL: Duration = Duration::from_secs(5 * 60);
/// The longest name a passkey may have, in characters.
pub const MAX_PASSKEY_NAME_CHARS: usize = 64;

/// Passkey settings: the relying party (`None`: passkeys are unavailable,
/// e.g. the site's host is an IP address other than loopback).
#[derive(Clone, Default)]
pub struct PasskeyPolicy {
    pub webauthn: Option<Arc<Webauthn>>,
    /// The origin passkeys work at (pages opened elsewhere say so).
    pub origin: Option<String>,
}

impl std::fmt::Debug for PasskeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyPolicy")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl PasskeyPolicy {
    /// The relying party for a site at `origin` (`scheme://host[:port]`):
    /// its id is the host, or `rp_id` (`WEBAUTHN_RP_ID`) when that is a
    /// registrable suffix of the host. A loopback address cannot be a
    /// relying-party id, so a site at `http://127.0.0.1:PORT` offers
    /// passkeys at `http://localhost:PORT`; any other IP address offers none.
    /// `Err` names what is wrong with `rp_id`.
    pub fn for_origin(origin: &str, rp_id: Option<&str>) -> Result<Self, String> {
        use webauthn_rs::prelude::{Url, WebauthnBuilder};
        let url = Url::parse(origin).map_err(|e| format!("the site's origin is not a URL: {e}"))?;
        let (origin, host) = match url.host() {
            Some(url::Host::Domain(domain)) => (url.clone(), domain.to_ascii_lowercase()),
            // A loopback or every-interface address: this machine's browser
            // reaches it as localhost.
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() || ip.is_unspecified() => {
                (localhost(&url)?, "localhost".into())
            }
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() || ip.is_unspecified() => {
                (localhost(&url)?, "localhost".into())
            }
            _ => {
                if rp_id.is_some() {
                    return Err("cannot be used when the site's host is an IP address".into());
                }
                tracing::info!(%origin, "passkeys are off: the site's host is an IP address, which cannot be a relying-party id");
                return Ok(Self::default());
            }
        };
        let rp_id = match rp_id.map(|id| id.trim().to_ascii_lowercase()) {
            None => host,
            Some(id) if id == host || host.ends_with(&format!(".{id}")) => id,
            Some(_) => {
                return Err(format!(
                    "must be the site's host ({host}) or a registrable suffix of it"
                ));
            }
        };
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| b.rp_name("Gatehouse").build())
            .map_err(|e| format!("is not a relying-party id for {origin}: {e}"))?;
        Ok(Self {
            webauthn: Some(Arc::new(webauthn)),
            origin: Some(origin.origin().ascii_serialization()),
        })
    }
}

/// `url` with `localhost` for its loopback address.
fn localhost(url: &url::Url) -> Result<url::Url, String> {
    let mut local = url.clone();
    local
        .set_host(Some("localhost"))
        .map_err(|e| format!("the site's origin has no host: {e}"))?;
    Ok(local)
}

/// What a ceremony is for; stored as text in its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    SignIn,
    SecondFactor,
}

impl Purpose {
    const ALL: [Self; 3] = [Self::Register, Self::SignIn, Self::SecondFactor];

    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SignIn => "sign_in",
            Self::SecondFactor => "second_factor",
        }
    }

    /// The purpose a stored name stands for.
    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// A ceremony just started: the options for the browser's
/// `navigator.credentials` call (JSON as WebAuthn's JSON encoding has it),
/// and the opaque token its cookie keeps for [`CEREMONY_TTL`]. `Debug`
/// hides the token.
#[derive(Clone)]
pub struct CeremonyStarted {
    pub options: serde_json::Value,
    pub token: String,
    pub expires_in: Duration,
}

impl std::fmt::Debug for CeremonyStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CeremonyStarted")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A passkey as the account page lists it.
#[derive(Debug, Clone)]
pub struct PasskeySummary {
    pub id: PasskeyId,
    pub name: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

/// Who a passkey change concerns, for the notice mailed to them.
#[derive(Debug, Clone)]
pub struct PasskeyNotice {
    pub email: Email,
    pub name: String,
    /// The passkey's name.
    pub passkey: String,
}

/// Why a passkey ceremony or change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The site's address cannot be a relying party (an IP address).
    #[error("passkeys are not available at this address")]
    Unavailable,
    /// The change needs a recent proof of sign-in.
    #[error("a recent sign-in is needed")]
    StepUpRequired,
    /// No such ceremony: never started, expired, used, or another's.
    #[error("the passkey request expired")]
    Expired,
    /// The browser's answer does not hold (origin, relying party, signature,
    /// challenge, user verification), or it names no passkey here.
    #[error("the passkey was not accepted")]
    Refused,
    /// The credential is registered already (to any account).
    #[error("that passkey is registered already")]
    AlreadyRegistered,
    /// The name is empty or too long.
    #[error("a passkey's name must be 1 to 64 characters")]
    BadName,
    /// The session was signed out elsewhere.
    #[error("the session ended")]
    SessionEnded,
    #[error("too many attempts")]
    Throttled { retry_after: Duration },
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

impl From<db::DbError> for PasskeyError {
    fn from(e: db::DbError) -> Self {
        Self::Failed(e.into())
    }
}

impl From<diesel::result::Error> for PasskeyError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Failed(e.into())
    }
}

/// What a browser sends to finish a passkey sign-in.
#[derive(Debug, Clone, Copy)]
pub struct PasskeyAnswer<'a> {
    /// The ceremony's token (its cookie).
    pub ceremony: &'a str,
    /// The assertion, as WebAuthn's JSON encoding has it.
    pub credential: &'a serde_json::Value,
    /// Keep the session beyond the browser session ("remember me").
    pub remember: bool,
    /// The token of the browser's pending sign-in, if any (its cookie).
    pub pending: Option<&'a str>,
}

/// A passkey sign-in done: the session (a new one, or, for a browser that
/// was signed in, the same one with its proof of sign-in renewed:
/// `stepped_up`) and the account.
#[derive(Debug)]
pub struct PasskeySignedIn {
    pub signed_in: SignedIn,
    pub stepped_up: bool,
    pub profile: Profile,
}

/// A credential id as stored: base64url without padding.
fn credential_key(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// The WebAuthn user handle of an account: its id, a UUID.
fn user_handle(id: &UserId) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(id.as_str()).map_err(|_| ServiceError::Inconsistent("a user id is no UUID"))
}

/// A passkey's name as typed: trimmed, 1 to 64 characters, no control
/// characters.
fn clean_name(name: &str) -> Result<String, PasskeyError> {
    let name: String = name.trim().chars().filter(|c| !c.is_control()).collect();
    let count = name.chars().count();
    if count == 0 || count > MAX_PASSKEY_NAME_CHARS {
        return Err(PasskeyError::BadName);
    }
    Ok(name)
}

/// Options for the browser, as WebAuthn's JSON encoding has them.
fn options_json<T: serde::Serialize>(options: &T) -> Result<serde_json::Value, ServiceError> {
    serde_json::to_value(options)
        .map_err(|_| ServiceError::Inconsistent("options did not serialise"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, ServiceError> {
    serde_json::to_string(value)
        .map_err(|_| ServiceError::Inconsistent("a value did not serialise"))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ServiceError> {
    serde_json::from_str(text)
        .map_err(|_| ServiceError::Inconsistent("a stored value did not read"))
}

impl Accounts {
    /// Sets the relying party passkeys use.
    pub fn with_passkeys(mut self, policy: PasskeyPolicy) -> Self {
        self.passkeys = policy;
        self
    }

    /// Whether passkeys can be used at this site's address.
    pub fn passkeys_available(&self) -> bool {
        self.passkeys.webauthn.is_some()
    }

    /// The origin passkeys work at, when they do.
    pub fn passkey_origin(&self) -> Option<&str> {
        self.passkeys.origin.as_deref()
    }

    fn webauthn(&self) -> Result<Arc<Webauthn>, PasskeyError> {
        self.passkeys
            .webauthn
            .clone()
            .ok_or(PasskeyError::Unavailable)
    }

    /// `user_id`'s passkeys, oldest first.
    pub async fn passkeys_of(&self, user_id: &UserId) -> Result<Vec<PasskeySummary>, ServiceError> {
        let id = user_id.clone();
        db::run(&self.pool, move |conn| {
            Ok(passkeys::of_user(conn, &id)?
                .into_iter()
                .map(|p| PasskeySummary {
                    id: p.id,
                    name: p.name,
                    created_at: p.created_at,
                    last_used_at: p.last_used_at,
                })
                .collect())
        })
        .await
    }

    /// How many passkeys `user_id` has.
    pub async fn passkey_count(&self, user_id: &UserId) -> Result<i64, ServiceError> {
        let id = user_id.clone();
        db::run(&self.pool, move |conn| Ok(passkeys::count(conn, &id)?)).await
    }

    /// Whether the account of the pending sign-in `challenge_token` has a
    /// passkey (its second-factor page offers it then).
    pub async fn challenge_has_passkeys(
        &self,
        challenge_token: &str,
    ) -> Result<bool, ServiceError> {
        if !self.passkeys_available() {
            return Ok(false);
        }
        match self.challenge(challenge_token).await? {
            Some((_, account)) => Ok(self.passkey_count(&account.id).await? > 0),
            None => Ok(false),
        }
    }

    /// Starts adding a passkey to `user`'s account (behind step-up): the
    /// creation options ask for a discoverable credential (a resident key)
    /// with user verification, and exclude the account's passkeys.
    pub async fn begin_passkey_registration(
        &self,
        user: &SessionUser,
    ) -> Result<CeremonyStarted, PasskeyError> {
        let webauthn = self.webauthn()?;
        if self.needs_step_up(user) {
            return Err(PasskeyError::StepUpRequired);
        }
        let id = user.user_id.clone();
        let (account, existing) = db::run(&self.pool, move |conn| {
            let account = users::find(conn, &id)?;
            let existing = passkeys::of_user(conn, &id)?;
            Ok::<_, ServiceError>((account, existing))
        })
        .await?;
        let account = account
            .filter(|u| u.disabled_at.is_none())
            .ok_or(PasskeyError::SessionEnded)?;
        let mut exclude = Vec::with_capacity(existing.len());
        for stored in &existing {
            let passkey: Passkey = from_json(&stored.passkey)?;
            exclude.push(passkey.cred_id().clone());
        }
        let (options, state) = webauthn
            .start_passkey_registration(
                user_handle(&account.id)?,
                account.email.as_str(),
                &account.name,
                Some(exclude),
            )
            .map_err(|e| {
                tracing::warn!(error = %e, "passkey registration did not start");
                PasskeyError::Refused
            })?;
        let mut options = options_json(&options)?;
        require_resident_key(&mut options);
        self.store_ceremony(Purpose::Register, Some(&account.id), &state, options)
            .await
    }

    /// Finishes adding a passkey: the ceremony `token` (this account's, live,
    /// used once), the browser's attestation, and the name (empty: `device`,
    /// the name the browser's description gives). Audited; the notice is for
    /// the mail to the account.
    pub async fn finish_passkey_registration(
        &self,
        user: &SessionUser,
        token: &str,
        credential: &serde_json::Value,
        name: &str,
        device: &str,
        who: &Requester,
    ) -> Result<(PasskeySummary, PasskeyNotice), PasskeyError> {
        let webauthn = self.webauthn()?;
        if self.needs_step_up(user) {
            return Err(PasskeyError::StepUpRequired);
        }
        let name = if name.trim().is_empty() {
            // The browser's description, cut to fit.
            let device: String = device.chars().take(MAX_PASSKEY_NAME_CHARS).collect();
            clean_name(&device)?
        } else {
            clean_name(name)?
        };
        let ceremony = self.take_ceremony(token, Purpose::Register).await?;
        if ceremony.user_id.as_ref() != Some(&user.user_id) {
            return Err(PasskeyError::Expired);
        }
        let state: PasskeyRegistration = from_json(&ceremony.state)?;
        let credential = RegisterPublicKeyCredential::deserialize(credential)
            .map_err(|_| PasskeyError::Refused)?;
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| {
                tracing::info!(error = %e, user_id = %user.user_id, "passkey registration refused");
                PasskeyError::Refused
            })?;
        let stored = to_json(&passkey)?;
        let credential_id = credential_key(passkey.cred_id());
        let (user_id, who, now) = (user.user_id.clone(), who.clone(), self.clock.now());
        let summary = PasskeySummary {
            id: PasskeyId::random(),
            name,
            created_at: now,
            last_used_at: None,
        };
        let row = summary.clone();
        let account = db::write(&self.pool, move |conn| {
            let Some(account) = users::find(conn, &user_id)?.filter(|u| u.disabled_at.is_none())
            else {
                return Err(PasskeyError::SessionEnded);
            };
            let inserted = passkeys::insert(
                conn,
                &passkeys::NewPasskey {
                    id: &row.id,
                    user_id: &user_id,
                    credential_id: &credential_id,
                    passkey: &stored,
                    name: &row.name,
                    sign_count: 0,
                    created_at: now,
                },
            )?;
            if !inserted {
                return Err(PasskeyError::AlreadyRegistered);
            }
            events::record(
                conn,
                Some(&user_id),
                None,
                EventKind::PasskeyAdded,
                &who,
                now,
            )?;
            Ok(account)
        })
        .await?;
        tracing::info!(event = EventKind::PasskeyAdded.as_str(), user_id = %user.user_id);
        let notice = PasskeyNotice {
            email: account.email,
            name: account.name,
            passkey: summary.name.clone(),
        };
        Ok((summary, notice))
    }

    /// Renames one of `user`'s passkeys (behind step-up); whether it was
    /// theirs.
    pub async fn rename_passkey(
        &self,
        user: &SessionUser,
        id: &PasskeyId,
        name: &str,
    ) -> Result<bool, PasskeyError> {
        if self.needs_step_up(user) {
            return Err(PasskeyError::StepUpRequired);
        }
        let name = clean_name(name)?;
        let (user_id, id) = (user.user_id.clone(), id.clone());
        Ok(db::write(&self.pool, move |conn| {
            Ok::<_, ServiceError>(passkeys::rename(conn, &user_id, &id, &name)?)
        })
        .await?)
    }

    /// Deletes one of `user`'s passkeys (behind step-up). The password, and
    /// the second factor when on, stay: nobody is locked out. Audited;
    /// `None` when it was not theirs.
    pub async fn delete_passkey(
        &self,
        user: &SessionUser,
        id: &PasskeyId,
        who: &Requester,
    ) -> Result<Option<PasskeyNotice>, PasskeyError> {
        if self.needs_step_up(user) {
            return Err(PasskeyError::StepUpRequired);
        }
        let (user_id, id, who, now) = (
            user.user_id.clone(),
            id.clone(),
            who.clone(),
            self.clock.now(),
        );
        let deleted = db::write(&self.pool, move |conn| {
            let Some(stored) = passkeys::of_user(conn, &user_id)?
                .into_iter()
                .find(|p| p.id == id)
            else {
                return Ok::<_, ServiceError>(None);
            };
            if !passkeys::delete(conn, &user_id, &id)? {
                return Ok(None);
            }
            events::record(
                conn,
                Some(&user_id),
                None,
                EventKind::PasskeyRemoved,
                &who,
                now,
            )?;
            Ok(users::find(conn, &user_id)?.map(|account| PasskeyNotice {
                email: account.email,
                name: account.name,
                passkey: stored.name,
            }))
        })
        .await?;
        if deleted.is_some() {
            tracing::info!(event = EventKind::PasskeyRemoved.as_str(), user_id = %user.user_id);
        }
        Ok(deleted)
    }

    /// Starts a passkey sign-in: a discoverable-credential challenge (the
    /// authenticator picks the account). Refused while the IP is over its
    /// sign-in limit.
    pub async fn begin_passkey_sign_in(
        &self,
        who: &Requester,
    ) -> Result<CeremonyStarted, PasskeyError> {
        let webauthn = self.webauthn()?;
        self.ceremony_allowed(who).await?;
        let (mut options, state) = webauthn.start_discoverable_authentication().map_err(|e| {
            tracing::warn!(error = %e, "passkey sign-in did not start");
            PasskeyError::Refused
        })?;
        // A button starts it, not the address field's autofill.
        options.mediation = None;
        let options = options_json(&options)?;
        self.store_ceremony(Purpose::SignIn, None, &state, options)
            .await
    }

    /// Starts a passkey as the second factor of the pending sign-in
    /// `challenge_token`: its account's passkeys are the ones allowed.
    pub async fn begin_passkey_second_factor(
        &self,
        challenge_token: &str,
        who: &Requester,
    ) -> Result<CeremonyStarted, PasskeyError> {
        let webauthn = self.webauthn()?;
        self.ceremony_allowed(who).await?;
        let (_, account) = self
            .challenge(challenge_token)
            .await?
            .ok_or(PasskeyError::Expired)?;
        let id = account.id.clone();
        let stored = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(passkeys::of_user(conn, &id)?)
        })
        .await?;
        if stored.is_empty() {
            return Err(PasskeyError::Refused);
        }
        let mut keys = Vec::with_capacity(stored.len());
        for row in &stored {
            keys.push(from_json::<Passkey>(&row.passkey)?);
        }
        let (options, state) = webauthn.start_passkey_authentication(&keys).map_err(|e| {
            tracing::warn!(error = %e, "passkey second factor did not start");
            PasskeyError::Refused
        })?;
        let options = options_json(&options)?;
        self.store_ceremony(Purpose::SecondFactor, Some(&account.id), &state, options)
            .await
    }

    /// Finishes a passkey sign-in with the browser's `answer`: with user
    /// verification it is both factors, so the session starts at once, as
    /// after password and second factor. With a pending sign-in, the passkey
    /// must be that account's and the pending sign-in ends with it; with
    /// `replacing` (this browser is signed in: "confirm it's you"), it must
    /// be the signed-in account's, whose proof of sign-in it renews.
    /// Admitted per IP like a password.
    pub async fn finish_passkey_sign_in(
        &self,
        sessions: &Sessions,
        answer: PasskeyAnswer<'_>,
        replacing: Option<&SessionUser>,
        who: &Requester,
    ) -> Result<PasskeySignedIn, PasskeyError> {
        let webauthn = self.webauthn()?;
        let admission = self.admit_passkey(who).await?;
        let finished = self
            .finish_admitted(sessions, &webauthn, answer, admission, replacing, who)
            .await;
        if matches!(finished, Err(PasskeyError::Failed(_))) {
            // Our failure, not a judgement: it leaves the IP's count.
            self.release_passkey(admission, who).await;
        }
        finished
    }

    /// [`Self::finish_passkey_sign_in`] once the answer is admitted.
    async fn finish_admitted(
        &self,
        sessions: &Sessions,
        webauthn: &Webauthn,
        answer: PasskeyAnswer<'_>,
        admission: throttle::SignInAdmission,
        replacing: Option<&SessionUser>,
        who: &Requester,
    ) -> Result<PasskeySignedIn, PasskeyError> {
        let PasskeyAnswer {
            ceremony: token,
            credential,
            remember,
            pending,
        } = answer;
        let Ok(credential) = PublicKeyCredential::deserialize(credential) else {
            // Malformed: refused like a wrong signature (the try counted).
            return Err(PasskeyError::Refused);
        };
        let credential = &credential;
        let judged = self
            .judge_passkey(webauthn, token, credential, pending, replacing, who)
            .await;
        let (account, stored, result) = match judged {
            Ok(judged) => judged,
            Err(e) => {
                if matches!(e, PasskeyError::Refused | PasskeyError::Expired) {
                    tracing::info!(event = EventKind::SignInFailed.as_str(), method = "passkey", ip = %who.ip);
                }
                return Err(e);
            }
        };
        let mut passkey: Passkey = from_json(&stored.passkey)?;
        passkey.update_credential(&result);
        let updated = to_json(&passkey)?;
        let counter = i64::from(result.counter());
        let now = self.clock.now();
        let (policy, who_owned, replaced) = (self.policy.clone(), who.clone(), replacing.cloned());
        let pending_hash = pending.filter(|t| is_token_shaped(t)).map(hash_token);
        let (user_id, passkey_id) = (account.id.clone(), stored.id.clone());
        let require_confirmed = self.verify.mode == super::VerifyMode::Required;
        let tokens = db::write(&self.pool, move |conn| {
            // The account's row is held until this commits: a disable or a
            // deletion committing meanwhile leaves this refused; one coming
            // later ends the session this starts.
            users::lock(conn, &user_id)?;
            if !users::find(conn, &user_id)?.is_some_and(|u| may_sign_in(&u, require_confirmed)) {
                return Err(PasskeyError::Refused);
            }
            if !passkeys::record_use(conn, &passkey_id, &updated, counter, now)? {
                // A counter that did not move on: a cloned authenticator, or
                // the loser of two uses at once. Nothing else is written.
                return Ok(Err(()));
            }
            throttle::take_back_passkey(conn, admission, &who_owned.ip)?;
            if let Some(old) = &replaced {
                // "Confirm it's you": this session's proof of sign-in is
                // renewed, as by a password and code at `/confirm`.
                if !sessions::set_authenticated(conn, &old.session_id, &old.user_id, now)? {
                    return Err(PasskeyError::SessionEnded);
                }
                let sid = Some(&old.session_id);
                events::record(
                    conn,
                    Some(&user_id),
                    sid,
                    EventKind::SteppedUp,
                    &who_owned,
                    now,
                )?;
                return Ok(Ok(NewTokens {
                    id: old.session_id.clone(),
                    refresh_token: None,
                    remember: false,
                }));
            }
            // A pending sign-in this passkey finishes ends, keeping its
            // "remember me".
            let mut remember = remember;
            if let Some(hash) = &pending_hash
                && let Some(challenge) = two_factor::live_challenge(conn, hash, now)?
                && challenge.user_id == user_id
            {
                two_factor::take_challenge(conn, &challenge.id, now)?;
                remember = challenge.remember;
            }
            let tokens = start_session(conn, &policy, &user_id, &who_owned, remember, now)?;
            Ok(Ok(tokens))
        })
        .await?;
        let Ok(tokens) = tokens else {
            self.counter_refused(&account.id, who).await?;
            return Err(PasskeyError::Refused);
        };
        let stepped_up = replacing.is_some();
        let event = if stepped_up {
            EventKind::SteppedUp
        } else {
            EventKind::SignedIn
        };
        tracing::info!(
            event = event.as_str(),
            user_id = %account.id,
            session_id = %tokens.id,
            method = "passkey",
            ip = %who.ip
        );
        let user = SessionUser {
            user_id: account.id.clone(),
            session_id: tokens.id.clone(),
            name: account.name.clone(),
            auth_time: now.and_utc().timestamp(),
        };
        Ok(PasskeySignedIn {
            signed_in: sessions.issue(user, tokens)?,
            stepped_up,
            profile: Profile {
                id: account.id,
                name: account.name,
                email: account.email,
            },
        })
    }

    /// Checks an assertion against its ceremony and the stored passkey:
    /// the account, the passkey row, and webauthn-rs's verdict (origin,
    /// relying party, challenge, signature, user verification, counter).
    async fn judge_passkey(
        &self,
        webauthn: &Webauthn,
        token: &str,
        credential: &PublicKeyCredential,
        pending: Option<&str>,
        replacing: Option<&SessionUser>,
        who: &Requester,
    ) -> Result<(User, passkeys::StoredPasskey, AuthenticationResult), PasskeyError> {
        let ceremony = self.take_any_ceremony(token).await?;
        let credential_id = credential_key(credential.get_credential_id());
        let stored = {
            let key = credential_id.clone();
            db::run(&self.pool, move |conn| {
                Ok::<_, ServiceError>(passkeys::by_credential(conn, &key)?)
            })
            .await?
            .ok_or(PasskeyError::Refused)?
        };
        let require_confirmed = self.verify.mode == super::VerifyMode::Required;
        let account = self
            .account(&stored.user_id)
            .await?
            .filter(|u| may_sign_in(u, require_confirmed))
            .ok_or(PasskeyError::Refused)?;
        let passkey: Passkey = from_json(&stored.passkey)?;
        // A user handle, when the authenticator gives one, must be the
        // account the credential is registered to.
        let expected = user_handle(&account.id)?;
        if credential
            .get_user_unique_id()
            .is_some_and(|handle| handle != expected.as_bytes())
        {
            return Err(PasskeyError::Refused);
        }
        let verdict = match Purpose::parse(&ceremony.purpose) {
            Some(Purpose::SignIn) => {
                let state: DiscoverableAuthentication = from_json(&ceremony.state)?;
                // The user handle the authenticator keeps must be the
                // account the credential is registered to.
                let (handle, _) = webauthn
                    .identify_discoverable_authentication(credential)
                    .map_err(|_| PasskeyError::Refused)?;
                if handle != user_handle(&account.id)? {
                    return Err(PasskeyError::Refused);
                }
                webauthn.finish_discoverable_authentication_v2(credential, state, &passkey)
            }
            Some(Purpose::SecondFactor) => {
                if ceremony.user_id.as_ref() != Some(&account.id) {
                    return Err(PasskeyError::Refused);
                }
                let state: PasskeyAuthentication = from_json(&ceremony.state)?;
                webauthn.finish_passkey_authentication(credential, &state)
            }
            _ => return Err(PasskeyError::Expired),
        };
        let result = match verdict {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                self.counter_refused(&account.id, who).await?;
                return Err(PasskeyError::Refused);
            }
            Err(e) => {
                tracing::info!(error = %e, user_id = %account.id, "passkey assertion refused");
                return Err(PasskeyError::Refused);
            }
        };
        if !result.user_verified() {
            return Err(PasskeyError::Refused);
        }
        if let Some(token) = pending {
            // The second factor of a pending sign-in is that account's.
            if let Some((challenge, _)) = self.challenge(token).await?
                && challenge.user_id != account.id
            {
                return Err(PasskeyError::Refused);
            }
        }
        if let Some(old) = replacing
            && old.user_id != account.id
        {
            return Err(PasskeyError::Refused);
        }
        Ok((account, stored, result))
    }

    /// Audits a refused counter (a possibly cloned authenticator).
    async fn counter_refused(&self, user_id: &UserId, who: &Requester) -> Result<(), ServiceError> {
        tracing::warn!(
            event = EventKind::PasskeyCounterRefused.as_str(),
            user_id = %user_id,
            ip = %who.ip
        );
        let (user_id, who, now) = (user_id.clone(), who.clone(), self.clock.now());
        db::write(&self.pool, move |conn| {
            let kind = EventKind::PasskeyCounterRefused;
            Ok::<_, ServiceError>(events::record(conn, Some(&user_id), None, kind, &who, now)?)
        })
        .await
    }

    /// Support's reset: deletes every passkey of the account at `email`
    /// (its password, and two-factor when on, still sign in). Audited when
    /// there were any; how many, and the notice for the mail.
    pub async fn reset_passkeys(
        &self,
        email: &Email,
        who: &Requester,
    ) -> Result<(usize, PasskeyNotice), OperatorError> {
        let (email, who, now) = (email.clone(), who.clone(), self.clock.now());
        db::write(&self.pool, move |conn| {
            let Some(account) = users::find_by_email(conn, &email)? else {
                return Err(OperatorError::NoSuchUser(email));
            };
            let deleted = passkeys::delete_all(conn, &account.id)?;
            if deleted > 0 {
                let kind = EventKind::PasskeysResetByOperator;
                events::record(conn, Some(&account.id), None, kind, &who, now)?;
            }
            Ok((
                deleted,
                PasskeyNotice {
                    email: account.email,
                    name: account.name,
                    passkey: format!("all {deleted}"),
                },
            ))
        })
        .await
    }

    /// Takes an admitted answer back out of the IP's count.
    async fn release_passkey(&self, admission: throttle::SignInAdmission, who: &Requester) {
        let ip = who.ip.clone();
        let released = db::write(&self.pool, move |conn| {
            Ok::<_, ServiceError>(throttle::take_back_passkey(conn, admission, &ip)?)
        })
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "an unjudged passkey answer stays counted");
        }
    }

    async fn ceremony_allowed(&self, who: &Requester) -> Result<(), PasskeyError> {
        let (limits, ip, clock) = (self.throttle, who.ip.clone(), self.clock.clone());
        let allowed = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(throttle::passkey_ceremony_allowed(
                conn,
                &limits,
                &ip,
                clock.now(),
            )?)
        })
        .await?;
        allowed.map_err(|retry_after| PasskeyError::Throttled { retry_after })
    }

    async fn admit_passkey(
        &self,
        who: &Requester,
    ) -> Result<throttle::SignInAdmission, PasskeyError> {
        let (limits, ip, clock) = (self.throttle, who.ip.clone(), self.clock.clone());
        let admitted = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(throttle::admitting(conn, |conn| {
                throttle::admit_passkey(conn, &limits, &ip, clock.now())
            })?)
        })
        .await?;
        match admitted {
            Ok(Some(admission)) => Ok(admission),
            Ok(None) => Err(PasskeyError::Failed(ServiceError::Inconsistent(
                "a passkey admission waited",
            ))),
            Err(retry_after) => Err(PasskeyError::Throttled { retry_after }),
        }
    }

    async fn store_ceremony<S: serde::Serialize>(
        &self,
        purpose: Purpose,
        user_id: Option<&UserId>,
        state: &S,
        options: serde_json::Value,
    ) -> Result<CeremonyStarted, PasskeyError> {
        let state = to_json(state)?;
        let token = new_token();
        let (hash, user_id, now) = (hash_token(&token), user_id.cloned(), self.clock.now());
        db::write(&self.pool, move |conn| {
            // Unfinished ceremonies go as new ones come: the table holds
            // no more than [`CEREMONY_TTL`]'s worth.
            passkeys::prune(conn, now)?;
            Ok::<_, ServiceError>(passkeys::insert_ceremony(
                conn,
                &passkeys::NewCeremony {
                    id: &Uuid::new_v4().to_string(),
                    token_hash: &hash,
                    purpose: purpose.as_str(),
                    user_id: user_id.as_ref(),
                    state: &state,
                    created_at: now,
                    expires_at: now + delta(CEREMONY_TTL),
                },
            )?)
        })
        .await?;
        Ok(CeremonyStarted {
            options,
            token,
            expires_in: CEREMONY_TTL,
        })
    }

    /// Takes the live ceremony `token` names, whatever it is for.
    async fn take_any_ceremony(&self, token: &str) -> Result<passkeys::Ceremony, PasskeyError> {
        if !is_token_shaped(token) {
            return Err(PasskeyError::Expired);
        }
        let (hash, clock) = (hash_token(token), self.clock.clone());
        db::write(&self.pool, move |conn| {
            Ok::<_, ServiceError>(passkeys::take_ceremony(conn, &hash, clock.now())?)
        })
        .await?
        .ok_or(PasskeyError::Expired)
    }

    /// Takes the live ceremony `token` names; `Expired` when there is none or
    /// it is not for `purpose` (it is used up either way).
    async fn take_ceremony(
        &self,
        token: &str,
        purpose: Purpose,
    ) -> Result<passkeys::Ceremony, PasskeyError> {
        let ceremony = self.take_any_ceremony(token).await?;
        if Purpose::parse(&ceremony.purpose) != Some(purpose) {
            return Err(PasskeyError::Expired);
        }
        Ok(ceremony)
    }
}

/// Creation options as webauthn-rs makes them, changed to require a
/// resident key: the passkey must be discoverable, so signing in needs no
/// address typed.
fn require_resident_key(options: &mut serde_json::Value) {
    if let Some(selection) = options
        .pointer_mut("/publicKey/authenticatorSelection")
        .and_then(serde_json::Value::as_object_mut)
    {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
}

/// Whether `account` may sign in: enabled, and its address confirmed when
/// addresses must be (as the password door requires).
fn may_sign_in(account: &User, require_confirmed: bool) -> bool {
    account.disabled_at.is_none() && !(require_confirmed && account.email_verified_at.is_none())
}

/// A session for `user_id`, signed in just now (a passkey is both factors).
fn start_session(
    conn: &mut DbConnection,
    policy: &super::service::SessionPolicy,
    user_id: &UserId,
    who: &Requester,
    remember: bool,
    now: NaiveDateTime,
) -> Result<NewTokens, PasskeyError> {
    let tokens = super::sessions::create(conn, policy, user_id, who, remember, now)?;
    events::record(
        conn,
        Some(user_id),
        Some(&tokens.id),
        EventKind::SignedIn,
        who,
        now,
    )?;
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_is_the_host_or_a_registrable_suffix_of_it() {
        let site = PasskeyPolicy::for_origin("https://login.example.com", None).unwrap();
        assert_eq!(site.origin.as_deref(), Some("https://login.example.com"));
        assert!(site.webauthn.is_some());
        let wider =
            PasskeyPolicy::for_origin("https://login.example.com", Some("example.com")).unwrap();
        assert!(wider.webauthn.is_some());

        for foreign in [
            "other.com",
            "ample.com",
            "login.example.com.evil",
            "127.0.0.1",
        ] {
            let refused = PasskeyPolicy::for_origin("https://login.example.com", Some(foreign));
            assert!(refused.is_err(), "{foreign} was taken");
        }
    }

    #[test]
    fn a_loopback_site_offers_passkeys_at_localhost_and_another_ip_none() {
        let local = PasskeyPolicy::for_origin("http://127.0.0.1:8080", None).unwrap();
        assert_eq!(local.origin.as_deref(), Some("http://localhost:8080"));
        let v6 = PasskeyPolicy::for_origin("http://[::1]:8080", None).unwrap();
        assert_eq!(v6.origin.as_deref(), Some("http://localhost:8080"));

        let lan = PasskeyPolicy::for_origin("http://192.168.1.20:8080", None).unwrap();
        assert!(lan.webauthn.is_none());
        assert!(PasskeyPolicy::for_origin("http://192.168.1.20:8080", Some("lan")).is_err());
    }

    #[test]
    fn a_name_is_trimmed_and_between_1_and_64_characters() {
        assert_eq!(clean_name("  Work laptop \n").unwrap(), "Work laptop");
        assert_eq!(clean_name("Zoë's\u{7} key").unwrap(), "Zoë's key");
        assert!(matches!(clean_name("   "), Err(PasskeyError::BadName)));
        assert_eq!(clean_name(&"é".repeat(64)).unwrap().chars().count(), 64);
        assert!(matches!(
            clean_name(&"é".repeat(65)),
            Err(PasskeyError::BadName)
        ));
    }

    /// A passkey row for `user_id` with the one credential id these tests share.
    fn same_credential<'a>(
        id: &'a PasskeyId,
        user_id: &'a UserId,
        now: NaiveDateTime,
    ) -> passkeys::NewPasskey<'a> {
        passkeys::NewPasskey {
            id,
            user_id,
            credential_id: "the-same-credential",
            passkey: "{}",
            name: "Key",
            sign_count: 0,
            created_at: now,
        }
    }

    #[tokio::test]
    async fn a_credential_id_is_stored_once_across_accounts() {
        use super::super::tests::{conn, fixture, register};
        let f = fixture(Duration::from_secs(30));
        let ada = register(&f, "ada@example.com").await.user.user_id;
        let bob = register(&f, "bob@example.com").await.user.user_id;
        let now = f.accounts.clock.now();

        let mut db = conn(&f.accounts);
        let ids = [
            PasskeyId::random(),
            PasskeyId::random(),
            PasskeyId::random(),
        ];
        assert!(passkeys::insert(&mut db, &same_credential(&ids[0], &ada, now)).unwrap());
        assert!(!passkeys::insert(&mut db, &same_credential(&ids[1], &bob, now)).unwrap());
        assert!(!passkeys::insert(&mut db, &same_credential(&ids[2], &ada, now)).unwrap());
        assert_eq!(passkeys::count(&mut db, &bob).unwrap(), 0);
        assert_eq!(passkeys::count(&mut db, &ada).unwrap(), 1);
    }
}
