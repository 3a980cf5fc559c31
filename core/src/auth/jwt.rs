//! Access tokens: HS256 JWTs signed with the server's own keys.
//!
//! Verification trusts nothing in the token's header but `alg` (which must be
//! HS256) and `kid` (which must name one of our keys). Key-carrying or
//! key-locating headers (`jku`, `jwk`, `x5u`, `x5c`) and `crit` make a token
//! invalid: a token is only ever checked with keys from the in-memory map.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

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

/// Tokens remembered as verified, at most. Past it, expired ones are
/// dropped first, then all (a cache miss only costs a full verification).
const VERIFIED_MAX: usize = 4096;

/// Signature → (whole token, its claims).
type Verified = HashMap<Box<str>, (Box<str>, Claims)>;

/// The signing key and every key still accepted for verification, by `kid`,
/// and the tokens already verified with them.
pub struct JwtKeys {
    signing_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    validation: Validation,
    ttl: Duration,
    /// Signature → the whole token and its claims, for tokens that passed
    /// every check (keyed by the short signature, compared in full). The keys
    /// cannot change under a running process, so an entry stays true until
    /// its `exp`; callers still check revocation every time.
    verified: RwLock<Verified>,
}

impl JwtKeys {
    /// `current` signs; `previous` secrets still verify (key rotation).
    pub fn new(current: &Secret, previous: &[Secret], ttl: Duration) -> Self {
        super::hs256::install();
        let signing_kid = kid_for(current);
        let decoding = std::iter::once(current)
            .chain(previous)
            .map(|s| (kid_for(s), DecodingKey::from_secret(s.expose())))
            .collect();

        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
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
            verified: RwLock::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a token for `sub`/`sid`, valid from now for the configured lifetime.
    pub fn issue(
        &self,
        user_id: &str,
        session_id: &str,
        name: &str,
        auth_time: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
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
        let now = chrono::Utc::now().timestamp();
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(i64::MAX);
        let fresh =
            |c: &Claims| now <= c.exp.saturating_add(leeway) && now.saturating_add(leeway) >= c.nbf;
        let signature = token.rsplit('.').next().unwrap_or(token);
        if let Some((_, claims)) = self
            .verified
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(signature)
            .filter(|(whole, c)| **whole == *token && fresh(c))
        {
            return Ok(claims.clone());
        }
        let claims = self.verify_fully(token)?;
        let mut verified = self
            .verified
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, (_, c)| fresh(c));
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(signature.into(), (token.into(), claims.clone()));
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
            .issue("user-1", "session-1", "Ada", 1_700_000_000)
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
        let mut token = keys.issue("u", "s", "n", 0).unwrap();
        let last = token.pop().unwrap();
        token.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.verify(&token).is_err());
    }

    #[test]
    fn previous_secrets_verify_and_unknown_kids_fail() {
        let old = Secret::new("the-previous-secret-that-is-32-bytes-long");
        let old_keys = JwtKeys::new(&old, &[], Duration::from_secs(60));
        let token = old_keys.issue("u", "s", "n", 0).unwrap();
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
        let token = keys.issue("u", "s", "n", 0).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"HS256","kid":"{}","jku":"https://evil.example/keys"}}"#,
            kid_for(&Secret::new("an-unguessable-test-secret-of-32-bytes!"))
        ));
        assert!(keys.verify(&format!("{header}.{rest}")).is_err());
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let keys = JwtKeys::new(
            &Secret::new("an-unguessable-test-secret-of-32-bytes!"),
            &[],
            Duration::from_secs(1),
        );
        let token = keys.issue("u", "s", "n", 0).unwrap();
        assert!(keys.verify(&token).is_ok());
        assert!(keys.verify(&token).is_ok(), "served from what was verified");
        std::thread::sleep(Duration::from_secs(1 + LEEWAY_SECS + 1));
        assert!(keys.verify(&token).is_err(), "expired, remembered or not");
    }

    #[test]
    fn a_changed_byte_is_never_served_from_memory() {
        let keys = keys();
        let token = keys.issue("u", "s", "n", 0).unwrap();
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
