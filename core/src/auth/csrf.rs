//! The CSRF token primitive: `MAC(key, cookie value ‖ session id)` under a
//! key derived from the server secret. The HTTP side (cookies, forms, the
//! origin check) is `http::csrf`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ids::SessionId;
use crate::secret::Secret;

/// Session-bound tokens remembered, at most (about 200 bytes each). Past it
/// the map is emptied: a miss only costs computing the token again.
const REMEMBERED_MAX: usize = 4096;

/// The key that signs form tokens, with BLAKE3 in its keyed mode (a MAC by
/// design, and a fraction of HMAC-SHA-256's cost for inputs this short: a
/// form token is made for every page that has a form). Derived from the JWT
/// secret, so one secret configures the site, yet the two uses never share a
/// key.
///
/// A signed-in visitor's pages all carry the same token (same cookie, same
/// session), so those tokens are also [`Remembered`]. Verifying a submitted
/// token always computes it.
pub struct CsrfKey {
    key: [u8; blake3::KEY_LEN],
    remembered: Remembered,
}

/// Session-bound form tokens, remembered so that the signed-in pages do not
/// compute the same MAC again and again. Hand-written, and kept because it
/// earns its place: it keeps S1 (the signed-in dashboard) at 42 022
/// instructions per request; computing the token for every page instead costs
/// +3.3 % there (43 420; means of six runs each, S2 and S3 unchanged),
/// measured with `scripts/instructions.sh`.
#[derive(Default)]
struct Remembered {
    /// `cookie value ␀ session id` → token.
    tokens: RwLock<HashMap<Box<str>, Box<str>>>,
}

thread_local! {
    /// The lookup key, built in place: no allocation for a hit.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Remembered {
    /// The token for `cookie_value` and `session`: remembered, or else made
    /// by `compute` and remembered from now on.
    fn get_or_compute(
        &self,
        cookie_value: &str,
        session: &str,
        compute: impl FnOnce() -> String,
    ) -> String {
        KEY.with_borrow_mut(|key| {
            key.clear();
            key.push_str(cookie_value);
            key.push('\0');
            key.push_str(session);
            let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(token) = tokens.get(key.as_str()) {
                return token.to_string();
            }
            drop(tokens);
            let token = compute();
            let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
            if tokens.len() >= REMEMBERED_MAX {
                tokens.clear();
            }
            tokens.insert(key.as_str().into(), token.as_str().into());
            token
        })
    }
}

impl CsrfKey {
    pub fn derive(secret: &Secret) -> Self {
        Self {
            key: blake3::derive_key("gatehouse 2026 csrf form tokens v2", secret.expose()),
            remembered: Remembered::default(),
        }
    }

    /// The form token for a browser's cookie value and, when signed in, its session.
    pub fn token(&self, cookie_value: &str, session_id: Option<&SessionId>) -> String {
        let Some(session) = session_id.map(SessionId::as_str) else {
            // Signed-out pages mostly come with a new cookie: nothing to reuse.
            return self.compute(cookie_value, None);
        };
        self.remembered.get_or_compute(cookie_value, session, || {
            self.compute(cookie_value, Some(session))
        })
    }

    pub fn verify(&self, token: &str, cookie_value: &str, session_id: Option<&SessionId>) -> bool {
        let session_id = session_id.map(SessionId::as_str);
        let mut bytes = [0u8; blake3::OUT_LEN + 1];
        match URL_SAFE_NO_PAD.decode_slice(token, &mut bytes) {
            Ok(blake3::OUT_LEN) => {
                let mut sent = [0u8; blake3::OUT_LEN];
                sent.copy_from_slice(&bytes[..blake3::OUT_LEN]);
                // `Hash` compares in constant time.
                self.mac(cookie_value, session_id) == blake3::Hash::from_bytes(sent)
            }
            _ => false,
        }
    }

    fn compute(&self, cookie_value: &str, session_id: Option<&str>) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(cookie_value, session_id).as_bytes())
    }

    /// `MAC(cookie value ␀ session id)`; no session is the empty string. A
    /// cookie value never contains `␀`, so the message is unambiguous.
    fn mac(&self, cookie_value: &str, session_id: Option<&str>) -> blake3::Hash {
        let mut mac = blake3::Hasher::new_keyed(&self.key);
        mac.update(cookie_value.as_bytes());
        mac.update(&[0]);
        mac.update(session_id.unwrap_or("").as_bytes());
        mac.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_to_cookie_and_session() {
        let key = CsrfKey::derive(&Secret::new("an-unguessable-test-secret-of-32-bytes!"));
        let anon = key.token("cookie-a", None);
        assert!(key.verify(&anon, "cookie-a", None));
        assert!(!key.verify(&anon, "cookie-b", None));
        assert!(!key.verify(&anon, "cookie-a", Some(&SessionId::from_stored("session"))));
        let bound = key.token("cookie-a", Some(&SessionId::from_stored("session")));
        assert!(key.verify(&bound, "cookie-a", Some(&SessionId::from_stored("session"))));
        assert!(!key.verify(&bound, "cookie-a", Some(&SessionId::from_stored("other"))));
        assert!(!key.verify("not base64!", "cookie-a", None));
    }

    #[test]
    fn real_cookie_values_and_session_ids_bind_the_same_way() {
        let key = CsrfKey::derive(&Secret::new("an-unguessable-test-secret-of-32-bytes!"));
        let cookie = crate::auth::token::new_token();
        let other_cookie = crate::auth::token::new_token();
        let session = SessionId::random();
        let other_session = SessionId::random();
        let bound = key.token(&cookie, Some(&session));
        assert_eq!(key.token(&cookie, Some(&session)), bound, "remembered");
        assert_eq!(
            key.compute(&cookie, Some(session.as_str())),
            bound,
            "as computed"
        );
        assert!(key.verify(&bound, &cookie, Some(&session)));
        assert!(!key.verify(&bound, &other_cookie, Some(&session)));
        assert!(!key.verify(&bound, &cookie, Some(&other_session)));
        assert!(!key.verify(&bound, &cookie, None));
        let anonymous = key.token(&cookie, None);
        assert!(key.verify(&anonymous, &cookie, None));
        assert!(!key.verify(&anonymous, &cookie, Some(&session)));
        // The same session written another way is another session.
        let braced = format!("{{{session}}}");
        assert!(!key.verify(
            &bound,
            &cookie,
            Some(&SessionId::from_stored(braced.clone()))
        ));
    }

    #[test]
    fn a_remembered_token_is_computed_once_per_cookie_and_session() {
        let remembered = Remembered::default();
        let computed = std::cell::Cell::new(0);
        let compute = |token: &str| {
            computed.set(computed.get() + 1);
            token.to_owned()
        };
        assert_eq!(
            remembered.get_or_compute("c", "s", || compute("one")),
            "one"
        );
        assert_eq!(
            remembered.get_or_compute("c", "s", || compute("two")),
            "one"
        );
        assert_eq!(computed.get(), 1);
        assert_eq!(
            remembered.get_or_compute("c", "t", || compute("three")),
            "three"
        );
        assert_eq!(computed.get(), 2);
    }

    #[test]
    fn remembered_tokens_stay_bounded() {
        let key = CsrfKey::derive(&Secret::new("an-unguessable-test-secret-of-32-bytes!"));
        let cookie = crate::auth::token::new_token();
        let first = key.token(&cookie, Some(&SessionId::from_stored("session-first")));
        for i in 0..REMEMBERED_MAX {
            key.token(
                &cookie,
                Some(&SessionId::from_stored(format!("session-{i}"))),
            );
        }
        assert!(key.remembered.tokens.read().unwrap().len() <= REMEMBERED_MAX);
        assert_eq!(
            key.token(&cookie, Some(&SessionId::from_stored("session-first"))),
            first
        );
    }
}
