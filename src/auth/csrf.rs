//! The CSRF token primitive: `HMAC(key, cookie value ‖ session id)` under a
//! key derived from the server secret. The HTTP side (cookies, forms, the
//! origin check) is `http::csrf`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Session-bound tokens remembered, at most (about 200 bytes each). Past it
/// the map is emptied: a miss only costs computing the token again.
const REMEMBERED_MAX: usize = 4096;

/// The key that signs form tokens; derived from the JWT secret so one secret
/// configures the site, yet the two uses never share a key. Kept as an HMAC
/// already keyed (its inner and outer pads hashed once), cloned per token.
///
/// A signed-in visitor's pages all carry the same token (same cookie, same
/// session), so those tokens are remembered: the HMAC was the largest single
/// cost of a signed-in page. Verifying a submitted token always computes it.
pub struct CsrfKey {
    mac: HmacSha256,
    /// `cookie value ␊ session id` → token.
    remembered: RwLock<HashMap<Box<str>, Box<str>>>,
}

thread_local! {
    /// The lookup key, built in place: no allocation for a hit.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

impl CsrfKey {
    pub fn derive(secret: &Secret) -> Self {
        let mut mac = new_mac(secret.expose());
        mac.update(b"gatehouse csrf key v1");
        Self {
            mac: new_mac(&mac.finalize().into_bytes()),
            remembered: RwLock::new(HashMap::new()),
        }
    }

    /// The form token for a browser's cookie value and, when signed in, its session.
    pub fn token(&self, cookie_value: &str, session_id: Option<&str>) -> String {
        let Some(session) = session_id else {
            // Signed-out pages mostly come with a new cookie: nothing to reuse.
            return self.compute(cookie_value, None);
        };
        KEY.with_borrow_mut(|key| {
            key.clear();
            key.push_str(cookie_value);
            key.push('\n');
            key.push_str(session);
            let remembered = self
                .remembered
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(token) = remembered.get(key.as_str()) {
                return token.to_string();
            }
            drop(remembered);
            let token = self.compute(cookie_value, Some(session));
            let mut remembered = self
                .remembered
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if remembered.len() >= REMEMBERED_MAX {
                remembered.clear();
            }
            remembered.insert(key.as_str().into(), token.as_str().into());
            token
        })
    }

    fn compute(&self, cookie_value: &str, session_id: Option<&str>) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(cookie_value, session_id).finalize().into_bytes())
    }

    pub fn verify(&self, token: &str, cookie_value: &str, session_id: Option<&str>) -> bool {
        match URL_SAFE_NO_PAD.decode(token) {
            Ok(bytes) => self
                .mac(cookie_value, session_id)
                .verify_slice(&bytes)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// The MAC over the cookie value and session id. In their usual form (a
    /// cookie value of 32 bytes in base64url, a hyphenated UUID) they are
    /// signed as bytes, so the message fits in one SHA-256 block and a token
    /// costs two compressions instead of three; anything else is signed as
    /// text. The first byte tells the three forms apart.
    fn mac(&self, cookie_value: &str, session_id: Option<&str>) -> HmacSha256 {
        let mut mac = self.mac.clone();
        let mut cookie = [0u8; 33];
        let decoded = URL_SAFE_NO_PAD.decode_slice(cookie_value, &mut cookie);
        let session = match session_id {
            Some(id) if id.len() == 36 => uuid::Uuid::try_parse(id).ok().map(Some),
            Some(_) => None,
            None => Some(None),
        };
        match (decoded, session) {
            (Ok(32), Some(None)) => {
                mac.update(&[1]);
                mac.update(&cookie[..32]);
            }
            (Ok(32), Some(Some(session))) => {
                mac.update(&[2]);
                mac.update(&cookie[..32]);
                mac.update(session.as_bytes());
            }
            _ => {
                mac.update(&[0]);
                mac.update(cookie_value.as_bytes());
                mac.update(&[0]);
                mac.update(session_id.unwrap_or("").as_bytes());
            }
        }
        mac
    }
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
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
        assert!(!key.verify(&anon, "cookie-a", Some("session")));
        let bound = key.token("cookie-a", Some("session"));
        assert!(key.verify(&bound, "cookie-a", Some("session")));
        assert!(!key.verify(&bound, "cookie-a", Some("other")));
        assert!(!key.verify("not base64!", "cookie-a", None));
    }

    #[test]
    fn real_cookie_values_and_session_ids_bind_the_same_way() {
        let key = CsrfKey::derive(&Secret::new("an-unguessable-test-secret-of-32-bytes!"));
        let cookie = crate::auth::token::new_token();
        let other_cookie = crate::auth::token::new_token();
        let session = uuid::Uuid::new_v4().to_string();
        let other_session = uuid::Uuid::new_v4().to_string();
        let bound = key.token(&cookie, Some(&session));
        assert_eq!(key.token(&cookie, Some(&session)), bound, "remembered");
        assert_eq!(key.compute(&cookie, Some(&session)), bound, "as computed");
        assert!(key.verify(&bound, &cookie, Some(&session)));
        assert!(!key.verify(&bound, &other_cookie, Some(&session)));
        assert!(!key.verify(&bound, &cookie, Some(&other_session)));
        assert!(!key.verify(&bound, &cookie, None));
        let anonymous = key.token(&cookie, None);
        assert!(key.verify(&anonymous, &cookie, None));
        assert!(!key.verify(&anonymous, &cookie, Some(&session)));
        // The same session written another way is another session.
        let braced = format!("{{{session}}}");
        assert!(!key.verify(&bound, &cookie, Some(&braced)));
    }

    #[test]
    fn remembered_tokens_stay_bounded() {
        let key = CsrfKey::derive(&Secret::new("an-unguessable-test-secret-of-32-bytes!"));
        let cookie = crate::auth::token::new_token();
        let first = key.token(&cookie, Some("session-first"));
        for i in 0..REMEMBERED_MAX {
            key.token(&cookie, Some(&format!("session-{i}")));
        }
        assert!(key.remembered.read().unwrap().len() <= REMEMBERED_MAX);
        assert_eq!(key.token(&cookie, Some("session-first")), first);
    }
}
