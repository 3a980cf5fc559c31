//! What a newcomer meets first: the site answers on every loopback spelling,
//! says why a form was refused, answers HEAD, has an icon, and explains an
//! empty sign-in instead of counting it.

use std::process::Command;

use diesel::prelude::*;
use gatehouse_core::db::schema::{auth_events, login_throttles, rate_limits};
use reqwest::StatusCode;

use crate::helpers::*;

/// Signs the seeded user in from a fresh client whose forms claim `origin`.
async fn post_login_from(app: &TestApp, origin: &str) -> reqwest::Response {
    let client = app.new_client();
    let csrf = app.csrf_token_as(&client, "/login").await;
    client
        .http
        .post(app.url("/login"))
        .header("Origin", origin)
        .form(&[
            ("email", app.test_user.email.as_str()),
            ("password", app.test_user.password.as_str()),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn without_public_url_every_loopback_spelling_is_the_sites_origin() {
    let app = spawn_app().await;

    for host in ["localhost", "127.0.0.1", "[::1]"] {
        let origin = format!("http://{host}:{}", app.port);
        let response = post_login_from(&app, &origin).await;
        assert_redirects_to(&response, "/dashboard");
    }
    let other_port = format!("http://localhost:{}", app.port.wrapping_add(1));
    let refused = post_login_from(&app, &other_port).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn with_public_url_only_it_is_the_sites_origin() {
    let app =
        spawn_app_with(|s| s.http.public_url = Some("https://login.example.com".into())).await;

    let localhost = post_login_from(&app, &format!("http://localhost:{}", app.port)).await;

    assert_eq!(localhost.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_form_refused_for_its_origin_says_which_origin_and_which_site() {
    let app = spawn_app().await;

    let response = post_login_from(&app, "http://evil.example").await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.text().await.unwrap();
    let expected = format!(
        "This form was sent from http://evil.example, but this site is {}.",
        app.address
    );
    assert!(body.contains(&expected), "{body}");
    assert!(body.contains("PUBLIC_URL"), "{body}");
}

#[tokio::test]
async fn in_production_a_refused_origin_gets_a_plain_message() {
    let app = spawn_app_with(|s| s.app_env = gatehouse::config::AppEnv::Production).await;

    let response = post_login_from(&app, "http://evil.example").await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.text().await.unwrap();
    assert!(body.contains("sent from another site"), "{body}");
    assert!(
        !body.contains("evil.example") && !body.contains("PUBLIC_URL"),
        "{body}"
    );
}

#[tokio::test]
async fn an_empty_sign_in_is_explained_and_not_counted() {
    let app = spawn_app().await;
    let csrf = app.csrf_token("/login").await;

    for (email, password) in [
        ("", ""),
        (app.test_user.email.as_str(), ""),
        ("", "something"),
    ] {
        let response = app
            .post_form(
                "/login",
                &[
                    ("email", email),
                    ("password", password),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = response.text().await.unwrap();
        assert!(body.contains("Enter your e-mail and password."), "{body}");
    }

    let pool = app.pool.clone();
    let (failures, events) = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get_blocking().unwrap();
        let failures: i64 = rate_limits::table
            .count()
            .get_result::<i64>(&mut conn)
            .unwrap()
            + login_throttles::table
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap();
        let events: i64 = auth_events::table
            .filter(auth_events::kind.eq("sign_in_failed"))
            .count()
            .get_result(&mut conn)
            .unwrap();
        (failures, events)
    })
    .await
    .unwrap();
    assert_eq!((failures, events), (0, 0));
}

#[tokio::test]
async fn the_address_a_failed_password_change_leaves_goes_to_the_account_page() {
    let app = spawn_app().await;
    app.login_test_user().await;

    let response = app.get("/account/password").await;

    assert_redirects_to(&response, "/account");
}

#[tokio::test]
async fn head_is_answered_wherever_get_is() {
    let app = spawn_app().await;
    let head = |path: &str| app.client.http.head(app.url(path)).send();

    let login = head("/login").await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert!(
        login.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(login.text().await.unwrap().is_empty());
    let dashboard = head("/dashboard").await.unwrap();
    assert_redirects_to(&dashboard, "/login?next=%2Fdashboard");
    for path in ["/healthz", "/static/site.css", "/favicon.ico"] {
        assert_eq!(head(path).await.unwrap().status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn the_site_has_an_icon() {
    let app = spawn_app().await;

    let response = app.get("/favicon.ico").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/x-icon");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(&bytes[..4], &[0, 0, 1, 0], "an ICO file");
}

#[tokio::test]
async fn the_csp_allows_data_images_and_nothing_wider() {
    let app = spawn_app().await;

    let response = app.get("/login").await;

    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("img-src 'self' data:;"), "{csp}");
    assert!(!csp.contains('*') && !csp.contains("unsafe"), "{csp}");
}

#[test]
fn a_port_in_use_is_reported_once_by_its_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env_clear()
        .env("PORT", &port)
        .env("DATABASE_URL", dir.path().join("port.db"))
        .env("JWT_SECRET", TEST_SECRET)
        .env("BCRYPT_COST", "4")
        .current_dir(dir.path())
        .output()
        .unwrap();

    assert!(!output.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let message = format!("PORT {port} is already in use");
    assert_eq!(all.matches(&message).count(), 1, "{all}");
}
