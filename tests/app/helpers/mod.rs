//! Test helpers, by concern: `app` spawns the site and speaks its language,
//! `client` is a cookie-keeping HTTP client, `db` reaches the database
//! directly. Shared assertions live here.
#![expect(dead_code, reason = "each test uses only some of the helpers")]

mod app;
mod binary;
mod client;
mod db;
mod smtp;

pub use app::*;
pub use binary::*;
pub use client::*;
pub use db::*;
pub use smtp::*;

use reqwest::{Response, StatusCode};

pub fn extract_csrf(html: &str) -> Option<String> {
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

#[track_caller]
pub fn assert_redirects_to(response: &Response, location: &str) {
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "expected a 303 to {location}"
    );
    assert_eq!(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(location)
    );
}

/// The `Set-Cookie` header that sets or clears cookie `name`, if any.
pub fn set_cookie<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

#[track_caller]
pub fn assert_clears_cookie(response: &Response, name: &str) {
    let cookie = set_cookie(response, name).unwrap_or_else(|| panic!("{name} is not cleared"));
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
}
