//! The `next` parameter: where to go after signing in.
//!
//! Only a local path is ever honoured; anything that a browser could read as
//! another origin (`//host`, `/\host`, `https:`, `javascript:`, control
//! characters that browsers strip) falls back to the dashboard. The checks run
//! on the value as received and again after each round of percent-decoding, so
//! `%2F%2Fevil.example` is caught as well.

use std::borrow::Cow;

use percent_encoding::{
    AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode,
};

pub const DEFAULT_NEXT: &str = "/dashboard";
const MAX_NEXT_LEN: usize = 2048;

/// Characters escaped when a `next` value goes into a query string.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Characters escaped when an accepted path goes into a `Location` header.
const LOCATION: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');

/// Returns `raw` when it is a safe local path, else [`DEFAULT_NEXT`].
pub fn safe_next(raw: Option<&str>) -> Cow<'static, str> {
    match raw {
        Some(path) if is_safe_local_path(path) => {
            Cow::Owned(utf8_percent_encode(path, LOCATION).to_string())
        }
        _ => Cow::Borrowed(DEFAULT_NEXT),
    }
}

/// The login URL that brings the visitor back to `path_and_query` afterwards.
pub fn login_url(path_and_query: &str) -> String {
    if is_safe_local_path(path_and_query) {
        // Pieces appended as they come: every anonymous visit to a protected
        // page builds one of these.
        let mut url = String::with_capacity(12 + path_and_query.len() * 3);
        url.push_str("/login?next=");
        url.extend(utf8_percent_encode(path_and_query, QUERY_VALUE));
        url
    } else {
        "/login".to_owned()
    }
}

/// `page` with `?next=` bringing the visitor on to `next` (a safe local path
/// other than the default) afterwards, or `page` alone.
pub fn with_next(page: &str, next: &str) -> String {
    if next == DEFAULT_NEXT || !is_safe_local_path(next) {
        return page.to_owned();
    }
    let mut url = String::with_capacity(page.len() + 6 + next.len() * 3);
    url.push_str(page);
    url.push_str("?next=");
    url.extend(utf8_percent_encode(next, QUERY_VALUE));
    url
}

pub fn is_safe_local_path(raw: &str) -> bool {
    if raw.len() > MAX_NEXT_LEN {
        return false;
    }
    let mut current = Cow::Borrowed(raw);
    // Up to three rounds of decoding; a value still changing after that is refused.
    for _ in 0..4 {
        if !shape_is_local(&current) {
            return false;
        }
        let decoded: Cow<'_, str> = match percent_decode_str(&current).decode_utf8() {
            Ok(d) => d,
            Err(_) => return false,
        };
        if decoded == current {
            return true;
        }
        current = Cow::Owned(decoded.into_owned());
    }
    false
}

fn shape_is_local(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && !path.contains("/..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_kept() {
        for ok in ["/dashboard", "/account?tab=sessions", "/a/b-c_d.e~f", "/"] {
            assert_eq!(safe_next(Some(ok)), ok, "{ok}");
        }
    }

    #[test]
    fn attacks_fall_back_to_the_dashboard() {
        for attack in [
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "http:evil.example",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "%2F%2Fevil.example",
            "/%2F%2Fevil.example",
            "/%2Fevil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "/%0d%0aSet-Cookie:x",
            "/\r\nSet-Cookie:x",
            "/\tevil",
            "/%09/evil.example",
            "/%00",
            "/%ff",
            "evil.example",
            "",
            " /dashboard",
            "/../etc/passwd",
            "/%2e%2e/admin",
        ] {
            assert_eq!(safe_next(Some(attack)), DEFAULT_NEXT, "{attack:?}");
        }
        assert_eq!(safe_next(None), DEFAULT_NEXT);
        assert_eq!(
            safe_next(Some(&format!("/{}", "a".repeat(3000)))),
            DEFAULT_NEXT
        );
    }

    #[test]
    fn non_ascii_paths_are_escaped_for_the_location_header() {
        assert_eq!(safe_next(Some("/café")), "/caf%C3%A9");
    }

    #[test]
    fn login_url_encodes_the_whole_path() {
        assert_eq!(login_url("/dashboard"), "/login?next=%2Fdashboard");
        assert_eq!(login_url("/a?b=c&d"), "/login?next=%2Fa%3Fb%3Dc%26d");
        assert_eq!(login_url("//evil"), "/login");
    }

    proptest::proptest! {
        /// Whatever comes in, what goes out is a local path.
        #[test]
        fn the_sanitiser_only_ever_returns_a_local_path(raw in proptest::prelude::any::<String>()) {
            let out = safe_next(Some(&raw));
            proptest::prop_assert!(is_safe_local_path(&out), "{raw:?} -> {out:?}");
            proptest::prop_assert!(out.starts_with('/') && !out.starts_with("//"));
            proptest::prop_assert!(!out.contains('\\') && !out.chars().any(char::is_control));
        }

        #[test]
        fn url_like_inputs_never_escape(
            prefix in "(/|//|///|/\\\\|\\\\|%2[fF]|/%2[fF]|/%5[cC]|https?:|javascript:|\\t/)",
            host in "[a-z.]{0,20}",
        ) {
            let raw = format!("{prefix}{host}");
            let out = safe_next(Some(&raw));
            proptest::prop_assert!(out == DEFAULT_NEXT || (out.starts_with('/') && !out.starts_with("//")));
        }
    }
}
