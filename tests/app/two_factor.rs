//! Two-factor sign-in (TOTP) over HTTP: enrolment through the pages, the
//! pending sign-in a right password opens instead of a session, codes used
//! once (also when sent twice at once, on SQLite and PostgreSQL), recovery
//! codes, step-up, trusted devices, the other doors (password reset, the
//! JSON API) and the operator's reset. Codes are computed here with
//! `totp-rs` from the secret the enrolment page shows, at the app's time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use totp_rs::{Algorithm, TOTP};

use crate::helpers::*;

const PENDING: &str = "gatehouse_two_factor";
const TRUSTED: &str = "gatehouse_trusted";
const ACCESS: &str = "gatehouse_access";
const REFRESH: &str = "gatehouse_refresh";
const SETTINGS: &str = "/account/two-factor";
const STEP_SECS: u64 = 30;

/// Unix time on the app's clock, which runs `ahead` of the system's.
fn app_time(ahead: Duration) -> u64 {
    (SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + ahead).as_secs()
}

/// The person's authenticator app: the secret read off the enrolment page.
pub(crate) struct Authenticator {
    secret: Vec<u8>,
}

impl Authenticator {
    /// The code at Unix time `unix` (RFC 6238: SHA-1, 6 digits, 30 s).
    fn code_at(&self, unix: u64) -> String {
        TOTP::new_unchecked(
            Algorithm::SHA1,
            6,
            0,
            STEP_SECS,
            self.secret.clone(),
            None,
            String::new(),
        )
        .generate(unix)
    }

    /// The code of the current step on the app's clock.
    fn current_code(&self, ahead: Duration) -> String {
        self.code_at(app_time(ahead))
    }

    /// The code of the step after the current one on the app's clock: later
    /// than any step used so far in a test that used at most the current
    /// one, and still accepted (one step of drift).
    fn fresh_code(&self, ahead: Duration) -> String {
        self.code_at(app_time(ahead) + STEP_SECS)
    }

    /// Six digits that are no code of the steps around the app's now.
    fn wrong_code(&self, ahead: Duration) -> String {
        let now = app_time(ahead);
        let near: Vec<String> = (0..5)
            .map(|k| self.code_at(now + k * STEP_SECS - 2 * STEP_SECS))
            .collect();
        (0..)
            .map(|n| format!("{n:06}"))
            .find(|c| !near.contains(c))
            .unwrap()
    }
}

/// An account with two-factor on: its authenticator and recovery codes.
pub(crate) struct Enrolled {
    app: Authenticator,
    recovery_codes: Vec<String>,
}

/// The text of the element that starts with `open`, up to `close`.
fn between<'a>(page: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = page.find(open)? + open.len();
    let end = page[start..].find(close)? + start;
    Some(&page[start..end])
}

/// The TOTP secret the enrolment page shows as text (base32, maybe grouped).
fn secret_on(page: &str) -> Vec<u8> {
    let shown = between(page, r#"<code id="totp-secret">"#, "</code>")
        .unwrap_or_else(|| panic!("no secret on the page: {page}"));
    let base32: String = shown.chars().filter(|c| !c.is_whitespace()).collect();
    totp_rs::Secret::Encoded(base32.clone())
        .to_bytes()
        .unwrap_or_else(|e| panic!("{base32:?} is not base32: {e:?}"))
}

/// Whether `code` is shaped as a recovery code: `xxxx-xxxx-xxxx-xxxx` in
/// lower-case base32 (a-z, 2-7).
fn is_recovery_code(code: &str) -> bool {
    let groups: Vec<&str> = code.split('-').collect();
    groups.len() == 4
        && groups.iter().all(|g| {
            g.len() == 4
                && g.bytes()
                    .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        })
}

/// The recovery codes a page shows, each checked for its shape; 10 of them.
fn recovery_codes_on(page: &str) -> Vec<String> {
    let codes: Vec<String> = page
        .split("<li><code>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</code></li>").map(|(c, _)| c.to_owned()))
        .collect();
    assert_eq!(codes.len(), 10, "{page}");
    for code in &codes {
        assert!(is_recovery_code(code), "{code:?} in {page}");
    }
    codes
}

/// Whether `response` sets (not clears) cookie `name`.
fn sets_cookie(response: &Response, name: &str) -> bool {
    set_cookie(response, name).is_some_and(|c| !c.contains("Max-Age=0"))
}

/// A 303 to `location` that starts a session (access and refresh cookies).
#[track_caller]
fn assert_signed_in(response: &Response, location: &str) {
    assert_redirects_to(response, location);
    assert!(sets_cookie(response, ACCESS), "no access cookie");
    assert!(sets_cookie(response, REFRESH), "no refresh cookie");
}

/// A 303 to `location` (the second-factor page) with the pending cookie
/// and no session.
#[track_caller]
pub(crate) fn assert_second_factor_pending(response: &Response, location: &str) {
    assert_redirects_to(response, location);
    let pending = set_cookie(response, PENDING)
        .unwrap_or_else(|| panic!("no {PENDING} cookie: {:?}", response.headers()));
    for attribute in ["HttpOnly", "Path=/", "Max-Age=300"] {
        assert!(pending.contains(attribute), "{pending}");
    }
    assert!(!sets_cookie(response, ACCESS), "an access cookie was set");
    assert!(!sets_cookie(response, REFRESH), "a refresh cookie was set");
}

/// Turns two-factor on through the pages for the account signed in (just
/// now) on `client`: reads the secret, enters its current code, keeps the
/// recovery codes shown.
pub(crate) async fn enrol(app: &TestApp, client: &Client) -> Enrolled {
    let page = app.get_as(client, SETTINGS).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("<svg"), "no QR code: {page}");
    assert!(
        page.contains(r#"action="/account/two-factor/enable""#),
        "{page}"
    );
    let authenticator = Authenticator {
        secret: secret_on(&page),
    };
    let csrf = csrf_of(&page);

    let enabled = app
        .post_form_as(
            client,
            "/account/two-factor/enable",
            &[
                ("code", &authenticator.current_code(Duration::ZERO)),
                ("csrf_token", &csrf),
            ],
        )
        .await;

    assert_eq!(enabled.status(), StatusCode::OK);
    let cache = enabled.headers().get("cache-control").unwrap();
    assert!(cache.to_str().unwrap().contains("no-store"), "{cache:?}");
    let recovery_codes = recovery_codes_on(&enabled.text().await.unwrap());
    Enrolled {
        app: authenticator,
        recovery_codes,
    }
}

/// An app whose test user has two-factor on (enrolled on `app.client`,
/// which stays signed in).
async fn enrolled_app() -> (TestApp, Enrolled) {
    let app = spawn_app().await;
    app.login_test_user().await;
    let enrolled = enrol(&app, &app.client).await;
    (app, enrolled)
}

/// The test user's password, posted on the sign-in form from `client`.
pub(crate) async fn password_step(app: &TestApp, client: &Client) -> Response {
    let user = &app.test_user;
    client
        .sign_in(&app.address, &user.email, &user.password, false)
        .await
}

/// Opens the second-factor form on `client` and posts `code` on it,
/// ticking "trust this device" when `trust`.
async fn enter_code(app: &TestApp, client: &Client, code: &str, trust: bool) -> Response {
    let mut fields = vec![("code", code)];
    if trust {
        fields.push(("trust_device", "on"));
    }
    client
        .submit(
            &app.address,
            "/login/two-factor",
            "/login/two-factor",
            &fields,
        )
        .await
}

/// A new browser past the password, waiting for its second factor.
async fn pending_browser(app: &TestApp) -> Client {
    let client = app.new_client();
    let response = password_step(app, &client).await;
    assert_second_factor_pending(&response, "/login/two-factor");
    client
}

/// Puts a pending cookie back in `client`'s jar (a response that cleared
/// it, or the browser's own clean-up, does not stop an attacker's replay).
fn put_back_pending(app: &TestApp, client: &Client, value: &str) {
    client.jar.add_cookie_str(
        &format!("{PENDING}={value}; Path=/"),
        &app.address.parse().unwrap(),
    );
}

#[tokio::test]
async fn enrolled_through_the_pages_a_sign_in_needs_the_code_before_any_session() {
    let (app, enrolled) = enrolled_app().await;
    app.post_logout().await;

    let after_password = password_step(&app, &app.client).await;

    assert_second_factor_pending(&after_password, "/login/two-factor");
    assert_eq!(
        app.get_dashboard().await.status(),
        StatusCode::SEE_OTHER,
        "not signed in yet"
    );
    let form = app.get("/login/two-factor").await;
    assert_eq!(form.status(), StatusCode::OK);
    let form = form.text().await.unwrap();
    for field in [
        r#"name="code""#,
        r#"name="trust_device""#,
        r#"name="next""#,
        r#"name="csrf_token""#,
    ] {
        assert!(form.contains(field), "{field} missing: {form}");
    }
    let finished = enter_code(
        &app,
        &app.client,
        &enrolled.app.fresh_code(Duration::ZERO),
        false,
    )
    .await;
    assert_signed_in(&finished, "/dashboard");
    assert_clears_cookie(&finished, PENDING);
    assert_eq!(app.get_dashboard().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_safe_next_is_kept_through_the_second_factor() {
    let (app, enrolled) = enrolled_app().await;
    let client = app.new_client();
    let user = &app.test_user;

    let after_password = client
        .submit(
            &app.address,
            "/login",
            "/login",
            &[
                ("email", &user.email),
                ("password", &user.password),
                ("next", "/account"),
            ],
        )
        .await;

    assert_second_factor_pending(&after_password, "/login/two-factor?next=%2Faccount");
    let finished = client
        .submit(
            &app.address,
            "/login/two-factor?next=%2Faccount",
            "/login/two-factor",
            &[
                ("code", &enrolled.app.fresh_code(Duration::ZERO)),
                ("next", "/account"),
            ],
        )
        .await;
    assert_signed_in(&finished, "/account");
}

/// Two browsers, each past the password with its own pending cookie, send
/// the same right code at once: exactly one is signed in; ten rounds, each
/// an hour later on the app's clock (a fresh step, and the account's
/// hourly count of codes starts again).
async fn one_code_sent_twice_at_once_signs_in_exactly_once(app: TestApp) {
    app.login_test_user().await;
    let enrolled = enrol(&app, &app.client).await;
    let mut ahead = Duration::ZERO;
    for round in 0..10 {
        app.clock.advance(Duration::from_secs(3660));
        ahead += Duration::from_secs(3660);
        let (first, second) = (pending_browser(&app).await, pending_browser(&app).await);
        let csrf_first = app.csrf_token_as(&first, "/login/two-factor").await;
        let csrf_second = app.csrf_token_as(&second, "/login/two-factor").await;
        let code = enrolled.app.fresh_code(ahead);
        let form_first = [("code", code.as_str()), ("csrf_token", csrf_first.as_str())];
        let form_second = [
            ("code", code.as_str()),
            ("csrf_token", csrf_second.as_str()),
        ];

        let (a, b) = tokio::join!(
            app.post_form_as(&first, "/login/two-factor", &form_first,),
            app.post_form_as(&second, "/login/two-factor", &form_second,),
        );

        let statuses = [a.status(), b.status()];
        let (winner, loser) = if a.status() == StatusCode::SEE_OTHER {
            (a, b)
        } else {
            (b, a)
        };
        assert_signed_in(&winner, "/dashboard");
        assert_eq!(
            loser.status(),
            StatusCode::UNAUTHORIZED,
            "round {round}: {statuses:?}"
        );
        assert!(!sets_cookie(&loser, ACCESS), "round {round}");
        assert!(!sets_cookie(&loser, REFRESH), "round {round}");
    }
}

on_sqlite_and_postgres!(
    one_code_sent_twice_at_once_signs_in_exactly_once =>
    one_code_sent_twice_at_once_signs_in_exactly_once_on_sqlite,
    one_code_sent_twice_at_once_signs_in_exactly_once_on_postgres
);

#[tokio::test]
async fn the_pending_sign_in_ends_after_five_minutes_or_five_wrong_codes() {
    let (app, enrolled) = enrolled_app().await;

    // Five minutes and a second later, even the right code is too late.
    let late = pending_browser(&app).await;
    let late_csrf = app.csrf_token_as(&late, "/login/two-factor").await;
    let late_cookie = app.cookie_in(&late, PENDING).unwrap();
    let ahead = Duration::from_secs(5 * 60 + 1);
    app.clock.advance(ahead);
    let form = app.get_as(&late, "/login/two-factor").await;
    assert_redirects_to(&form, "/login");
    put_back_pending(&app, &late, &late_cookie);
    let too_late = app
        .post_form_as(
            &late,
            "/login/two-factor",
            &[
                ("code", &enrolled.app.fresh_code(ahead)),
                ("csrf_token", &late_csrf),
            ],
        )
        .await;
    assert_redirects_to(&too_late, "/login");
    assert!(!sets_cookie(&too_late, ACCESS));

    // Four wrong codes are answered with the form; the fifth ends it.
    let guesser = pending_browser(&app).await;
    let csrf = app.csrf_token_as(&guesser, "/login/two-factor").await;
    let pending = app.cookie_in(&guesser, PENDING).unwrap();
    let wrong = enrolled.app.wrong_code(ahead);
    for attempt in 1..=5 {
        let refused = app
            .post_form_as(
                &guesser,
                "/login/two-factor",
                &[("code", &wrong), ("csrf_token", &csrf)],
            )
            .await;
        assert!(!sets_cookie(&refused, ACCESS), "attempt {attempt}");
        if attempt < 5 {
            assert_eq!(
                refused.status(),
                StatusCode::UNAUTHORIZED,
                "attempt {attempt}"
            );
        } else {
            assert_redirects_to(&refused, "/login");
        }
    }
    put_back_pending(&app, &guesser, &pending);
    let right_after = app
        .post_form_as(
            &guesser,
            "/login/two-factor",
            &[
                ("code", &enrolled.app.fresh_code(ahead)),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_redirects_to(&right_after, "/login");
    assert!(!sets_cookie(&right_after, ACCESS));
}

#[tokio::test]
async fn a_code_used_for_one_sign_in_is_refused_for_the_next() {
    let (app, enrolled) = enrolled_app().await;
    let code = enrolled.app.fresh_code(Duration::ZERO);
    let first = pending_browser(&app).await;
    assert_signed_in(&enter_code(&app, &first, &code, false).await, "/dashboard");

    let second = pending_browser(&app).await;
    let replayed = enter_code(&app, &second, &code, false).await;

    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert!(!sets_cookie(&replayed, ACCESS));
    assert!(replayed.text().await.unwrap().contains(r#"name="code""#));
}

#[tokio::test]
async fn a_recovery_code_signs_in_once() {
    let (app, enrolled) = enrolled_app().await;
    let recovery = &enrolled.recovery_codes[3];
    let first = pending_browser(&app).await;
    assert_signed_in(
        &enter_code(&app, &first, recovery, false).await,
        "/dashboard",
    );

    let second = pending_browser(&app).await;
    let again = enter_code(&app, &second, recovery, false).await;

    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(!sets_cookie(&again, ACCESS));
    let left = app.get(SETTINGS).await.text().await.unwrap();
    assert!(left.contains("9 recovery codes left"), "{left}");
}

#[tokio::test]
async fn new_recovery_codes_void_the_old_set() {
    let (app, enrolled) = enrolled_app().await;
    let csrf = app.csrf_token(SETTINGS).await;

    let regenerated = app
        .post_form(
            "/account/two-factor/recovery-codes",
            &[("csrf_token", &csrf)],
        )
        .await;

    assert_eq!(regenerated.status(), StatusCode::OK);
    let new_codes = recovery_codes_on(&regenerated.text().await.unwrap());
    assert!(
        new_codes
            .iter()
            .all(|c| !enrolled.recovery_codes.contains(c))
    );
    let old = enter_code(
        &app,
        &pending_browser(&app).await,
        &enrolled.recovery_codes[0],
        false,
    )
    .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = enter_code(&app, &pending_browser(&app).await, &new_codes[0], false).await;
    assert_signed_in(&new, "/dashboard");
}

#[tokio::test]
async fn the_settings_ask_to_confirm_an_old_sign_in_with_password_and_code() {
    let (app, enrolled) = enrolled_app().await;
    let ahead = Duration::from_secs(6 * 60);
    app.clock.advance(ahead);

    let settings = app.get(SETTINGS).await;

    let confirm = "/confirm?next=%2Faccount%2Ftwo-factor";
    assert_redirects_to(&settings, confirm);
    let form = app.get(confirm).await;
    assert_eq!(form.status(), StatusCode::OK);
    let form = form.text().await.unwrap();
    for field in [r#"name="password""#, r#"name="code""#, r#"name="next""#] {
        assert!(form.contains(field), "{field} missing: {form}");
    }
    let password = app.test_user.password.clone();
    let wrong = app
        .client
        .submit(
            &app.address,
            confirm,
            "/confirm",
            &[
                ("password", "not the password at all"),
                ("code", &enrolled.app.current_code(ahead)),
                ("next", SETTINGS),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let confirmed = app
        .client
        .submit(
            &app.address,
            confirm,
            "/confirm",
            &[
                ("password", &password),
                ("code", &enrolled.app.fresh_code(ahead)),
                ("next", SETTINGS),
            ],
        )
        .await;
    assert_redirects_to(&confirmed, SETTINGS);
    assert!(sets_cookie(&confirmed, ACCESS), "a new access token");
    let settings = app.get(SETTINGS).await;
    assert_eq!(settings.status(), StatusCode::OK);
    assert!(
        settings
            .text()
            .await
            .unwrap()
            .contains("recovery codes left")
    );
}

#[tokio::test]
async fn a_trusted_device_skips_the_code_until_it_is_revoked() {
    let (app, enrolled) = enrolled_app().await;
    let browser = pending_browser(&app).await;
    let trusted = enter_code(
        &app,
        &browser,
        &enrolled.app.fresh_code(Duration::ZERO),
        true,
    )
    .await;
    assert_signed_in(&trusted, "/dashboard");
    let cookie = set_cookie(&trusted, TRUSTED).expect("a trusted-device cookie");
    assert!(cookie.contains("Max-Age=2592000"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    app.post_logout_as(&browser).await;

    let again = password_step(&app, &browser).await;

    assert_signed_in(&again, "/dashboard");
    let account = app.get_as(&browser, "/account").await.text().await.unwrap();
    let id = between(
        &account,
        r#"action="/account/trusted-devices/"#,
        "/revoke\"",
    )
    .unwrap_or_else(|| panic!("no trusted device listed: {account}"))
    .to_owned();
    let revoked = app
        .post_form_as(
            &browser,
            &format!("/account/trusted-devices/{id}/revoke"),
            &[("csrf_token", &csrf_of(&account))],
        )
        .await;
    assert_redirects_to(&revoked, "/account");
    app.post_logout_as(&browser).await;
    assert_second_factor_pending(&password_step(&app, &browser).await, "/login/two-factor");
}

/// Waits up to 5 s for a mail with a password-reset link; returns the link.
#[tokio::test]
async fn a_password_reset_on_an_account_with_two_factor_asks_for_the_code() {
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| s.mail.mail_url = Some(mail_url)).await;
    app.login_test_user().await;
    let enrolled = enrol(&app, &app.client).await;
    let forgetful = app.new_client();
    let asked = forgetful
        .submit(
            &app.address,
            "/password/forgot",
            "/password/forgot",
            &[("email", &app.test_user.email)],
        )
        .await;
    assert_redirects_to(&asked, "/password/forgot/sent");
    let link = inbox.wait_for_link(reset_link).await;
    let opened = forgetful.http.get(&link).send().await.unwrap();
    assert_redirects_to(&opened, "/password/reset");

    let reset = forgetful
        .submit(
            &app.address,
            "/password/reset",
            "/password/reset",
            &[("new_password", "an entirely different passphrase")],
        )
        .await;

    assert_second_factor_pending(&reset, "/login/two-factor");
    let finished = enter_code(
        &app,
        &forgetful,
        &enrolled.app.fresh_code(Duration::ZERO),
        false,
    )
    .await;
    assert_signed_in(&finished, "/dashboard");
}

/// `POST path` with a JSON body (no `Origin`, as a non-browser client).
async fn post_json(app: &TestApp, client: &Client, path: &str, body: Value) -> Response {
    client
        .http
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_api_asks_for_the_code_and_then_signs_in() {
    let (app, enrolled) = enrolled_app().await;
    let client = app.new_client();
    let credentials = json!({"email": app.test_user.email, "password": app.test_user.password});

    let login = post_json(&app, &client, "/api/login", credentials).await;

    assert_eq!(login.status(), StatusCode::OK);
    assert!(sets_cookie(&login, PENDING));
    assert!(!sets_cookie(&login, ACCESS));
    assert!(!sets_cookie(&login, REFRESH));
    let body: Value = login.json().await.unwrap();
    assert_eq!(body, json!({"two_factor_required": true}));
    let wrong = json!({"code": enrolled.app.wrong_code(Duration::ZERO), "trust_device": false});
    let refused = post_json(&app, &client, "/api/login/two-factor", wrong).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(!sets_cookie(&refused, ACCESS));
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    let right = json!({"code": enrolled.app.fresh_code(Duration::ZERO), "trust_device": false});
    let finished = post_json(&app, &client, "/api/login/two-factor", right).await;
    assert_eq!(finished.status(), StatusCode::OK);
    assert!(sets_cookie(&finished, ACCESS));
    assert!(sets_cookie(&finished, REFRESH));
    let body: Value = finished.json().await.unwrap();
    assert_eq!(body["user"]["id"], app.test_user.id);
    assert_eq!(body["user"]["name"], app.test_user.name);
    assert_eq!(body["user"]["email"], app.test_user.email);
    let me = app.get_as(&client, "/api/me").await;
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_operators_reset_turns_two_factor_off_and_the_list_shows_it() {
    let (app, _enrolled) = enrolled_app().await;
    let email = app.test_user.email.clone();
    assert_eq!(app.listed(&email, "TWO-FACTOR").await, "yes");

    let reset = app.cli(&["user", "two-factor-reset", &email], "").await;

    assert!(reset.status.success(), "{reset:?}");
    assert_eq!(app.listed(&email, "TWO-FACTOR").await, "no");
    assert_signed_in(&password_step(&app, &app.new_client()).await, "/dashboard");
}

#[tokio::test]
async fn turned_off_with_a_code_a_sign_in_needs_no_code() {
    let (app, enrolled) = enrolled_app().await;
    let settings = app.get(SETTINGS).await.text().await.unwrap();
    assert!(settings.contains("recovery codes left"), "{settings}");
    assert!(
        settings.contains(r#"action="/account/two-factor/recovery-codes""#),
        "{settings}"
    );
    assert!(
        settings.contains(r#"action="/account/two-factor/disable""#),
        "{settings}"
    );
    let csrf = csrf_of(&settings);
    let wrong = app
        .post_form(
            "/account/two-factor/disable",
            &[
                ("code", &enrolled.app.wrong_code(Duration::ZERO)),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let disabled = app
        .post_form(
            "/account/two-factor/disable",
            &[
                ("code", &enrolled.app.fresh_code(Duration::ZERO)),
                ("csrf_token", &csrf),
            ],
        )
        .await;

    assert_redirects_to(&disabled, "/account");
    app.post_logout().await;
    assert_signed_in(&password_step(&app, &app.client).await, "/dashboard");
}

/// Waits up to 5 s for a mail with a confirmation link; returns the link.
#[tokio::test]
async fn confirming_a_new_address_with_two_factor_on_asks_for_the_code() {
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| s.mail.mail_url = Some(mail_url)).await;
    app.login_test_user().await;
    let enrolled = enrol(&app, &app.client).await;
    let asked = app
        .client
        .submit(
            &app.address,
            "/account",
            "/account/email",
            &[
                ("new_email", "moved@example.com"),
                ("current_password", &app.test_user.password),
            ],
        )
        .await;
    assert_redirects_to(&asked, "/account");
    let link = inbox.wait_for_link(confirm_link).await;
    let path = link.split_once(&app.address).unwrap().1.to_owned();

    let elsewhere = app.new_client();
    let confirmed = elsewhere
        .submit(
            &app.address,
            &path,
            &path,
            &[("password", &app.test_user.password)],
        )
        .await;

    assert_second_factor_pending(&confirmed, "/login/two-factor");
    let finished = enter_code(
        &app,
        &elsewhere,
        &enrolled.app.fresh_code(Duration::ZERO),
        false,
    )
    .await;
    assert_signed_in(&finished, "/dashboard");
}

#[tokio::test]
async fn a_hostile_next_is_dropped_at_the_second_factor_and_at_step_up() {
    let (app, enrolled) = enrolled_app().await;
    let mut ahead = Duration::ZERO;
    for hostile in ["//evil.example", "https://evil.example/", "/\\evil.example"] {
        let client = pending_browser(&app).await;
        let form = app
            .get_as(&client, &format!("/login/two-factor?next={hostile}"))
            .await
            .text()
            .await
            .unwrap();
        assert!(!form.contains("evil.example"), "{form}");
        let finished = client
            .submit(
                &app.address,
                "/login/two-factor",
                "/login/two-factor",
                &[("code", &enrolled.app.fresh_code(ahead)), ("next", hostile)],
            )
            .await;
        assert_signed_in(&finished, "/dashboard");
        // The next sign-in needs the step after; an hour on, the account's
        // count of codes starts again.
        app.clock.advance(Duration::from_secs(3600));
        ahead += Duration::from_secs(3600);
    }
    // Step-up drops it too.
    let confirm = "/confirm?next=//evil.example";
    let form = app.get(confirm).await.text().await.unwrap();
    assert!(!form.contains("evil.example"), "{form}");
    let confirmed = app
        .client
        .submit(
            &app.address,
            confirm,
            "/confirm",
            &[
                ("password", &app.test_user.password),
                ("code", &enrolled.app.fresh_code(ahead)),
                ("next", "//evil.example"),
            ],
        )
        .await;
    assert_redirects_to(&confirmed, "/dashboard");
}

#[tokio::test]
async fn an_old_sign_in_cannot_turn_two_factor_off_or_make_new_codes() {
    let (app, enrolled) = enrolled_app().await;
    let csrf = csrf_of(&app.get("/account").await.text().await.unwrap());
    let ahead = Duration::from_secs(6 * 60);
    app.clock.advance(ahead);

    for (action, code) in [
        (
            "/account/two-factor/disable",
            enrolled.app.fresh_code(ahead),
        ),
        ("/account/two-factor/recovery-codes", String::new()),
    ] {
        let response = app
            .post_form(action, &[("code", &code), ("csrf_token", &csrf)])
            .await;
        assert_redirects_to(&response, "/confirm?next=%2Faccount%2Ftwo-factor");
    }
    // Still on, with the old codes.
    let user = &app.test_user;
    let again = app
        .login_as(&app.new_client(), &user.email, &user.password)
        .await;
    assert_second_factor_pending(&again, "/login/two-factor");
}

#[tokio::test]
async fn ten_codes_an_hour_per_account_then_429_from_any_address() {
    let app =
        spawn_app_with(|s| s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    app.login_test_user().await;
    let enrolled = enrol(&app, &app.client).await;

    // Someone who knows the password guesses from ten addresses, one code
    // each: no address and no pending sign-in reaches its own limit.
    for n in 1..=10 {
        let guesser = Client::behind_proxy(&format!("203.0.113.{n}"));
        let pending = password_step(&app, &guesser).await;
        assert_second_factor_pending(&pending, "/login/two-factor");
        let wrong = enrolled.app.wrong_code(Duration::ZERO);
        let refused = enter_code(&app, &guesser, &wrong, false).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "code {n}");
    }

    // The eleventh code within the hour is not even judged, from anywhere,
    // the right one included.
    let owner = Client::behind_proxy("198.51.100.7");
    assert_second_factor_pending(&password_step(&app, &owner).await, "/login/two-factor");
    let right = enrolled.app.fresh_code(Duration::ZERO);
    let throttled = enter_code(&app, &owner, &right, false).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert!(!sets_cookie(&throttled, ACCESS));

    // An hour later the count starts again.
    let ahead = Duration::from_secs(3601);
    app.clock.advance(ahead);
    assert_second_factor_pending(&password_step(&app, &owner).await, "/login/two-factor");
    let signed_in = enter_code(&app, &owner, &enrolled.app.fresh_code(ahead), false).await;
    assert_signed_in(&signed_in, "/dashboard");
}

/// One browser confirms its sign-in (step-up) while another finishes a
/// sign-in, both with the same code, sent together at ten offsets: exactly
/// one of them is accepted. Each round starts an hour later on the app's
/// clock (the account's hourly count of codes starts again) with a browser
/// signed in afresh.
async fn one_code_for_step_up_and_sign_in_at_once_works_once(app: TestApp) {
    app.login_test_user().await;
    let enrolled = enrol(&app, &app.client).await;
    let password = app.test_user.password.clone();
    let mut ahead = Duration::ZERO;
    for round in 0..10u64 {
        app.clock.advance(Duration::from_secs(3660));
        ahead += Duration::from_secs(3660);
        let confirming = pending_browser(&app).await;
        let code = enrolled.app.fresh_code(ahead);
        assert_signed_in(
            &enter_code(&app, &confirming, &code, false).await,
            "/dashboard",
        );
        // Later steps, so the code below is one no one has used.
        app.clock.advance(Duration::from_secs(90));
        ahead += Duration::from_secs(90);
        let signing_in = pending_browser(&app).await;
        let csrf_confirm = app.csrf_token_as(&confirming, "/confirm").await;
        let csrf_sign_in = app.csrf_token_as(&signing_in, "/login/two-factor").await;
        let code = enrolled.app.fresh_code(ahead);
        let confirm_form = [
            ("password", password.as_str()),
            ("code", code.as_str()),
            ("next", "/account"),
            ("csrf_token", csrf_confirm.as_str()),
        ];
        let sign_in_form = [
            ("code", code.as_str()),
            ("csrf_token", csrf_sign_in.as_str()),
        ];

        let (confirmed, signed_in) = tokio::join!(
            app.post_form_as(&confirming, "/confirm", &confirm_form),
            async {
                tokio::time::sleep(Duration::from_micros(300 * round)).await;
                app.post_form_as(&signing_in, "/login/two-factor", &sign_in_form)
                    .await
            },
        );

        let statuses = [confirmed.status(), signed_in.status()];
        if confirmed.status() == StatusCode::SEE_OTHER {
            assert_redirects_to(&confirmed, "/account");
            assert!(sets_cookie(&confirmed, ACCESS), "round {round}");
            assert_eq!(
                signed_in.status(),
                StatusCode::UNAUTHORIZED,
                "round {round}: {statuses:?}"
            );
            assert!(!sets_cookie(&signed_in, ACCESS), "round {round}");
        } else {
            assert_signed_in(&signed_in, "/dashboard");
            assert_eq!(
                confirmed.status(),
                StatusCode::UNAUTHORIZED,
                "round {round}: {statuses:?}"
            );
            assert!(!sets_cookie(&confirmed, ACCESS), "round {round}");
        }
    }
}

on_sqlite_and_postgres!(
    one_code_for_step_up_and_sign_in_at_once_works_once =>
    one_code_for_step_up_and_sign_in_at_once_works_once_on_sqlite,
    one_code_for_step_up_and_sign_in_at_once_works_once_on_postgres
);
