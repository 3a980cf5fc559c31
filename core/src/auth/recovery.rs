//! Recovery codes: what signs in when the authenticator is lost. Each is 80
//! random bits, shown as 16 characters of base32 in groups of four
//! (`xxxx-xxxx-xxxx-xxxx`) and stored as a SHA-256 hash: a code is random,
//! not chosen, so a fast hash is enough.

use rand::RngCore as _;

use super::token::hash_token;

/// Codes in a set.
pub const CODES_PER_SET: usize = 10;
/// Characters in a code, without the dashes (5 bits each: 80 bits).
const CODE_CHARS: usize = 16;
/// RFC 4648's base32 alphabet, lower case: no 0, 1, 8 or 9 to mistake for
/// letters.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A new set of codes, as shown to the person (grouped).
pub fn generate_set() -> Vec<String> {
    (0..CODES_PER_SET).map(|_| generate()).collect()
}

fn generate() -> String {
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    // 80 bits, 5 at a time.
    let mut bits = u128::from_be_bytes({
        let mut wide = [0u8; 16];
        wide[6..].copy_from_slice(&bytes);
        wide
    });
    let mut chars = [0u8; CODE_CHARS];
    for c in chars.iter_mut().rev() {
        *c = ALPHABET[(bits & 31) as usize];
        bits >>= 5;
    }
    chars
        .chunks(4)
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// A typed code as it is compared: lower case, without dashes or spaces.
/// `None` when what is left cannot be a code.
pub fn normalise(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == CODE_CHARS && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// The stored form of a code (shown or typed).
pub fn hash(code: &str) -> Option<String> {
    normalise(code).map(|code| hash_token(&code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_random_and_read_back_however_typed() {
        let set = generate_set();
        assert_eq!(set.len(), CODES_PER_SET);
        let unique: std::collections::HashSet<_> = set.iter().collect();
        assert_eq!(unique.len(), CODES_PER_SET);
        for code in &set {
            assert_eq!(code.len(), 19, "{code}");
            assert_eq!(code.matches('-').count(), 3, "{code}");
            let typed = code.to_uppercase().replace('-', " ");
            assert_eq!(hash(&typed), hash(code));
            assert!(hash(code).is_some());
        }
        assert_eq!(
            normalise("abcd-efgh-ijkl-mnop").as_deref(),
            Some("abcdefghijklmnop")
        );
        assert_eq!(normalise("abcd-efgh-ijkl-mno"), None);
        assert_eq!(normalise("abcd-efgh-ijkl-mno1"), None);
        assert_eq!(normalise("123456"), None);
    }
}
