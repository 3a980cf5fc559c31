//! Sessions that really end: refresh rotation, revocation, account page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use gatehouse::config::Secret;
use gatehouse_core::db::schema::{auth_events, sessions};
use reqwest::{Response, StatusCode};

use crate::helpers::*;

const ACCESS: &str = "gatehouse_access";
const REFRESH: &str = "gatehouse_refresh";

fn cookie_value(response: &Response, name: &str) -> Option<String> {
    let header = set_cookie(response, name)?;
    let value = header.split(';').next()?.split_once('=')?.1;
    Some(value.to_owned())
}

/// Sends `method path` with exactly these cookies (a client whose access
/// cookie has expired sends only the others).
async fn request_with(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    cookies: &[(&str, &str)],
    form: Option<&[(&str, &str)]>,
) -> Response {
    let header = cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = raw
        .request(method, app.url(path))
        .header("Cookie", header)
        .header("Origin", &app.address);
    if let Some(form) = form {
        request = request.form(form);
    }
    request.send().await.unwrap()
}

async fn get_with(app: &TestApp, path: &str, cookies: &[(&str, &str)]) -> Response {
    request_with(app, reqwest::Method::GET, path, cookies, None).await
}

async fn session_ids(app: &TestApp, user_id: &str) -> Vec<String> {
    let (pool, user_id) = (app.pool.clone(), user_id.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get_blocking().unwrap();
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .order(sessions::created_at.asc())
            .select(sessions::id)
            .load::<String>(&mut conn)
            .unwrap()
    })
    .await
    .unwrap()
}

async fn event_kinds(app: &TestApp) -> Vec<String> {
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get_blocking().unwrap();
        auth_events::table
            .select(auth_events::kind)
            .load::<String>(&mut conn)
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_missing_access_token_is_renewed_transparently_on_a_page() {
    let app = spawn_app().await;
    let login = app.login_test_user().await;
    let refresh = cookie_value(&login, REFRESH).unwrap();

    let page = get_with(&app, "/dashboard", &[(REFRESH, &refresh)]).await;

    assert_eq!(page.status(), StatusCode::OK);
    let new_access = cookie_value(&page, ACCESS).expect("a new access cookie");
    let new_refresh = cookie_value(&page, REFRESH).expect("a new refresh cookie");
    assert_ne!(new_refresh, refresh, "the refresh token rotates");
    assert_eq!(
        get_with(&app, "/dashboard", &[(ACCESS, &new_access)])
            .await
            .status(),
        StatusCode::OK
    );
    assert!(page.text().await.unwrap().contains(&app.test_user.name));
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_transparently() {
    let app = spawn_app().await;
    let login = app.login_test_user().await;
    let refresh = cookie_value(&login, REFRESH).unwrap();
    let secret = Secret::new(TEST_SECRET);
    let now = chrono::Utc::now().timestamp();
    let claims = gatehouse_core::auth::jwt::Claims {
        iss: "gatehouse".into(),
        aud: "gatehouse-web".into(),
        sub: app.test_user.id.clone(),
        sid: "some-session".into(),
        iat: now - 600,
        nbf: now - 600,
        exp: now - 6, // past by the 5 s leeway + 1 s
        auth_time: now - 600,
        name: "Test User".into(),
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(gatehouse_core::auth::jwt::kid_for(&secret));
    let key = jsonwebtoken::EncodingKey::from_secret(secret.expose());
    gatehouse_core::auth::hs256::install();
    let access = jsonwebtoken::encode(&header, &claims, &key).unwrap();

    let expired_alone = get_with(&app, "/dashboard", &[(ACCESS, &access)]).await;
    let page = get_with(
        &app,
        "/dashboard",
        &[(ACCESS, &access), (REFRESH, &refresh)],
    )
    .await;

    assert_redirects_to(&expired_alone, "/login?next=%2Fdashboard");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(cookie_value(&page, ACCESS).is_some());
}

#[tokio::test]
async fn a_posted_form_is_served_after_a_transparent_refresh() {
    let app = spawn_app().await;
    app.login_test_user().await;
    let csrf_token = app.csrf_token("/account").await;
    let refresh = app.cookie_in(&app.client, REFRESH).unwrap();
    let csrf_cookie = app.cookie_in(&app.client, "gatehouse_csrf").unwrap();

    let response = request_with(
        &app,
        reqwest::Method::POST,
        "/account/sessions/revoke-others",
        &[(REFRESH, &refresh), ("gatehouse_csrf", &csrf_cookie)],
        Some(&[("csrf_token", &csrf_token)]),
    )
    .await;

    assert_redirects_to(&response, "/account");
    assert!(cookie_value(&response, ACCESS).is_some());
    assert!(cookie_value(&response, REFRESH).is_some());
}

/// A form that does not ask for the user (`/password/forgot`) checks its
/// token against the session behind the refresh cookie without rotating it:
/// the answer sets no session cookie, and the same refresh token still
/// renews the session afterwards.
#[tokio::test]
async fn a_form_that_does_not_need_the_user_leaves_the_refresh_token_alone() {
    let app = spawn_app().await;
    app.login_test_user().await;
    let bound_token = app.csrf_token("/password/forgot").await;
    let refresh = app.cookie_in(&app.client, REFRESH).unwrap();
    let csrf_cookie = app.cookie_in(&app.client, "gatehouse_csrf").unwrap();
    let cookies = [
        (REFRESH, refresh.as_str()),
        ("gatehouse_csrf", &csrf_cookie),
    ];

    let asked = request_with(
        &app,
        reqwest::Method::POST,
        "/password/forgot",
        &cookies,
        Some(&[
            ("email", "nobody@example.com"),
            ("csrf_token", &bound_token),
        ]),
    )
    .await;
    let forged = request_with(
        &app,
        reqwest::Method::POST,
        "/password/forgot",
        &cookies,
        Some(&[("email", "nobody@example.com"), ("csrf_token", "forged")]),
    )
    .await;

    assert_redirects_to(&asked, "/password/forgot/sent");
    assert!(
        set_cookie(&asked, REFRESH).is_none(),
        "{:?}",
        asked.headers()
    );
    assert!(
        set_cookie(&asked, ACCESS).is_none(),
        "{:?}",
        asked.headers()
    );
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let renewed = get_with(&app, "/dashboard", &[(REFRESH, &refresh)]).await;
    assert_eq!(renewed.status(), StatusCode::OK);
    assert!(cookie_value(&renewed, REFRESH).is_some());
}

#[tokio::test]
async fn a_rotated_refresh_token_replayed_after_the_grace_window_ends_the_session() {
    let app = spawn_app_with(|s| s.sessions.refresh_reuse_grace = Duration::ZERO).await;
    let login = app.login_test_user().await;
    let stolen = cookie_value(&login, REFRESH).unwrap();
    let renewed = get_with(&app, "/dashboard", &[(REFRESH, &stolen)]).await;
    let newer = cookie_value(&renewed, REFRESH).unwrap();
    let newer_access = cookie_value(&renewed, ACCESS).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let replay = get_with(&app, "/dashboard", &[(REFRESH, &stolen)]).await;

    assert_redirects_to(&replay, "/login?next=%2Fdashboard");
    assert_clears_cookie(&replay, REFRESH);
    let legitimate = get_with(&app, "/dashboard", &[(REFRESH, &newer)]).await;
    assert_redirects_to(&legitimate, "/login?next=%2Fdashboard");
    let with_access = get_with(&app, "/dashboard", &[(ACCESS, &newer_access)]).await;
    assert_redirects_to(&with_access, "/login?next=%2Fdashboard");
    assert!(
        event_kinds(&app)
            .await
            .iter()
            .any(|k| k == "refresh_token_reuse")
    );
}

#[tokio::test]
async fn two_concurrent_refreshes_inside_the_grace_window_both_succeed() {
    let app = Arc::new(spawn_app().await);
    let login = app.login_test_user().await;
    let refresh = cookie_value(&login, REFRESH).unwrap();

    let tabs: Vec<_> = (0..2)
        .map(|_| {
            let (app, refresh) = (app.clone(), refresh.clone());
            tokio::spawn(async move {
                get_with(&app, "/dashboard", &[(REFRESH, &refresh)])
                    .await
                    .status()
            })
        })
        .collect();

    for tab in tabs {
        assert_eq!(tab.await.unwrap(), StatusCode::OK);
    }
}

#[tokio::test]
async fn an_access_cookie_replayed_after_sign_out_goes_to_login() {
    let app = spawn_app().await;
    let login = app.login_test_user().await;
    let copied = cookie_value(&login, ACCESS).unwrap();

    let logout = app.post_logout().await;

    assert_clears_cookie(&logout, ACCESS);
    assert_clears_cookie(&logout, REFRESH);
    let replay = get_with(&app, "/dashboard", &[(ACCESS, &copied)]).await;
    assert_redirects_to(&replay, "/login?next=%2Fdashboard");
}

#[tokio::test]
async fn revoking_a_session_from_another_browser_signs_that_browser_out() {
    let app = spawn_app().await;
    let laptop = app.new_client();
    app.login_test_user_as(&laptop, false).await;
    app.login_test_user().await;
    let laptop_session = session_ids(&app, &app.test_user.id).await[0].clone();
    let csrf = app.csrf_token("/account").await;

    let response = app
        .post_form(
            &format!("/account/sessions/{laptop_session}/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;

    assert_redirects_to(&response, "/account");
    assert_redirects_to(
        &app.get_as(&laptop, "/dashboard").await,
        "/login?next=%2Fdashboard",
    );
    assert_eq!(app.get_dashboard().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn sign_out_all_other_sessions_keeps_only_this_one() {
    let app = spawn_app().await;
    let (phone, laptop) = (app.new_client(), app.new_client());
    app.login_test_user_as(&phone, false).await;
    app.login_test_user_as(&laptop, true).await;
    app.login_test_user().await;
    let csrf = app.csrf_token("/account").await;

    let response = app
        .post_form("/account/sessions/revoke-others", &[("csrf_token", &csrf)])
        .await;

    assert_redirects_to(&response, "/account");
    for other in [&phone, &laptop] {
        assert_redirects_to(
            &app.get_as(other, "/dashboard").await,
            "/login?next=%2Fdashboard",
        );
    }
    let account = app.get("/account").await.text().await.unwrap();
    assert!(account.contains("All your other sessions have been signed out."));
    assert_eq!(account.matches("This device").count(), 1);
    assert!(
        !account.contains("/revoke-others"),
        "only one session is left"
    );
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions_and_keeps_this_one() {
    let app = spawn_app().await;
    let other = app.new_client();
    app.login_test_user_as(&other, true).await;
    app.login_test_user().await;
    let csrf = app.csrf_token("/account").await;
    let new_password = "an entirely different passphrase";

    let response = app
        .post_form(
            "/account/password",
            &[
                ("current_password", &app.test_user.password),
                ("new_password", new_password),
                ("csrf_token", &csrf),
            ],
        )
        .await;

    assert_redirects_to(&response, "/account");
    assert!(
        cookie_value(&response, ACCESS).is_some(),
        "this session gets new tokens"
    );
    assert!(cookie_value(&response, REFRESH).is_some());
    assert_eq!(app.get_dashboard().await.status(), StatusCode::OK);
    assert_redirects_to(
        &app.get_as(&other, "/dashboard").await,
        "/login?next=%2Fdashboard",
    );
    let fresh = app.new_client();
    let old = app
        .login_as(&fresh, &app.test_user.email, &app.test_user.password)
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = app
        .login_as(&fresh, &app.test_user.email, new_password)
        .await;
    assert_redirects_to(&new, "/dashboard");
    let account = app.get("/account").await.text().await.unwrap();
    assert!(account.contains("Password changed"));
}

#[tokio::test]
async fn a_wrong_current_password_changes_nothing() {
    let app = spawn_app().await;
    let other = app.new_client();
    app.login_test_user_as(&other, false).await;
    app.login_test_user().await;
    let csrf = app.csrf_token("/account").await;

    let response = app
        .post_form(
            "/account/password",
            &[
                ("current_password", "not my password at all"),
                ("new_password", "an entirely different passphrase"),
                ("csrf_token", &csrf),
            ],
        )
        .await;

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Your current password is not correct.")
    );
    assert_eq!(
        app.get_as(&other, "/dashboard").await.status(),
        StatusCode::OK
    );
    let fresh = app.new_client();
    let login = app
        .login_as(&fresh, &app.test_user.email, &app.test_user.password)
        .await;
    assert_redirects_to(&login, "/dashboard");
}

#[tokio::test]
async fn the_absolute_limit_ends_a_session_whatever_the_activity() {
    let app = spawn_app_with(|s| s.sessions.session_max_age = Duration::from_secs(3600)).await;
    let login = app.login_test_user().await;
    let refresh = cookie_value(&login, REFRESH).unwrap();
    app.clock.advance(Duration::from_secs(3601));

    let response = get_with(&app, "/dashboard", &[(REFRESH, &refresh)]).await;

    assert_redirects_to(&response, "/login?next=%2Fdashboard");
    assert_clears_cookie(&response, REFRESH);
}

#[tokio::test]
async fn the_idle_limit_ends_a_session_not_refreshed_in_time() {
    let app = spawn_app_with(|s| s.sessions.session_idle_timeout = Duration::from_secs(3600)).await;
    let login = app.login_test_user_as(&app.client, true).await;
    let refresh = cookie_value(&login, REFRESH).unwrap();
    app.clock.advance(Duration::from_secs(3601));

    let response = get_with(&app, "/dashboard", &[(REFRESH, &refresh)]).await;

    assert_redirects_to(&response, "/login?next=%2Fdashboard");
}

#[tokio::test]
async fn remember_me_decides_the_refresh_cookie_lifetime() {
    let app = spawn_app().await;

    let remembered = app.login_test_user_as(&app.client, true).await;
    let session_only = app.login_test_user_as(&app.new_client(), false).await;

    let persistent = set_cookie(&remembered, REFRESH).unwrap();
    assert!(persistent.contains("Max-Age=2592000"), "{persistent}");
    assert!(persistent.contains("HttpOnly") && persistent.contains("SameSite=Lax"));
    let client_session = set_cookie(&session_only, REFRESH).unwrap();
    assert!(!client_session.contains("Max-Age"), "{client_session}");
    let access = set_cookie(&session_only, ACCESS).unwrap();
    assert!(access.contains("Max-Age=600"), "{access}");
}

#[tokio::test]
async fn a_revocation_written_by_another_instance_is_honoured_within_two_seconds() {
    let app = spawn_app().await;
    let login = app.login_test_user().await;
    let access = cookie_value(&login, ACCESS).unwrap();
    assert_eq!(
        get_with(&app, "/dashboard", &[(ACCESS, &access)])
            .await
            .status(),
        StatusCode::OK
    );
    let pool = app.pool.clone();
    let user_id = app.test_user.id.clone();

    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get_blocking().unwrap();
        diesel::update(sessions::table.filter(sessions::user_id.eq(user_id)))
            .set(sessions::revoked_at.eq(Some(chrono::Utc::now().naive_utc())))
            .execute(&mut conn)
            .unwrap();
    })
    .await
    .unwrap();
    let revoked_at = Instant::now();

    loop {
        let response = get_with(&app, "/dashboard", &[(ACCESS, &access)]).await;
        if response.status() == StatusCode::SEE_OTHER {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "still signed in 2 s after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn tokens_signed_with_a_previous_secret_are_accepted_and_unknown_keys_are_not() {
    let old = "the-previous-signing-secret-0123456789";
    let app = spawn_app_with(|s| {
        s.sessions.jwt_secret = Some(Secret::new("the-current-signing-secret-0123456789ab"));
        s.sessions.jwt_previous_secrets = vec![Secret::new(old)];
    })
    .await;
    let ttl = Duration::from_secs(600);
    let previous = gatehouse_core::auth::jwt::JwtKeys::new(&Secret::new(old), &[], ttl);
    let unknown = gatehouse_core::auth::jwt::JwtKeys::new(
        &Secret::new("a-secret-this-server-has-never-seen-0123"),
        &[],
        ttl,
    );
    let user = &app.test_user;

    let (user_id, session) = (
        gatehouse_core::ids::UserId::from_stored(user.id.clone()),
        gatehouse_core::ids::SessionId::from_stored("session"),
    );
    let accepted = previous.issue(&user_id, &session, &user.name, 0).unwrap();
    let refused = unknown.issue(&user_id, &session, &user.name, 0).unwrap();

    assert_eq!(
        get_with(&app, "/dashboard", &[(ACCESS, &accepted)])
            .await
            .status(),
        StatusCode::OK
    );
    let response = get_with(&app, "/dashboard", &[(ACCESS, &refused)]).await;
    assert_redirects_to(&response, "/login?next=%2Fdashboard");
    assert_clears_cookie(&response, ACCESS);
}

#[tokio::test]
async fn another_users_session_cannot_be_revoked() {
    let app = spawn_app().await;
    let victim = app.new_client();
    app.login_test_user_as(&victim, false).await;
    let victim_session = session_ids(&app, &app.test_user.id).await[0].clone();
    app.register(
        "Mallory",
        "mallory@example.com",
        "mallory's own long passphrase",
    )
    .await;
    let csrf = app.csrf_token("/account").await;

    let response = app
        .post_form(
            &format!("/account/sessions/{victim_session}/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_as(&victim, "/dashboard").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_account_page_lists_sessions_and_activity() {
    let app = spawn_app().await;
    let phone = Client::new(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    );
    app.login_test_user_as(&phone, false).await;
    let failed = app
        .login_as(&app.client, &app.test_user.email, "wrong password!!")
        .await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    app.login_test_user().await;

    let page = app.get("/account").await;

    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let body = page.text().await.unwrap();
    assert!(body.contains("Safari on iPhone"));
    assert!(body.contains("Firefox on Linux"));
    assert!(body.contains("This device"));
    assert!(body.contains("Failed sign-in"));
    assert!(body.contains("Signed in"));
    assert!(!body.contains(&app.test_user.password));
}

#[tokio::test]
async fn the_account_page_requires_signing_in() {
    let app = spawn_app().await;

    assert_redirects_to(&app.get("/account").await, "/login?next=%2Faccount");
    let response = app
        .post_form("/account/sessions/revoke-others", &[("csrf_token", "x")])
        .await;
    assert_redirects_to(&response, "/login");
}

#[tokio::test]
async fn a_cross_site_password_change_changes_nothing() {
    let app = spawn_app().await;
    app.login_test_user().await;
    let csrf = app.csrf_token("/account").await;

    let response = app
        .client
        .http
        .post(app.url("/account/password"))
        .header("Origin", "https://evil.example")
        .form(&[
            ("current_password", app.test_user.password.as_str()),
            ("new_password", "attacker chosen passphrase"),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get_dashboard().await.status(), StatusCode::OK);
    let fresh = app.new_client();
    let login = app
        .login_as(&fresh, &app.test_user.email, &app.test_user.password)
        .await;
    assert_redirects_to(&login, "/dashboard");
}
