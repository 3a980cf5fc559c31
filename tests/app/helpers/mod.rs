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

/// How two kinds of answer compare in time: each one's median (seconds), and
/// the median of the differences within pairs over the smaller median.
pub struct TimingGap {
    pub first: f64,
    pub second: f64,
    pub gap: f64,
}

/// Times `pairs` pairs of answers, `first(i)` then `second(i)` back to back,
/// so that load from other tests running at the same time falls on both
/// halves of a pair alike.
pub async fn timing_gap<A, B, FA, FB>(pairs: usize, mut first: A, mut second: B) -> TimingGap
where
    A: FnMut(usize) -> FA,
    B: FnMut(usize) -> FB,
    FA: Future<Output = std::time::Duration>,
    FB: Future<Output = std::time::Duration>,
{
    let (mut firsts, mut seconds, mut differences) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        // Each goes first in half the pairs, so that what the first leaves
        // behind (or warms up) for the second counts for neither.
        let (a, b) = if i % 2 == 0 {
            let a = first(i).await;
            (a, second(i).await)
        } else {
            let b = second(i).await;
            (first(i).await, b)
        };
        let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
        firsts.push(a);
        seconds.push(b);
        differences.push(a - b);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (first, second) = (median(firsts), median(seconds));
    let gap = median(differences).abs() / first.min(second);
    // Straight to stderr: the figures are wanted even when the test passes.
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!(
            "median over {pairs} pairs: {:.2} ms and {:.2} ms, difference within pairs {:.1} %\n",
            first * 1000.0,
            second * 1000.0,
            gap * 100.0
        ),
    );
    TimingGap { first, second, gap }
}

/// Held by each test that compares answer times, so that no two of them run
/// at once: one's hashing would be the other's noise.
pub async fn timing_alone() -> tokio::sync::MutexGuard<'static, ()> {
    static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TIMING.lock().await
}

pub fn extract_csrf(html: &str) -> Option<String> {
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// The `csrf_token` of the first form in `html`; fails the test without one.
#[track_caller]
pub fn csrf_of(html: &str) -> String {
    extract_csrf(html).unwrap_or_else(|| panic!("no csrf_token in the page: {html}"))
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

/// Fires `count` sign-ins at once, each from a client of its own with its
/// form's token, `email(i)` and `password(i)`, spread over the instances at
/// `addresses`; returns their statuses.
pub async fn sign_ins_at_once(
    addresses: &[&str],
    count: usize,
    email: impl Fn(usize) -> String,
    password: impl Fn(usize) -> String,
) -> Vec<StatusCode> {
    let mut ready = Vec::new();
    for i in 0..count {
        let address = addresses[i % addresses.len()].to_owned();
        let client = Client::new("guesser");
        let page = client
            .http
            .get(format!("{address}/login"))
            .send()
            .await
            .unwrap();
        let csrf = csrf_of(&page.text().await.unwrap());
        ready.push((address, client, csrf, email(i), password(i)));
    }
    let mut set = tokio::task::JoinSet::new();
    for (address, client, csrf, email, password) in ready {
        set.spawn(async move {
            client
                .http
                .post(format!("{address}/login"))
                .header("Origin", &address)
                .form(&[
                    ("email", email.as_str()),
                    ("password", password.as_str()),
                    ("csrf_token", csrf.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    set.join_all().await
}

/// How many of these sign-ins had their password checked (not 429).
pub fn judged(statuses: &[StatusCode]) -> usize {
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    statuses.len() - refused
}
