//! Verified addresses: with confirmation required, a registration keeps its
//! name and password hash as pending and mails a link; the link's form takes
//! the password of one of the address's pending registrations and makes that
//! one the account. Registering answers the same for a new, an unconfirmed
//! and a confirmed address (only the mail differs), and the work done is the
//! same (one hash). Links are single use, stored hashed, and superseded by
//! newer ones for the same address; the mails an address gets are limited in
//! the database, shared by every instance.

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::events::{self, EventKind};
use super::registration::{email_problem, validate};
use super::service::{
    Accounts, RegisterError, Requester, ServiceError, SessionUser, Sessions, SignedIn, delta,
};
use super::throttle::{self, Refusal};
use crate::auth::token::{hash_token, is_token_shaped, new_token};
use crate::db::confirmations::{self, EMAIL_CHANGE, NewConfirmation, REGISTRATION};
use crate::db::models::{NewUser, User};
use crate::db::pending::{self, NewPending};
use crate::db::{self, DbConnection, resets, sessions, users};
use crate::ids::{Email, UserId};
use crate::secret::Password;

/// Whether a new address must be confirmed before it signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// A registration is pending until its address is confirmed.
    Required,
    /// A registration signs in at once; its address stays unconfirmed.
    Off,
}

/// The rules for confirming addresses, from settings.
#[derive(Debug, Clone, Copy)]
pub struct VerifyPolicy {
    pub mode: VerifyMode,
    /// How long a confirmation link works.
    pub ttl: Duration,
    /// Mails a registration of one address may send a day.
    pub registration_mails_per_day: u32,
    /// Fresh links (a resend, a sign-in to an unconfirmed address) per
    /// address, a minute and a day.
    pub links_per_minute: u32,
    pub links_per_day: u32,
}

impl VerifyPolicy {
    /// The mail limits every deployment has, with `mode` and `ttl`.
    pub fn new(mode: VerifyMode, ttl: Duration) -> Self {
        Self {
            mode,
            ttl,
            registration_mails_per_day: 5,
            links_per_minute: 1,
            links_per_day: 5,
        }
    }
}

/// What a confirmation link confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// A registration's address (a new account, or one registered unconfirmed).
    Registration,
    /// An account's new address.
    EmailChange,
}

/// A link to mail: to whom, and the token for `/verify/{token}`.
#[derive(Debug, Clone)]
pub struct ConfirmLink {
    pub purpose: LinkPurpose,
    pub email: Email,
    pub name: String,
    pub token: String,
    pub expires_in: Duration,
}

impl ConfirmLink {
    /// The link on the site at `origin` (`scheme://host[:port]`).
    pub fn url(&self, origin: &str) -> String {
        format!("{origin}/verify/{}", self.token)
    }
}

/// The one mail a registration sends.
#[derive(Debug, Clone)]
pub enum RegistrationMail {
    /// A new or unconfirmed address: a link.
    Link(ConfirmLink),
    /// A confirmed account: "you already have an account".
    AlreadyRegistered { email: Email, name: String },
}

/// What a registration came to.
#[derive(Debug)]
pub enum Registered {
    /// Confirmation off: the account, signed in.
    SignedIn(Box<SignedIn>),
    /// Confirmation required: the same for every address; the mail to send,
    /// unless the address's daily limit stopped it.
    Pending(Option<RegistrationMail>),
}

/// A live link, as its page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDetails {
    pub purpose: LinkPurpose,
    /// The address it confirms.
    pub email: Email,
}

/// An address just confirmed.
#[derive(Debug, Clone)]
pub struct Confirmed {
    pub email: Email,
    pub name: String,
    /// For an e-mail change: the address it replaced.
    pub previous_email: Option<Email>,
}

/// Why a link's form did not confirm.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    /// Used, expired, superseded or unknown: one answer for all.
    #[error("the link has expired or was already used")]
    InvalidLink,
    /// Not the password of any registration (or of the account) the link is for.
    #[error("wrong password")]
    WrongPassword,
    /// The address's sign-in limit: no password was checked.
    #[error("too many attempts")]
    Throttled { retry_after: Duration },
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

/// The mails an e-mail change sends.
#[derive(Debug, Clone)]
pub struct EmailChangeMails {
    /// The link, to the new address (none when the address is another
    /// account's, or its mail limit is reached).
    pub link: Option<ConfirmLink>,
    /// To the owner of the new address, when it is another account's.
    pub address_taken: Option<(Email, String)>,
    /// The notice to the current address: (address, name, new address).
    pub notice: (Email, String, Email),
}

/// Why an e-mail change was not started.
#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    #[error("the e-mail change has invalid fields")]
    Invalid {
        new_email: Option<String>,
        current_password: Option<String>,
    },
    #[error("the session ended during the e-mail change")]
    SessionEnded,
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

macro_rules! failed_from {
    ($($ty:ty),*) => {$(
        impl From<db::DbError> for $ty {
            fn from(e: db::DbError) -> Self {
                Self::Failed(e.into())
            }
        }
        impl From<DieselError> for $ty {
            fn from(e: DieselError) -> Self {
                Self::Failed(e.into())
            }
        }
        impl From<crate::auth::password::HashError> for $ty {
            fn from(e: crate::auth::password::HashError) -> Self {
                Self::Failed(e.into())
            }
        }
    )*};
}

failed_from!(ConfirmError, EmailChangeError);

/// An admitted confirmation: its link and who sent it.
struct Attempt<'a> {
    link: &'a confirmations::Confirmation,
    purpose: LinkPurpose,
    token_hash: &'a str,
    /// The session this browser had, which the new one ends.
    replacing: Option<&'a SessionUser>,
    who: &'a Requester,
    admission: throttle::SignInAdmission,
}

/// Whose password a link's form may take.
enum Candidate {
    /// A pending registration of the address.
    Pending(pending::Pending),
    /// The account the link is for (registered unconfirmed, or changing its
    /// address), at the password version that was checked.
    Account(User),
}

impl Accounts {
    /// Whether new addresses must be confirmed.
    pub fn verify_mode(&self) -> VerifyMode {
        self.verify.mode
    }

    /// How long a confirmation link works.
    pub fn confirm_link_lifetime(&self) -> Duration {
        self.verify.ttl
    }

    /// Registers as the settings say: with confirmation required
    /// ([`register_pending`](Self::register_pending)), or signed in at once
    /// ([`register`](Self::register)).
    pub async fn sign_up(
        &self,
        sessions: &Sessions,
        account: super::NewAccount,
        who: &Requester,
    ) -> Result<Registered, RegisterError> {
        match self.verify.mode {
            VerifyMode::Required => self
                .register_pending(account, who)
                .await
                .map(Registered::Pending),
            VerifyMode::Off => self
                .register(sessions, account, who)
                .await
                .map(|signed_in| Registered::SignedIn(Box::new(signed_in))),
        }
    }

    /// Registers with confirmation required. After the same validation, the
    /// same count against the IP's hourly limit and the same hash as
    /// [`register`](Self::register), whatever the address:
    /// a new or unconfirmed address keeps the registration as pending (an
    /// account registered unconfirmed keeps its own password) and gets a
    /// fresh link; a confirmed account gets "you already have an account".
    /// `None` when the address's daily mail limit stopped the mail. The
    /// caller answers alike in every case and mails off the request path.
    async fn register_pending(
        &self,
        account: super::NewAccount,
        who: &Requester,
    ) -> Result<Option<RegistrationMail>, RegisterError> {
        let valid = self
            .hasher
            .in_slot(move |_| validate(account))
            .await?
            .map_err(RegisterError::Invalid)?;
        let admitted = {
            let (limit, ip) = (self.throttle.register_max_per_hour, who.ip.clone());
            let clock = self.clock.clone();
            db::run(&self.pool, move |conn| {
                Ok::<_, ServiceError>(throttle::admitting(conn, |conn| {
                    throttle::admit_registration(conn, limit, &ip, clock.now())
                })?)
            })
            .await?
        };
        if let Err(retry_after) = admitted {
            tracing::info!(event = "registration_throttled", ip = %who.ip);
            return Err(RegisterError::Throttled { retry_after });
        }
        let password_hash = self.hasher.hash(valid.password).await?;
        let (policy, who_owned) = (self.verify, who.clone());
        let clock = self.clock.clone();
        let mail = db::write(&self.pool, move |conn| {
            let now = clock.now();
            let user = users::find_by_email(conn, &valid.email)?;
            let admitted = match throttle::admit_registration_mail(
                conn,
                policy.registration_mails_per_day,
                valid.email.as_str(),
                now,
            ) {
                Ok(()) => true,
                Err(Refusal::Failed(e)) => return Err(ServiceError::from(e)),
                Err(_) => false,
            };
            let user_id = user.as_ref().map(|u| &u.id);
            let mail = match &user {
                Some(user) if user.email_verified_at.is_some() => {
                    admitted.then(|| RegistrationMail::AlreadyRegistered {
                        email: user.email.clone(),
                        name: user.name.clone(),
                    })
                }
                found => {
                    if found.is_none() {
                        pending::insert(
                            conn,
                            &NewPending {
                                id: &uuid::Uuid::new_v4().to_string(),
                                email: &valid.email,
                                name: &valid.name,
                                password_hash: &password_hash,
                                ip: &who_owned.ip,
                                created_at: now,
                            },
                        )?;
                    }
                    let name = found.as_ref().map_or(&valid.name, |u| &u.name);
                    let purpose = LinkPurpose::Registration;
                    let link = admitted
                        .then(|| {
                            store_link(conn, &policy, purpose, &valid.email, user_id, name, now)
                        })
                        .transpose()?;
                    link.map(RegistrationMail::Link)
                }
            };
            Ok::<_, ServiceError>(mail)
        })
        .await?;
        tracing::info!(event = "registration_pending", mailed = mail.is_some(), ip = %who.ip);
        Ok(mail)
    }

    /// A fresh link for `email` (`POST /register/resend`), if it is an
    /// unconfirmed address and within its limits. Counted for every address,
    /// so the work does not tell them apart; the caller answers alike.
    pub async fn resend_confirmation(
        &self,
        email: &Email,
        who: &Requester,
    ) -> Result<Option<ConfirmLink>, ServiceError> {
        let (email, policy, clock) = (email.clone(), self.verify, self.clock.clone());
        let link = db::run(&self.pool, move |conn| {
            fresh_link(conn, &policy, &email, clock.now())
        })
        .await?;
        tracing::info!(event = "confirmation_resent", mailed = link.is_some(), ip = %who.ip);
        Ok(link)
    }

    /// A fresh link for an unconfirmed address whose password was just
    /// given at sign-in, within its limits.
    pub(super) async fn fresh_link_for(
        &self,
        email: &Email,
    ) -> Result<Option<ConfirmLink>, ServiceError> {
        let (email, policy, clock) = (email.clone(), self.verify, self.clock.clone());
        db::run(&self.pool, move |conn| {
            fresh_link(conn, &policy, &email, clock.now())
        })
        .await
    }

    /// The hashes of the pending registrations of `email`, newest first (the
    /// passwords a sign-in to an unconfirmed address may give).
    pub(super) async fn pending_hashes(&self, email: &Email) -> Result<Vec<String>, ServiceError> {
        let email = email.clone();
        db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(
                pending::for_address(conn, &email)?
                    .into_iter()
                    .map(|p| p.password_hash)
                    .collect(),
            )
        })
        .await
    }

    /// What the live link `token` confirms; `None` for a used, expired,
    /// superseded or made-up one. Changes nothing (mail scanners open links).
    pub async fn confirmation_link(
        &self,
        token: &str,
    ) -> Result<Option<LinkDetails>, ServiceError> {
        if !is_token_shaped(token) {
            return Ok(None);
        }
        let (hash, clock) = (hash_token(token), self.clock.clone());
        let link = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(confirmations::live(conn, &hash, clock.now())?)
        })
        .await?;
        Ok(link.and_then(|link| {
            Some(LinkDetails {
                purpose: purpose_of(&link.purpose)?,
                email: link.email,
            })
        }))
    }

    /// Confirms the address of the live link `token` with `password`:
    /// throttled like a sign-in to that address; the password must be that
    /// of one of its pending registrations (which becomes the account, the
    /// others discarded) or, for an account's own link, the account's. In
    /// one transaction the link is used (one use wins), the address
    /// confirmed and this client signed in; an e-mail change also ends every
    /// other session of the account.
    pub async fn confirm_address(
        &self,
        sessions: &Sessions,
        token: &str,
        password: Password,
        replacing: Option<&SessionUser>,
        who: &Requester,
    ) -> Result<(super::Entry, Confirmed), ConfirmError> {
        if !is_token_shaped(token) {
            return Err(ConfirmError::InvalidLink);
        }
        let hash = hash_token(token);
        let link = {
            let (hash, clock) = (hash.clone(), self.clock.clone());
            db::run(&self.pool, move |conn| {
                Ok::<_, ServiceError>(confirmations::live(conn, &hash, clock.now())?)
            })
            .await?
            .ok_or(ConfirmError::InvalidLink)?
        };
        let purpose = purpose_of(&link.purpose).ok_or(ConfirmError::InvalidLink)?;
        let (admission, _) = self.admit(&link.email, who).await.map_err(|e| match e {
            super::SignInError::Throttled { retry_after } => {
                ConfirmError::Throttled { retry_after }
            }
            super::SignInError::Failed(e) => ConfirmError::Failed(e),
            _ => ConfirmError::Failed(ServiceError::Inconsistent("an admission judged")),
        })?;
        let attempt = Attempt {
            link: &link,
            purpose,
            token_hash: &hash,
            replacing,
            who,
            admission,
        };
        let judged = self.judge_confirmation(sessions, attempt, password).await;
        if matches!(
            judged,
            Err(ConfirmError::Failed(_) | ConfirmError::InvalidLink)
        ) {
            self.release_attempt(&link.email, who).await;
        }
        judged
    }

    /// Checks the password of an admitted confirmation against the link's
    /// candidates and, when one matches, confirms.
    async fn judge_confirmation(
        &self,
        sessions: &Sessions,
        attempt: Attempt<'_>,
        password: Password,
    ) -> Result<(super::Entry, Confirmed), ConfirmError> {
        let Attempt {
            link,
            purpose,
            token_hash,
            replacing,
            who,
            admission,
        } = attempt;
        let candidates = {
            let (email, user_id) = (link.email.clone(), link.user_id.clone());
            db::run(&self.pool, move |conn| {
                Ok::<_, ServiceError>(match &user_id {
                    Some(id) => users::find(conn, id)?
                        .filter(|u| u.disabled_at.is_none())
                        .map(Candidate::Account)
                        .into_iter()
                        .collect(),
                    None => pending::for_address(conn, &email)?
                        .into_iter()
                        .map(Candidate::Pending)
                        .collect::<Vec<_>>(),
                })
            })
            .await?
        };
        if candidates.is_empty() {
            // Confirmed meanwhile (its pending registrations went with it),
            // or the account is gone: no password was judged.
            return Err(ConfirmError::InvalidLink);
        }
        let mut chosen = None;
        for candidate in candidates {
            let stored = match &candidate {
                Candidate::Pending(p) => p.password_hash.clone(),
                Candidate::Account(u) => u.password_hash.clone(),
            };
            if self.hasher.verify(password.clone(), Some(stored)).await? {
                chosen = Some(candidate);
                break;
            }
        }
        let Some(chosen) = chosen else {
            return Err(
                match self
                    .sign_in_failed(&link.email, link.user_id.clone(), who)
                    .await
                {
                    super::SignInError::Failed(e) => ConfirmError::Failed(e),
                    _ => ConfirmError::WrongPassword,
                },
            );
        };

        let now = self.clock.now();
        let (policy, who_owned) = (self.policy.clone(), who.clone());
        let (email, token_hash) = (link.email.clone(), token_hash.to_owned());
        let replaced = replacing.cloned();
        let (user_id, name, previous, ended, opened) = db::write(&self.pool, move |conn| {
            if let Some(old) = &replaced {
                let reason = EventKind::SignedOut.as_str();
                sessions::revoke(conn, &old.session_id, &old.user_id, now, reason)?;
            }
            confirm_rows(
                conn,
                &policy,
                &who_owned,
                purpose,
                &email,
                &token_hash,
                chosen,
                admission,
                now,
            )
        })
        .await?;
        self.waiters.judged(link.email.as_str(), &who.ip);
        let replaced = replacing.map(|old| old.session_id.clone());
        sessions
            .revoked
            .insert(ended.iter().cloned().chain(replaced), now);
        tracing::info!(
            event = if previous.is_some() {
                EventKind::EmailChanged.as_str()
            } else {
                EventKind::EmailVerified.as_str()
            },
            user_id = %user_id,
            session_id = opened.session_id().map(crate::ids::SessionId::as_str),
            second_factor_required = opened.session_id().is_none(),
            ended = ended.len(),
            ip = %who.ip
        );
        let confirmed = Confirmed {
            email: link.email.clone(),
            name: name.clone(),
            previous_email: previous,
        };
        Ok((opened.into_entry(sessions, user_id, name, now)?, confirmed))
    }

    /// Starts changing `user`'s address to `new_email`, given the current
    /// password: a link to the new address (or, when it is another account's,
    /// a notice to its owner: the answer is the same) and a notice to the
    /// current one. The address changes only when the link's form is sent
    /// with the account's password.
    pub async fn request_email_change(
        &self,
        user: &SessionUser,
        new_email: Email,
        current_password: Password,
        who: &Requester,
    ) -> Result<EmailChangeMails, EmailChangeError> {
        let user_id = user.user_id.clone();
        let stored = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(users::find(conn, &user_id)?)
        })
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or(EmailChangeError::SessionEnded)?;

        let mut invalid_email = email_problem(&new_email, "Enter the new address.");
        if invalid_email.is_none() && new_email == stored.email {
            invalid_email = Some("That is already your address.".to_owned());
        }
        let correct = self
            .hasher
            .verify(current_password, Some(stored.password_hash.clone()))
            .await?;
        let wrong_password = (!correct).then(|| "Your current password is not correct.".to_owned());
        if invalid_email.is_some() || wrong_password.is_some() {
            return Err(EmailChangeError::Invalid {
                new_email: invalid_email,
                current_password: wrong_password,
            });
        }

        let (policy, who_owned, clock) = (self.verify, who.clone(), self.clock.clone());
        let mails = db::write(&self.pool, move |conn| {
            let now = clock.now();
            let owner = users::find_by_email(conn, &new_email)?;
            // The new address's fresh-link limits, whoever owns it, so a
            // change cannot flood an address.
            let admitted = match throttle::admit_fresh_link(
                conn,
                (policy.links_per_minute, policy.links_per_day),
                new_email.as_str(),
                now,
            ) {
                Ok(()) => true,
                Err(Refusal::Failed(e)) => return Err(ServiceError::from(e)),
                Err(_) => false,
            };
            // A link is stored whoever owns the address (the account page
            // then shows the change alike), and mailed only to a free one.
            let link = admitted
                .then(|| {
                    store_link(
                        conn,
                        &policy,
                        LinkPurpose::EmailChange,
                        &new_email,
                        Some(&stored.id),
                        &stored.name,
                        now,
                    )
                })
                .transpose()?;
            let (link, address_taken) = match owner {
                Some(owner) => (None, link.map(|_| (owner.email, owner.name))),
                None => (link, None),
            };
            let kind = EventKind::EmailChangeRequested;
            events::record(conn, Some(&stored.id), None, kind, &who_owned, now)?;
            Ok::<_, ServiceError>(EmailChangeMails {
                link,
                address_taken,
                notice: (stored.email, stored.name, new_email),
            })
        })
        .await?;
        tracing::info!(
            event = EventKind::EmailChangeRequested.as_str(),
            user_id = %user.user_id,
            ip = %who.ip
        );
        Ok(mails)
    }

    /// Drops `user_id`'s pending e-mail change, if any.
    pub async fn cancel_email_change(&self, user_id: &UserId) -> Result<(), ServiceError> {
        let (user_id, clock) = (user_id.clone(), self.clock.clone());
        db::run(&self.pool, move |conn| {
            confirmations::end_changes_of(conn, &user_id, clock.now())?;
            Ok(())
        })
        .await
    }

    /// The address `user_id` is changing to, while its link is live.
    pub async fn pending_email_change(
        &self,
        user_id: &UserId,
    ) -> Result<Option<Email>, ServiceError> {
        let (user_id, clock) = (user_id.clone(), self.clock.clone());
        db::run(&self.pool, move |conn| {
            Ok(confirmations::pending_change(conn, &user_id, clock.now())?)
        })
        .await
    }
}

impl LinkPurpose {
    fn stored(self) -> &'static str {
        match self {
            Self::Registration => REGISTRATION,
            Self::EmailChange => EMAIL_CHANGE,
        }
    }
}

fn purpose_of(stored: &str) -> Option<LinkPurpose> {
    match stored {
        REGISTRATION => Some(LinkPurpose::Registration),
        EMAIL_CHANGE => Some(LinkPurpose::EmailChange),
        _ => None,
    }
}

/// Stores a new link for `email`, superseding the older ones; returns it to mail.
fn store_link(
    conn: &mut DbConnection,
    policy: &VerifyPolicy,
    purpose: LinkPurpose,
    email: &Email,
    user_id: Option<&UserId>,
    name: &str,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<ConfirmLink> {
    let token = new_token();
    confirmations::replace(
        conn,
        &NewConfirmation {
            id: &uuid::Uuid::new_v4().to_string(),
            token_hash: &hash_token(&token),
            purpose: purpose.stored(),
            email,
            user_id,
            created_at: now,
            expires_at: now + delta(policy.ttl),
        },
    )?;
    Ok(ConfirmLink {
        purpose,
        email: email.clone(),
        name: name.to_owned(),
        token,
        expires_in: policy.ttl,
    })
}

/// A fresh registration link for `email` when it is unconfirmed (an account
/// registered unconfirmed, or pending registrations) and its fresh-link
/// limits admit one; counted whatever the address.
fn fresh_link(
    conn: &mut DbConnection,
    policy: &VerifyPolicy,
    email: &Email,
    now: chrono::NaiveDateTime,
) -> Result<Option<ConfirmLink>, ServiceError> {
    let admitted = throttle::admitting(conn, |conn| {
        throttle::admit_fresh_link(
            conn,
            (policy.links_per_minute, policy.links_per_day),
            email.as_str(),
            now,
        )?;
        let user = users::find_by_email(conn, email)?;
        let (user_id, name) = match user {
            Some(user) if user.email_verified_at.is_some() => return Ok(None),
            Some(user) => (Some(user.id), user.name),
            None => match pending::for_address(conn, email)?.into_iter().next() {
                Some(newest) => (None, newest.name),
                None => return Ok(None),
            },
        };
        let purpose = LinkPurpose::Registration;
        Ok(Some(store_link(
            conn,
            policy,
            purpose,
            email,
            user_id.as_ref(),
            &name,
            now,
        )?))
    })?;
    Ok(admitted.ok().flatten().flatten())
}

/// The rows of a confirmation, in one transaction: the link used (or
/// nothing happens), the address confirmed or changed, the address's other
/// links and pending registrations gone, this client's session made (or its
/// second factor asked for).
/// Returns the account, its name, the address replaced (an e-mail change),
/// the sessions ended and the new session.
#[expect(clippy::too_many_arguments, reason = "one confirmation's parts")]
#[expect(clippy::type_complexity, reason = "read once, by the caller")]
fn confirm_rows(
    conn: &mut DbConnection,
    policy: &super::SessionPolicy,
    who: &Requester,
    purpose: LinkPurpose,
    email: &Email,
    token_hash: &str,
    chosen: Candidate,
    admission: throttle::SignInAdmission,
    now: chrono::NaiveDateTime,
) -> Result<
    (
        UserId,
        String,
        Option<Email>,
        Vec<crate::ids::SessionId>,
        super::two_factor::Opened,
    ),
    ConfirmError,
> {
    // The account's row first, as every transaction that changes it takes it.
    if let Candidate::Account(user) = &chosen {
        users::lock(conn, &user.id)?;
    }
    if !confirmations::use_link(conn, token_hash, now)? {
        return Err(ConfirmError::InvalidLink);
    }
    let (user_id, name, previous, ended) = match chosen {
        Candidate::Pending(p) => {
            let user_id = UserId::random();
            let inserted = users::insert(
                conn,
                &NewUser {
                    id: &user_id,
                    email,
                    name: &p.name,
                    password_hash: &p.password_hash,
                    created_at: now,
                    updated_at: now,
                    registration_ip: Some(&p.ip),
                    email_verified_at: Some(now),
                },
            );
            match inserted {
                Ok(()) => {}
                // An account took the address meanwhile.
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    return Err(ConfirmError::InvalidLink);
                }
                Err(e) => return Err(e.into()),
            }
            events::record(conn, Some(&user_id), None, EventKind::Registered, who, now)?;
            (user_id, p.name, None, Vec::new())
        }
        Candidate::Account(user) => {
            // A registration link confirms the address it was sent to; a
            // change replaces the address the account had when its password
            // was checked.
            let current = match purpose {
                LinkPurpose::Registration => email,
                LinkPurpose::EmailChange => &user.email,
            };
            let version = user.password_version;
            let changed = users::confirm_email(conn, &user.id, version, current, email, now);
            match changed {
                Ok(true) => {}
                Ok(false) => return Err(ConfirmError::InvalidLink),
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    return Err(ConfirmError::InvalidLink);
                }
                Err(e) => return Err(e.into()),
            }
            match purpose {
                LinkPurpose::EmailChange => {
                    // Links mailed to the old address end with it.
                    resets::invalidate_all(conn, &user.id, now)?;
                    confirmations::delete_for_user(conn, &user.id)?;
                    let reason = EventKind::EmailChanged.as_str();
                    let ended = sessions::revoke_all_except(conn, &user.id, None, now, reason)?;
                    (user.id, user.name, Some(user.email), ended)
                }
                LinkPurpose::Registration => (user.id, user.name, None, Vec::new()),
            }
        }
    };
    // The used link goes with the address's others (a race's loser finds
    // none to use).
    confirmations::delete_for_address(conn, email)?;
    pending::delete_for_address(conn, email)?;
    throttle::record_sign_in_success(conn, admission, email.as_str(), &who.ip)?;
    // With two-factor on, the link leads to the second factor.
    let opened = super::two_factor::open(conn, policy, &user_id, who, false, None, now)?;
    let kind = if previous.is_some() {
        EventKind::EmailChanged
    } else {
        EventKind::EmailVerified
    };
    events::record(conn, Some(&user_id), opened.session_id(), kind, who, now)?;
    Ok((user_id, name, previous, ended, opened))
}
