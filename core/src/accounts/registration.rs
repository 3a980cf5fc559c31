//! Registration: validation (e-mail normalisation, name rules, password
//! policy) and creating the account with its first session.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::events::{self, EventKind};
use super::service::{
    Accounts, FieldErrors, RegisterError, Requester, ServiceError, SessionUser, Sessions, SignedIn,
};
use super::sessions::{self, NewTokens};
use super::throttle;
use crate::auth::password::new_password_problem;
use crate::db::{self, models::NewUser, pending, users};
use crate::ids::{Email, UserId};
use crate::secret::Password;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_EMAIL_BYTES: usize = 254;
/// What every door says when an e-mail is already registered.
pub const EMAIL_TAKEN: &str = "An account with this email already exists. Sign in instead?";

/// What a person registers with, as typed.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: String,
    pub email: Email,
    pub password: Password,
}

/// An account an operator created.
#[derive(Debug, Clone)]
pub struct CreatedUser {
    pub id: UserId,
    /// The address as stored (normalised).
    pub email: Email,
}

/// A registration that passed validation: trimmed name, normalised e-mail.
pub(super) struct Valid {
    pub(super) name: String,
    pub(super) email: Email,
    pub(super) password: Password,
}

impl Accounts {
    /// Creates an account and signs it in: limit check → validation → hash →
    /// user, session and event in one transaction. A taken e-mail is a field
    /// error, also when two registrations race (the unique index decides).
    pub async fn register(
        &self,
        sessions: &Sessions,
        account: NewAccount,
        who: &Requester,
    ) -> Result<SignedIn, RegisterError> {
        self.registration_admitted(who).await?;
        let (user_id, name, _, session) = self.insert_account(account, who, true).await?;
        let Some(session) = session else {
            return Err(ServiceError::Inconsistent("a registration made no session").into());
        };
        tracing::info!(
            event = EventKind::Registered.as_str(),
            user_id = %user_id,
            session_id = %session.id,
            ip = %who.ip
        );
        let user = SessionUser {
            user_id,
            session_id: session.id.clone(),
            name,
            auth_time: self.clock.timestamp(),
        };
        Ok(sessions.issue(user, session)?)
    }

    /// Refuses a registration from an address that has reached the hourly
    /// limit (accounts and pending registrations made from it).
    pub(super) async fn registration_admitted(&self, who: &Requester) -> Result<(), RegisterError> {
        let blocked = {
            let (limits, ip) = (self.throttle, who.ip.clone());
            let clock = self.clock.clone();
            db::run(&self.pool, move |conn| {
                throttle::registration_blocked_for(conn, &limits, &ip, clock.now())
                    .map_err(ServiceError::from)
            })
            .await?
        };
        match blocked {
            Some(retry_after) => {
                tracing::info!(event = "registration_throttled", ip = %who.ip);
                Err(RegisterError::Throttled { retry_after })
            }
            None => Ok(()),
        }
    }

    /// Creates an account for an operator (`gatehouse user create`): the same
    /// validation and password policy as the form, no session, not counted by
    /// the hourly registration limit, and its address counted as confirmed.
    pub async fn create_user(
        &self,
        account: NewAccount,
        who: &Requester,
    ) -> Result<CreatedUser, RegisterError> {
        let (id, _, email, _) = self.insert_account(account, who, false).await?;
        tracing::info!(event = EventKind::Registered.as_str(), user_id = %id, by = "operator");
        Ok(CreatedUser { id, email })
    }

    /// Validates, hashes and inserts an account with its `registered` event,
    /// and for a self-registration its first session, in one transaction.
    /// Returns its id, name and e-mail as stored, and the session.
    async fn insert_account(
        &self,
        account: NewAccount,
        who: &Requester,
        self_service: bool,
    ) -> Result<(UserId, String, Email, Option<NewTokens>), RegisterError> {
        let valid = self
            .hasher
            .in_slot(move |_| validate(account))
            .await?
            .map_err(RegisterError::Invalid)?;
        let password_hash = self.hasher.hash(valid.password).await?;

        let user_id = UserId::random();
        let now = self.clock.now();
        let (name, email) = (valid.name, valid.email);
        let inserted = {
            let (policy, who) = (self.policy.clone(), who.clone());
            let (user_id, name, email) = (user_id.clone(), name.clone(), email.clone());
            db::run(&self.pool, move |conn| {
                Ok::<_, ServiceError>(db::write_transaction(conn, |conn| {
                    users::insert(
                        conn,
                        &NewUser {
                            id: &user_id,
                            email: &email,
                            name: &name,
                            password_hash: &password_hash,
                            created_at: now,
                            updated_at: now,
                            registration_ip: self_service.then_some(who.ip.as_str()),
                            // A registration that signs in at once has not
                            // confirmed its address; an operator vouches.
                            email_verified_at: (!self_service).then_some(now),
                        },
                    )?;
                    // Registrations pending for the address can no longer
                    // become its account.
                    pending::delete_for_address(conn, &email)?;
                    let session = if self_service {
                        Some(sessions::create(conn, &policy, &user_id, &who, false, now)?)
                    } else {
                        None
                    };
                    let sid = session.as_ref().map(|s| &s.id);
                    events::record(conn, Some(&user_id), sid, EventKind::Registered, &who, now)?;
                    Ok::<_, DieselError>(session)
                }))
            })
            .await?
        };
        match inserted {
            Ok(session) => Ok((user_id, name, email, session)),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                Err(RegisterError::EmailTaken { email })
            }
            Err(e) => Err(ServiceError::from(e).into()),
        }
    }
}

/// Trims and checks a registration; CPU-bound (the strength check).
pub(super) fn validate(account: NewAccount) -> Result<Valid, FieldErrors> {
    let name = account.name.trim().to_owned();
    let email = account.email;
    let mut errors = FieldErrors::default();

    let name_chars = name.chars().count();
    if name_chars == 0 {
        errors.name = Some("Enter your name.".into());
    } else if name_chars > MAX_NAME_CHARS {
        errors.name = Some(format!("Use at most {MAX_NAME_CHARS} characters."));
    } else if name.chars().any(char::is_control) {
        errors.name = Some("Your name cannot contain control characters.".into());
    }

    errors.email = email_problem(&email, "Enter your email address.");

    errors.password = new_password_problem(account.password.expose(), email.as_str(), &name);

    if errors.is_empty() {
        Ok(Valid {
            name,
            email,
            password: account.password,
        })
    } else {
        Err(errors)
    }
}

/// What is wrong with `email` as an account's address, if anything;
/// `missing` says what an empty one is told.
pub(super) fn email_problem(email: &Email, missing: &str) -> Option<String> {
    if email.is_empty() {
        Some(missing.to_owned())
    } else if !is_valid_email(email.as_str()) {
        Some("Enter a valid email address, like name@example.com.".to_owned())
    } else {
        None
    }
}

/// E-mail addresses are stored and compared trimmed and lower-cased; a new
/// address is normalised once, before it is validated, and stored as it came
/// out.
/// A plain `local@domain` and nothing else. The crate's defaults also accept
/// display text (`Support Team <mallory@example.com>`, whose display part may
/// hold anything, control characters included) and domain literals
/// (`a@[127.0.0.1]`); a quoted local part may hold spaces and tabs. An address
/// is shown to people (pages, mails, the operator's terminal) and compared as
/// a key, so none of that is accepted: no display text, no domain literal, a
/// dot in the domain, and no whitespace or control character anywhere.
fn is_valid_email(email: &str) -> bool {
    let plain = email_address::Options::default()
        .without_display_text()
        .without_domain_literal()
        .with_required_tld();
    email.len() <= MAX_EMAIL_BYTES
        && !email.chars().any(|c| c.is_control() || c.is_whitespace())
        && email_address::EmailAddress::parse_with_options(email, plain).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_are_valid_emails() {
        for email in [
            "ada@example.com",
            "ada.lovelace+gatehouse@mail.example.co.uk",
            "o'hara@example.com",
            "zoë@example.com",
            "ada@xn--bcher-kva.example",
        ] {
            assert!(is_valid_email(email), "{email}");
        }
    }

    #[test]
    fn display_text_whitespace_and_control_characters_are_not_emails() {
        for email in [
            "Support Team <mallory@example.com>",
            "<mallory@example.com>",
            "mallory@example.com <ada@example.com>",
            "\"mallory example\"@example.com",
            "\"mallory\texample\"@example.com",
            "mallory\u{1b}@example.com",
            "mallory@example.com\r\nBcc: ada@example.com",
            "mallory@[127.0.0.1]",
            "mallory@localhost",
        ] {
            assert!(!is_valid_email(email), "{email:?}");
        }
    }
}
