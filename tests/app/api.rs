//! The JSON API: every endpoint's success and failure, CORS for listed front
//! ends only, the origin and content-type rules, and one session shared with
//! the pages.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const FRONT_END: &str = "http://127.0.0.1:18999";

async fn api_app() -> TestApp {
    spawn_app_with(|s| s.http.cors_origins = vec![FRONT_END.to_owned()]).await
}

/// `POST path` with a JSON body (no `Origin`, as a non-browser client).
async fn post_json(app: &TestApp, client: &Client, path: &str, body: Value) -> reqwest::Response {
    client
        .http
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn api_login(app: &TestApp, client: &Client) -> reqwest::Response {
    let body = json!({"email": app.test_user.email, "password": app.test_user.password});
    post_json(app, client, "/api/login", body).await
}

async fn error_of(response: reqwest::Response) -> String {
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signing_in_by_api_sets_the_cookies_the_pages_use() {
    let app = api_app().await;

    let response = api_login(&app, &app.client).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookie(&response, "gatehouse_access").is_some());
    assert!(set_cookie(&response, "gatehouse_refresh").is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], app.test_user.email);
    assert_eq!(body["user"]["name"], app.test_user.name);
    assert_eq!(body["user"]["id"], app.test_user.id);
    assert_eq!(
        app.get_dashboard().await.status(),
        StatusCode::OK,
        "one session for both"
    );
    let me: Value = app.get("/api/me").await.json().await.unwrap();
    assert_eq!(me["email"], app.test_user.email);
}

#[tokio::test]
async fn registering_by_api_signs_in_and_a_taken_or_weak_one_is_refused_by_name() {
    let app = api_app().await;
    let client = app.new_client();
    let fields = json!({
        "name": "Grace Hopper",
        "email": " Grace@Example.com",
        "password": "correct horse battery staple",
    });

    let created = post_json(&app, &client, "/api/register", fields.clone()).await;

    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(set_cookie(&created, "gatehouse_access").is_some());
    assert!(set_cookie(&created, "gatehouse_refresh").is_some());
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["user"]["email"], "grace@example.com");
    assert_eq!(body["user"]["name"], "Grace Hopper");
    let me: Value = app.get_as(&client, "/api/me").await.json().await.unwrap();
    assert_eq!(me["id"], body["user"]["id"]);

    let taken = post_json(&app, &app.new_client(), "/api/register", fields).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert!(set_cookie(&taken, "gatehouse_access").is_none());
    assert!(error_of(taken).await.contains("already exists"));

    let weak = json!({"name": "", "email": "not an address", "password": "short"});
    let refused = post_json(&app, &app.new_client(), "/api/register", weak).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error = error_of(refused).await;
    for field in ["name:", "email:", "password:"] {
        assert!(error.contains(field), "{error}");
    }
    assert_eq!(accounts_with_email(&app.pool, "grace@example.com").await, 1);
}

#[tokio::test]
async fn with_confirmation_required_registering_is_202_for_every_address_and_sign_in_waits() {
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| {
        s.mail.mail_url = Some(mail_url);
        s.mail.registration_verify = Some(gatehouse::config::VerifyMode::Required);
    })
    .await;
    let password = "correct horse battery staple";
    let mut answers = Vec::new();
    for email in [
        "grace@example.com",
        "grace@example.com",
        app.test_user.email.as_str(),
    ] {
        let body = json!({"name": "Grace Hopper", "email": email, "password": password});
        let answer = post_json(&app, &app.new_client(), "/api/register", body).await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        assert!(set_cookie(&answer, "gatehouse_access").is_none());
        answers.push(answer.json::<Value>().await.unwrap());
    }
    assert!(
        answers
            .iter()
            .all(|a| *a == json!({"status": "check_email"})),
        "{answers:?}"
    );
    assert_eq!(inbox.wait_for(3).await.len(), 3);
    assert_eq!(accounts_with_email(&app.pool, "grace@example.com").await, 0);

    // The right password of the unconfirmed address: 403 with its code, no
    // session; a wrong one: 401 as always.
    let client = app.new_client();
    let body = json!({"email": "grace@example.com", "password": password});
    let waiting = post_json(&app, &client, "/api/login", body).await;
    assert_eq!(waiting.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&waiting, "gatehouse_access").is_none());
    let error: Value = waiting.json().await.unwrap();
    assert_eq!(error["code"], "email_unverified");
    assert_eq!(error["error"], "Confirm your e-mail address first");
    let fresh = inbox.wait_for(4).await;
    assert!(confirm_link(&fresh[3]).is_some(), "{}", fresh[3]);
    let body = json!({"email": "grace@example.com", "password": "not the password"});
    let wrong = post_json(&app, &client, "/api/login", body).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_sign_ins_are_json_and_name_the_problem() {
    let app = api_app().await;
    let client = &app.client;

    let wrong = post_json(
        &app,
        client,
        "/api/login",
        json!({"email": app.test_user.email, "password": "nope"}),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(wrong).await, "Invalid email or password.");

    let missing = post_json(
        &app,
        client,
        "/api/login",
        json!({"email": "a@example.com"}),
    )
    .await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_of(missing).await.contains("password"));

    let malformed = client
        .http
        .post(app.url("/api/login"))
        .header("Content-Type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(malformed).await.contains("not valid JSON"));

    let form = client
        .http
        .post(app.url("/api/login"))
        .form(&[("email", "a@example.com"), ("password", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    error_of(form).await;

    let huge = "x".repeat(20 * 1024);
    let too_large = post_json(
        &app,
        client,
        "/api/login",
        json!({"email": huge, "password": "x"}),
    )
    .await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    error_of(too_large).await;
}

#[tokio::test]
async fn a_throttled_api_sign_in_is_429_json_with_retry_after() {
    let app = spawn_app_with(|s| s.throttle.login_max_failures = 2).await;
    for _ in 0..2 {
        let body = json!({"email": app.test_user.email, "password": "not it"});
        post_json(&app, &app.client, "/api/login", body).await;
    }

    let locked = api_login(&app, &app.client).await;

    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key("retry-after"));
    error_of(locked).await;
}

#[tokio::test]
async fn me_without_a_session_is_401_json_never_a_redirect_and_refreshes_transparently() {
    let app = api_app().await;

    let anonymous = app.get("/api/me").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(anonymous).await, "You need to log in");

    let signed_in = api_login(&app, &app.client).await;
    let refresh = set_cookie(&signed_in, "gatehouse_refresh")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // Only the refresh cookie: the access token has expired or is gone.
    let renewed = app.get_with_cookie("/api/me", &refresh).await;
    assert_eq!(renewed.status(), StatusCode::OK);
    assert!(set_cookie(&renewed, "gatehouse_access").is_some());
}

#[tokio::test]
async fn a_page_request_that_prefers_json_gets_401_json() {
    let app = api_app().await;

    let response = app
        .client
        .http
        .get(app.url("/dashboard"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(response).await, "You need to log in");
}

#[tokio::test]
async fn refresh_rotates_the_cookies_or_answers_401() {
    let app = api_app().await;

    let nothing = post_json(&app, &app.client, "/api/refresh", json!({})).await;
    assert_eq!(nothing.status(), StatusCode::UNAUTHORIZED);
    error_of(nothing).await;

    api_login(&app, &app.client).await;
    let refreshed = post_json(&app, &app.client, "/api/refresh", json!({})).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert!(set_cookie(&refreshed, "gatehouse_refresh").is_some());
    let body: Value = refreshed.json().await.unwrap();
    assert!(body["expires_in"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn logout_ends_the_session_and_me_is_401_after() {
    let app = api_app().await;
    api_login(&app, &app.client).await;
    let access = format!("gatehouse_access={}", app.access_cookie().unwrap());

    let out = post_json(&app, &app.client, "/api/logout", json!({})).await;

    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_clears_cookie(&out, "gatehouse_access");
    assert_clears_cookie(&out, "gatehouse_refresh");
    assert_eq!(app.get("/api/me").await.status(), StatusCode::UNAUTHORIZED);
    let old = app.get_with_cookie("/api/me", &access).await;
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the session was revoked"
    );
}

#[tokio::test]
async fn a_cross_origin_text_plain_logout_is_403_and_the_session_survives() {
    let app = api_app().await;
    api_login(&app, &app.client).await;

    let forged = app
        .client
        .http
        .post(app.url("/api/logout"))
        .header("Origin", "https://evil.example")
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    error_of(forged).await;
    assert_eq!(app.get("/api/me").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn listed_front_ends_get_cors_with_credentials_and_nobody_else_does() {
    let app = api_app().await;
    api_login(&app, &app.client).await;

    let preflight = app
        .client
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/login"))
        .header("Origin", FRONT_END)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], FRONT_END);
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert!(headers.contains_key("access-control-max-age"));

    let listed = app
        .client
        .http
        .get(app.url("/api/me"))
        .header("Origin", FRONT_END)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.headers()["access-control-allow-origin"], FRONT_END);
    assert!(
        listed.headers()["vary"]
            .to_str()
            .unwrap()
            .contains("Origin")
    );

    for origin in ["https://evil.example", "null"] {
        let other = app
            .client
            .http
            .get(app.url("/api/me"))
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        assert!(
            other
                .headers()
                .keys()
                .all(|k| !k.as_str().starts_with("access-control-")),
            "{origin}: {:?}",
            other.headers()
        );
    }

    let from_front_end = app
        .client
        .http
        .post(app.url("/api/refresh"))
        .header("Origin", FRONT_END)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        from_front_end.status(),
        StatusCode::OK,
        "a listed origin may post"
    );
}

#[tokio::test]
async fn api_errors_are_json_and_the_document_describes_every_endpoint() {
    let app = api_app().await;

    let wrong_method = app
        .client
        .http
        .delete(app.url("/api/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    error_of(wrong_method).await;

    let document: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/register",
        "/api/login",
        "/api/me",
        "/api/refresh",
        "/api/logout",
    ] {
        assert!(
            document["paths"][path].is_object(),
            "{path} is not described"
        );
    }
}

#[test]
fn same_site_none_is_refused_without_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env_clear()
        .env("DATABASE_URL", dir.path().join("x.db"))
        .env("JWT_SECRET", TEST_SECRET)
        .env("COOKIE_SAMESITE", "none")
        .current_dir(dir.path())
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("COOKIE_SAMESITE") && stderr.contains("Secure"),
        "{stderr}"
    );
}

#[tokio::test]
async fn preflights_from_unlisted_origins_get_no_cors_headers_and_a_json_error() {
    let app = api_app().await;

    for origin in ["https://evil.example", "null"] {
        let preflight = app
            .client
            .http
            .request(reqwest::Method::OPTIONS, app.url("/api/login"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
            .await
            .unwrap();
        assert!(!preflight.status().is_success(), "{origin}");
        assert!(
            preflight
                .headers()
                .keys()
                .all(|k| !k.as_str().starts_with("access-control-")),
            "{origin}: {:?}",
            preflight.headers()
        );
        error_of(preflight).await;
    }
}

#[tokio::test]
async fn a_json_post_from_an_unlisted_origin_is_403_and_changes_nothing() {
    let app = api_app().await;
    api_login(&app, &app.client).await;

    let foreign = app
        .client
        .http
        .post(app.url("/api/logout"))
        .header("Origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();

    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    error_of(foreign).await;
    assert_eq!(app.get("/api/me").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn posts_without_the_json_content_type_are_415_even_without_an_origin() {
    let app = api_app().await;
    api_login(&app, &app.client).await;

    for path in ["/api/logout", "/api/refresh"] {
        let plain = app
            .client
            .http
            .post(app.url(path))
            .header("Content-Type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
        error_of(plain).await;
    }
    assert_eq!(
        app.get("/api/me").await.status(),
        StatusCode::OK,
        "the session survives"
    );
}
