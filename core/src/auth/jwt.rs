//! Access tokens: HS256 JWTs signed with the server's own keys.
//!
//! Verification trusts nothing in the token's header but `alg` (which must be
//! HS256) and `kid` (which must name one of our keys). Key-carrying or
//! key-locating headers (`jku`, `jwk`, `x5u`, `x5c`) and `crit` make a token
//! invalid: a token is only ever checked with keys from the in-memory map.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::clock::Clock;
use crate::ids::{SessionId, UserId};
use crate::secret::Secret;

pub const ISSUER: &str = "gatehouse";
pub const AUDIENCE: &str = "gatehouse-web";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;
/// Longer cookies are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 4096;

/// What an access token says. Nothing personal beyond the display name, which
/// lets pages greet the user without a database query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id (a row in `sessions`).
    pub sid: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// When the user signed in (Unix seconds).
    pub auth_time: i64,
    pub name: String,
}

/// Why a token was refused; only ever logged at debug level.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token too long")]
    TooLong,
    #[error("missing or unknown kid")]
    UnknownKey,
    #[error("forbidden header field")]
    ForbiddenHeader,
    #[error(transparent)]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// The signing key and every key still accepted for verification, by `kid`,
/// and the tokens already verified with them.
pub struct JwtKeys {
    signing_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    /// Signature, `alg`, `iss`, `aud` and the required claims; `exp` and
    /// `nbf` are checked here against [`Self::clock`].
    validation: Validation,
    ttl: Duration,
    clock: Clock,
    verified: VerifiedTokens,
}

impl JwtKeys {
    /// `current` signs; `previous` secrets still verify (key rotation).
    /// Tokens are issued and checked on the system clock until
    /// [`Self::with_clock`] gives another.
    pub fn new(current: &Secret, previous: &[Secret], ttl: Duration) -> Self {
        super::hs256::install();
        let signing_kid = kid_for(current);
        let decoding = std::iter::once(current)
            .chain(previous)
            .map(|s| (kid_for(s), DecodingKey::from_secret(s.expose())))
            .collect();

        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        // Checked against the injected clock instead (`fresh`).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        // `iat`, `sid` and the rest are required by `Claims` itself.
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss", "aud"]);

        Self {
            signing_kid,
            encoding: EncodingKey::from_secret(current.expose()),
            decoding,
            validation,
            ttl,
            clock: Clock::system(),
            verified: VerifiedTokens::default(),
        }
    }

    /// The same keys, issuing and checking tokens on `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a token for `sub`/`sid`, valid from now for the configured lifetime.
    pub fn issue(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        name: &str,
        auth_time: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = self.clock.timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl),
            auth_time,
            name: name.to_owned(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
    }

    /// Verifies signature, algorithm, `kid`, `iss`, `aud`, `exp` and `nbf`.
    /// A token this process has verified before is only checked against the
    /// clock (`exp` and `nbf`, with the same leeway): same string, same
    /// signature, same keys.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let now = self.clock.timestamp();
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        let claims = self.verify_fully(token)?;
        if now > claims.exp.saturating_add(LEEWAY) {
            return Err(TokenError::Invalid(ErrorKind::ExpiredSignature.into()));
        }
        if now.saturating_add(LEEWAY) < claims.nbf {
            return Err(TokenError::Invalid(ErrorKind::ImmatureSignature.into()));
        }
        self.verified.insert(token, &claims, now);
        Ok(claims)
    }

    fn verify_fully(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(TokenError::ForbiddenHeader);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        Ok(jsonwebtoken::decode::<Claims>(token, key, &self.validation)?.claims)
    }
}

/// [`LEEWAY_SECS`] as a timestamp difference.
const LEEWAY: i64 = LEEWAY_SECS as i64;

/// Whether `claims` hold at `now` (Unix seconds), within the leeway.
fn fresh(claims: &Claims, now: i64) -> bool {
    now <= claims.exp.saturating_add(LEEWAY) && now.saturating_add(LEEWAY) >= claims.nbf
}

/// Tokens remembered as verified, at most. Past it, expired ones are
/// dropped first, then all (a miss only costs a full verification).
const VERIFIED_MAX: usize = 4096;

/// Tokens that passed every check, so a token seen again costs a map lookup
/// instead of an HMAC and a JSON parse (the largest single saving on a page
/// request). Keyed by the short signature and compared in full. The keys
/// cannot change under a running process, so an entry stays true until its
/// `exp`, which is checked on the caller's clock at every lookup; callers
/// still check revocation every time.
#[derive(Default)]
struct VerifiedTokens {
    map: RwLock<Verified>,
}

/// Signature → (whole token, its claims).
type Verified = HashMap<Box<str>, (Box<str>, Claims)>;

impl VerifiedTokens {
    fn signature(token: &str) -> &str {
        token.rsplit('.').next().unwrap_or(token)
    }

    /// The claims of `token` if it was verified before and still holds at `now`.
    fn get(&self, token: &str, now: i64) -> Option<Claims> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(Self::signature(token))
            .filter(|(whole, c)| **whole == *token && fresh(c, now))
            .map(|(_, c)| c.clone())
    }

    /// Remembers a token that passed every check at `now`.
    fn insert(&self, token: &str, claims: &Claims, now: i64) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= VERIFIED_MAX {
            map.retain(|_, (_, c)| fresh(c, now));
            if map.len() >= VERIFIED_MAX {
                map.clear();
            }
        }
        map.insert(
            Self::signature(token).into(),
            (token.into(), claims.clone()),
        );
    }
}

/// A key's id: the first 8 bytes of its SHA-256, in hex. Derived from the key,
/// so restarting with the same secret keeps every token valid.
pub fn kid_for(secret: &Secret) -> String {
    let digest = Sha256::digest(secret.expose());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// A token for user `u`, session `s`, signed by `keys`.
    fn token_of(keys: &JwtKeys) -> String {
        keys.issue(
            &UserId::from_stored("u"),
            &SessionId::from_stored("s"),
            "n",
            0,
        )
        .unwrap()
    }

    fn keys() -> JwtKeys {
        JwtKeys::new(
            &Secret::new("an-unguessable-test-secret-of-32-bytes!"),
            &[],
            Duration::from_secs(600),
        )
    }

    #[test]
    fn issued_tokens_verify() {
        let keys = keys();
        let token = keys
            .issue(
                &UserId::from_stored("user-1"),
                &SessionId::from_stored("session-1"),
                "Ada",
                1_700_000_000,
            )
            .unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.sid.as_str()),
            ("user-1", "session-1")
        );
        assert_eq!(claims.name, "Ada");
    }

    #[test]
    fn a_flipped_signature_fails() {
        let keys = keys();
        let mut token = token_of(&keys);
        let last = token.pop().unwrap();
        token.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.verify(&token).is_err());
    }

    #[test]
    fn previous_secrets_verify_and_unknown_kids_fail() {
        let old = Secret::new("the-previous-secret-that-is-32-bytes-long");
        let old_keys = JwtKeys::new(&old, &[], Duration::from_secs(60));
        let token = token_of(&old_keys);
        let rotated = JwtKeys::new(
            &Secret::new("the-brand-new-secret-that-is-32-bytes-long"),
            &[old],
            Duration::from_secs(60),
        );
        assert!(rotated.verify(&token).is_ok());
        assert!(matches!(keys().verify(&token), Err(TokenError::UnknownKey)));
    }

    #[test]
    fn key_locating_headers_are_refused() {
        let keys = keys();
        let token = token_of(&keys);
        let (_, rest) = token.split_once('.').unwrap();
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"HS256","kid":"{}","jku":"https://evil.example/keys"}}"#,
            kid_for(&Secret::new("an-unguessable-test-secret-of-32-bytes!"))
        ));
        assert!(keys.verify(&format!("{header}.{rest}")).is_err());
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let (clock, control) = Clock::adjustable();
        let keys = JwtKeys::new(
            &Secret::new("an-unguessable-test-secret-of-32-bytes!"),
            &[],
            Duration::from_secs(1),
        )
        .with_clock(clock);
        let token = token_of(&keys);
        assert!(keys.verify(&token).is_ok());
        assert!(keys.verify(&token).is_ok(), "served from what was verified");
        control.advance(Duration::from_secs(1 + LEEWAY_SECS + 1));
        assert!(keys.verify(&token).is_err(), "expired, remembered or not");
    }

    #[test]
    fn a_token_expires_on_the_keys_clock_even_the_first_time_it_is_seen() {
        let (clock, control) = Clock::adjustable();
        let keys = JwtKeys::new(
            &Secret::new("an-unguessable-test-secret-of-32-bytes!"),
            &[],
            Duration::from_secs(60),
        )
        .with_clock(clock.clone());
        let token = token_of(&keys);
        // Another process's keys, same secret: nothing remembered.
        let fresh_keys = JwtKeys::new(
            &Secret::new("an-unguessable-test-secret-of-32-bytes!"),
            &[],
            Duration::from_secs(60),
        )
        .with_clock(clock);
        control.advance(Duration::from_secs(60 + LEEWAY_SECS - 1));
        assert!(fresh_keys.verify(&token).is_ok(), "within the leeway");
        control.advance(Duration::from_secs(2));
        assert!(matches!(
            fresh_keys.verify(&token),
            Err(TokenError::Invalid(e)) if *e.kind() == ErrorKind::ExpiredSignature
        ));
    }

    #[test]
    fn a_changed_byte_is_never_served_from_memory() {
        let keys = keys();
        let token = token_of(&keys);
        assert!(keys.verify(&token).is_ok());
        let mut forged = token.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.verify(&forged).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let keys = keys();
        for input in [
            "",
            ".",
            "..",
            "a.b.c",
            "\u{0}",
            "e30.e30.e30",
            &"x".repeat(5000),
        ] {
            assert!(keys.verify(input).is_err());
        }
    }

    proptest::proptest! {
        /// The decoder refuses arbitrary bytes without panicking.
        #[test]
        fn arbitrary_input_never_verifies(raw in proptest::prelude::any::<Vec<u8>>()) {
            let input = String::from_utf8_lossy(&raw);
            proptest::prop_assert!(keys().verify(&input).is_err());
        }

        /// Three base64url segments of arbitrary content never verify either.
        #[test]
        fn arbitrary_segments_never_verify(
            header in proptest::prelude::any::<Vec<u8>>(),
            payload in proptest::prelude::any::<Vec<u8>>(),
            signature in proptest::prelude::any::<Vec<u8>>(),
        ) {
            let token = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload),
                URL_SAFE_NO_PAD.encode(signature)
            );
            proptest::prop_assert!(keys().verify(&token).is_err());
        }
    }
}
