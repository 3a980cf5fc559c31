//! Password hashing with bcrypt.
//!
//! bcrypt reads only the first 72 bytes of a password; Gatehouse refuses longer
//! ones here (and with a message at registration), so no password is ever
//! silently cut short and no two different passwords share a hash.
//!
//! Hashing is CPU-bound: the async [`PasswordHasher::hash`] and
//! [`PasswordHasher::verify`] take a hashing slot (FIFO, at most one per CPU)
//! and run bcrypt on the hasher's own threads (as many as slots), leaving the
//! async workers free to serve pages. Nothing else in the crate calls bcrypt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngCore as _;

use crate::ids::Email;
use crate::secret::Password;
use crate::threads::BlockingThreads;

/// bcrypt's input limit.
pub const MAX_PASSWORD_BYTES: usize = 72;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    cost: u32,
    /// Verified against when the e-mail is unknown, so that an unknown e-mail
    /// costs the same time as a wrong password.
    dummy_hash: String,
    /// The hashing slots: one thread per CPU.
    threads: BlockingThreads,
    /// bcrypt verifications run so far.
    verifications: AtomicU64,
}

/// Hashing could not be done.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Bcrypt(#[from] bcrypt::BcryptError),
    /// The hashing threads could not be started.
    #[error("cannot start the hashing threads: {0}")]
    Threads(#[from] std::io::Error),
    /// The blocking task panicked or was cancelled.
    #[error("hashing task failed: {0}")]
    Task(String),
}

impl PasswordHasher {
    /// Builds the hasher and its dummy hash (one bcrypt run at `cost`).
    pub fn new(cost: u32) -> Result<Self, HashError> {
        let mut random = [0u8; 32];
        rand::rng().fill_bytes(&mut random);
        let dummy_hash = bcrypt::hash(random, cost)?;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            inner: Arc::new(Inner {
                cost,
                dummy_hash,
                threads: BlockingThreads::new("gatehouse-bcrypt", cpus)?,
                verifications: AtomicU64::new(0),
            }),
        })
    }

    pub fn cost(&self) -> u32 {
        self.inner.cost
    }

    /// Runs `f` in a hashing slot on the hasher's threads: waits (FIFO) for
    /// one of the slots, at most one per CPU, so sign-in storms queue here
    /// instead of starving the async workers.
    pub async fn in_slot<T, F>(&self, f: F) -> Result<T, HashError>
    where
        F: FnOnce(&Self) -> T + Send + 'static,
        T: Send + 'static,
    {
        let this = self.clone();
        self.inner
            .threads
            .run(None, move || f(&this))
            .await
            .map_err(|e| HashError::Task(e.to_string()))
    }

    /// Hashes a password in a hashing slot.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        Ok(self
            .in_slot(move |h| h.hash_blocking(password.expose()))
            .await??)
    }

    /// Verifies a password in a hashing slot (see [`verify_blocking`](Self::verify_blocking)).
    pub async fn verify(
        &self,
        password: Password,
        hash: Option<String>,
    ) -> Result<bool, HashError> {
        self.in_slot(move |h| h.verify_blocking(password.expose(), hash.as_deref()))
            .await
    }

    /// Hashes a password of at most [`MAX_PASSWORD_BYTES`] bytes. Blocking.
    pub fn hash_blocking(&self, password: &str) -> Result<String, bcrypt::BcryptError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(bcrypt::BcryptError::Truncation(password.len()));
        }
        bcrypt::hash(password, self.inner.cost)
    }

    /// Checks `password` against `hash`, or against the dummy hash when there is
    /// no user, so both cases take one bcrypt verification. A malformed stored
    /// hash or an over-long password counts as a mismatch. Blocking.
    pub fn verify_blocking(&self, password: &str, hash: Option<&str>) -> bool {
        self.inner.verifications.fetch_add(1, Ordering::Relaxed);
        let too_long = password.len() > MAX_PASSWORD_BYTES;
        // A too-long password still costs one verification, against the dummy.
        let target = match hash {
            Some(hash) if !too_long => hash,
            _ => &self.inner.dummy_hash,
        };
        let matched = match bcrypt::verify(password, target) {
            Ok(matched) => matched && !too_long,
            Err(e) => {
                tracing::error!(error = %e, "stored password hash cannot be read");
                false
            }
        };
        matched && hash.is_some()
    }

    /// How many bcrypt verifications this hasher has run.
    pub fn verifications(&self) -> u64 {
        self.inner.verifications.load(Ordering::Relaxed)
    }

    /// What is wrong with `password` as the new password of the account with
    /// this `email` and `name` ([`new_password_problem`]), checked in a
    /// hashing slot (the strength check is CPU-bound for long inputs).
    pub async fn new_password_problem(
        &self,
        password: Password,
        email: Email,
        name: String,
    ) -> Result<Option<String>, HashError> {
        self.in_slot(move |_| new_password_problem(password.expose(), email.as_str(), &name))
            .await
    }

    /// Whether `hash` was made at another cost than the configured one.
    pub fn needs_rehash(&self, hash: &str) -> bool {
        hash_cost(hash) != Some(self.inner.cost)
    }
}

/// The rules every new password meets, at registration, on a password change
/// and on a reset: its length first, then how easily it is guessed, knowing
/// the account's e-mail and name. `None` when it passes. CPU-bound: call it
/// on the hashing threads ([`PasswordHasher::new_password_problem`]).
pub fn new_password_problem(password: &str, email: &str, name: &str) -> Option<String> {
    length_problem(password).or_else(|| strength_problem(password, &[email, name]))
}

/// Length rules for a new password.
fn length_problem(password: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Some(format!("Use at least {MIN_PASSWORD_CHARS} characters."))
    } else if password.len() > MAX_PASSWORD_BYTES {
        Some(format!(
            "Use at most {MAX_PASSWORD_BYTES} bytes; this one has {}. Letters with accents \
             take 2 bytes and emoji 4, so a long passphrase may need a few words less.",
            password.len()
        ))
    } else {
        None
    }
}

/// Lowest zxcvbn score (0–4) accepted for a new password: 4, "very
/// unguessable", about 10^10 guesses or more. Throttling stops online guessing
/// long before either score matters; the score is for a stolen database. At
/// score 3 (10^8) a word with the usual season-year-symbols decoration passes
/// (`Summer2024!!` scores exactly 3), and 10^8 bcrypt guesses at cost 12 are
/// hours on one GPU; 10^10 are months. A passphrase of three or four unrelated
/// words, which the form recommends, scores 4 easily.
pub const MIN_STRENGTH: u8 = 4;

/// Why a new password is too easy to guess, in zxcvbn's words, or `None` when
/// it scores at least [`MIN_STRENGTH`]. `related` are the user's own e-mail
/// and name, which make a password weaker when it contains them. CPU-bound for
/// long inputs: call it on the blocking pool.
fn strength_problem(password: &str, related: &[&str]) -> Option<String> {
    let entropy = zxcvbn::zxcvbn(password, related);
    if u8::from(entropy.score()) >= MIN_STRENGTH {
        return None;
    }
    let mut message = String::from("This password is too easy to guess.");
    if let Some(feedback) = entropy.feedback() {
        if let Some(warning) = feedback.warning() {
            message.push(' ');
            message.push_str(&warning.to_string());
        }
        for suggestion in feedback.suggestions() {
            message.push(' ');
            message.push_str(&suggestion.to_string());
        }
    } else {
        message.push_str(" Add another word or two; uncommon words are better.");
    }
    Some(message)
}

/// The cost field of a `$2b$12$…` hash.
fn hash_cost(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_the_right_password_only() {
        let hasher = PasswordHasher::new(4).unwrap();
        let hash = hasher
            .hash_blocking("correct horse battery staple")
            .unwrap();
        assert!(hasher.verify_blocking("correct horse battery staple", Some(&hash)));
        assert!(!hasher.verify_blocking("correct horse battery stapl", Some(&hash)));
    }

    #[test]
    fn unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(4).unwrap();
        assert!(!hasher.verify_blocking("anything at all", None));
        assert!(!hasher.verify_blocking("", None));
    }

    #[test]
    fn over_long_and_malformed_inputs_are_mismatches() {
        let hasher = PasswordHasher::new(4).unwrap();
        let hash = hasher.hash_blocking(&"a".repeat(72)).unwrap();
        assert!(hasher.verify_blocking(&"a".repeat(72), Some(&hash)));
        assert!(!hasher.verify_blocking(&"a".repeat(73), Some(&hash)));
        assert!(hasher.hash_blocking(&"a".repeat(73)).is_err());
        assert!(!hasher.verify_blocking("whatever", Some("not a bcrypt hash")));
    }

    #[test]
    fn weak_and_personal_passwords_are_refused() {
        assert!(strength_problem("password1234", &[]).is_some());
        assert!(
            strength_problem("ada@example.com!", &["ada@example.com", "Ada Lovelace"]).is_some()
        );
        assert!(strength_problem("correct horse battery staple", &[]).is_none());
        for common in [
            "Summer2024!!",
            "Password1234",
            "Qwerty123456",
            "iloveyou2024",
        ] {
            assert!(
                strength_problem(common, &[]).is_some(),
                "{common} was accepted"
            );
        }
    }

    #[test]
    fn detects_a_changed_cost() {
        let hasher = PasswordHasher::new(5).unwrap();
        assert!(!hasher.needs_rehash(&hasher.hash_blocking("long enough password").unwrap()));
        assert!(hasher.needs_rehash(&bcrypt::hash("long enough password", 4).unwrap()));
    }
}
