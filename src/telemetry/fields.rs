//! Values from outside as log fields: quoted when they are not one plain
//! word, and paths with their secret segments hidden.

use std::borrow::Cow;
use std::fmt;

/// A value from outside (a header, a path, an address) as a log field's
/// value: written as it is when it is one plain word, else quoted and escaped
/// the way Rust writes a string (`"http://x user_id=1"`, `"\u{1b}"`). Either
/// way it stays one field: it can neither start another (`… user_id=1`) nor
/// end its line, and it shows no terminal escapes. Log with `%Untrusted(…)`.
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_plain_word(self.0) {
            f.write_str(self.0)
        } else {
            fmt::Debug::fmt(self.0, f)
        }
    }
}

/// Non-empty, and nothing that a field's value may not hold bare: no
/// whitespace, quote, backslash, control or invisible character.
fn is_plain_word(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|c| match c {
            '"' | '\'' | '\\' => false,
            '!'..='~' => true,
            c => !c.is_ascii() && !c.is_whitespace() && c.escape_debug().len() == 1,
        })
}

/// Paths whose remaining segment is a secret (it authorises something by
/// itself being known) and is never logged.
const SECRET_PATH_PREFIXES: &[&str] = &["/password/reset/", "/verify/"];

/// `path` as the log may show it: a secret segment becomes `…`.
pub fn loggable_path(path: &str) -> Cow<'_, str> {
    // Judged as decoded (`/password/reset%2FTOKEN` hides a token too); only
    // a path with an escape pays for decoding.
    let decoded = if path.contains('%') {
        percent_encoding::percent_decode_str(path).decode_utf8_lossy()
    } else {
        Cow::Borrowed(path)
    };
    for prefix in SECRET_PATH_PREFIXES {
        if let Some(rest) = decoded.strip_prefix(prefix)
            && !rest.is_empty()
        {
            return Cow::Owned(format!("{prefix}…"));
        }
    }
    Cow::Borrowed(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_path_segments_are_never_logged() {
        assert_eq!(loggable_path("/password/reset/abc123"), "/password/reset/…");
        assert_eq!(loggable_path("/password/reset/"), "/password/reset/");
        assert_eq!(loggable_path("/dashboard"), "/dashboard");
        assert_eq!(
            loggable_path("/password/reset%2Fabc123"),
            "/password/reset/…"
        );
        assert_eq!(
            loggable_path("/password%2freset%2Fabc123"),
            "/password/reset/…"
        );
        assert_eq!(loggable_path("/verify/abc123"), "/verify/…");
        assert_eq!(loggable_path("/verify%2Fabc123"), "/verify/…");
        assert_eq!(loggable_path("/a%20b"), "/a%20b");
    }

    #[test]
    fn untrusted_values_stay_one_field() {
        let shown = |text: &str| Untrusted(text).to_string();
        for plain in [
            "http://evil.example",
            "/password/reset/…",
            "/a=b",
            "ada@example.com",
            "zoë",
        ] {
            assert_eq!(shown(plain), plain);
        }
        assert_eq!(
            shown("http://x expected=http://127.0.0.1 user_id=1"),
            r#""http://x expected=http://127.0.0.1 user_id=1""#
        );
        assert_eq!(shown("a\r\nb"), r#""a\r\nb""#);
        assert_eq!(shown("\u{1b}[31m"), r#""\u{1b}[31m""#);
        assert_eq!(shown("/a\"b"), r#""/a\"b""#);
        assert_eq!(shown("a\u{2028}b"), r#""a\u{2028}b""#);
        assert_eq!(shown("a\u{3000}b"), r#""a\u{3000}b""#);
        assert_eq!(shown(""), r#""""#);
    }
}
