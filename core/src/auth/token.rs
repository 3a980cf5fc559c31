//! Opaque random tokens (refresh tokens) and the hash that is all the database
//! ever stores of them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// Longest token accepted from a client; longer ones are refused unhashed.
pub const MAX_TOKEN_LEN: usize = 128;

/// Length of every token [`new_token`] makes: 32 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// 32 random bytes, base64url.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `text` has the shape of a token from [`new_token`]: 43 characters
/// of the base64url alphabet (`A–Z a–z 0–9 - _`, no padding) that decode to
/// 32 bytes. Anything else never came from us, and is refused before it is
/// hashed, looked up or copied into a header.
pub fn is_token_shaped(text: &str) -> bool {
    text.len() == TOKEN_LEN
        && URL_SAFE_NO_PAD
            .decode(text)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// SHA-256 of a token, hex.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }

    #[test]
    fn only_the_shape_of_our_own_tokens_passes() {
        for _ in 0..100 {
            assert!(is_token_shaped(&new_token()));
        }
        assert!(is_token_shaped(&"A".repeat(43)));
        let a42 = "A".repeat(42);
        for hostile in [
            String::new(),
            "abc; Domain=evil.example".to_owned(),
            "abc\r\nSet-Cookie: planted=1".to_owned(),
            "A".repeat(44),
            a42.clone(),
            format!("{a42}+"),
            format!("{a42}/"),
            format!("{a42}="),
            format!("{a42};"),
            format!("{a42} "),
            format!("{a42}é"),
            // The last character carries 4 bits; 'B' sets one that 32 bytes
            // do not have.
            format!("{a42}B"),
        ] {
            assert!(!is_token_shaped(&hostile), "{hostile:?}");
        }
    }
}
