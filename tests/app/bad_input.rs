//! Hostile or broken requests get a clear 4xx (or the sign-in redirect), never
//! a 5xx; errors use the site's pages; headers and limits hold.

use std::sync::Arc;

use reqwest::{Method, StatusCode};

use crate::helpers::*;

fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn bodies_over_16_kib_get_the_413_page() {
    let app = spawn_app().await;
    let csrf = app.csrf_token("/login").await;
    let big = "x".repeat(20 * 1024);

    let response = app
        .post_form(
            "/login",
            &[("email", big.as_str()), ("csrf_token", csrf.as_str())],
        )
        .await;

    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = response.text().await.unwrap();
    assert!(body.contains("Gatehouse") && body.contains("413"), "{body}");
}

#[tokio::test]
async fn wrong_methods_get_405_with_allow() {
    let app = spawn_app().await;
    app.login_test_user().await;
    let cookie = format!("gatehouse_access={}", app.access_cookie().unwrap());

    for (method, path, allow) in [
        (Method::DELETE, "/dashboard", "GET"),
        (Method::POST, "/dashboard", "GET"),
        (Method::PUT, "/login", "GET, POST"),
        (Method::PATCH, "/register", "GET, POST"),
        (Method::DELETE, "/logout", "GET, POST"),
        (Method::PUT, "/account/password", "GET, POST"),
    ] {
        let response = raw_client()
            .request(method.clone(), app.url(path))
            .header("Cookie", &cookie)
            .header("Origin", &app.address)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let allowed = response.headers()["allow"].to_str().unwrap().to_owned();
        for m in allow.split(", ") {
            assert!(allowed.contains(m), "{method} {path}: Allow {allowed}");
        }
        assert!(response.text().await.unwrap().contains("405"));
    }
}

#[tokio::test]
async fn unknown_paths_get_the_404_page() {
    let app = spawn_app().await;

    let response = app.get("/no/such/page").await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = response.text().await.unwrap();
    assert!(body.contains("There is nothing at this address."));
    assert!(body.contains("/static/site.css"), "in the site's layout");
}

#[tokio::test]
async fn malformed_bodies_get_a_4xx() {
    let app = spawn_app().await;
    let csrf = app.csrf_token("/login").await;
    let csrf_cookie = app.cookie_in(&app.client, "gatehouse_csrf").unwrap();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "application/x-www-form-urlencoded",
            b"email=\xff\xfe&password=\xc3\x28".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"email=%ZZ&password=%&&&==".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            format!("csrf_token={csrf}&email=%ff%fe").into_bytes(),
        ),
        (
            "application/json",
            br#"{"email":"a","password":"b"}"#.to_vec(),
        ),
        ("text/plain", b"hello".to_vec()),
        ("application/x-www-form-urlencoded", Vec::new()),
    ];

    for path in ["/login", "/register", "/logout"] {
        for (content_type, body) in &bodies {
            let response = raw_client()
                .post(app.url(path))
                .header("Content-Type", *content_type)
                .header("Cookie", format!("gatehouse_csrf={csrf_cookie}"))
                .header("Origin", &app.address)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert!(
                status.is_client_error() || status.is_redirection(),
                "{path} {content_type} {body:?}: {status}"
            );
        }
    }
}

#[tokio::test]
async fn garbage_cookies_never_cause_a_5xx() {
    let app = spawn_app().await;
    let huge = format!("gatehouse_access={}", "a".repeat(16 * 1024));

    for cookie in [
        ";;;=;",
        "=",
        "gatehouse_access",
        "gatehouse_access=; gatehouse_access=x.y.z",
        "gatehouse_refresh=%00%ff",
        "gatehouse_csrf=\"quoted\"",
        huge.as_str(),
    ] {
        for path in ["/dashboard", "/login", "/account", "/"] {
            let response = app.get_with_cookie(path, cookie).await;
            let status = response.status();
            assert!(
                status.is_success() || status.is_redirection() || status.is_client_error(),
                "{path} {cookie:.40}: {status}"
            );
        }
    }
}

#[tokio::test]
async fn every_page_is_marked_no_store_and_carries_the_security_headers() {
    let app = spawn_app().await;
    let anonymous = app.get("/login").await;
    app.login_test_user().await;

    for response in [
        anonymous,
        app.get_dashboard().await,
        app.get("/account").await,
    ] {
        let headers = response.headers();
        assert_eq!(headers["cache-control"], "no-store");
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "same-origin");
        assert_eq!(headers["cross-origin-opener-policy"], "same-origin");
        assert!(headers.contains_key("permissions-policy"));
        assert!(
            !headers.contains_key("strict-transport-security"),
            "development"
        );
    }
}

#[tokio::test]
async fn production_adds_hsts() {
    let app = spawn_app_with(|s| s.app_env = gatehouse::config::AppEnv::Production).await;

    let response = app.get("/login").await;

    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
}

#[tokio::test]
async fn pages_carry_no_inline_script_or_style() {
    let app = spawn_app().await;
    app.login_test_user().await;

    for path in ["/dashboard", "/account", "/logout"] {
        let body = app.get(path).await.text().await.unwrap();
        assert!(!body.contains("<script"), "{path}");
        assert!(
            !body.contains("<style") && !body.contains("style="),
            "{path}"
        );
    }
}

#[tokio::test]
async fn static_files_are_served_without_directory_listing() {
    let app = spawn_app().await;

    let css = app.get("/static/site.css").await;
    let listing = app.get("/static/").await;
    let vendor = app.get("/static/vendor/pico/").await;
    let escape = app.get("/static/../Cargo.toml").await;

    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    for response in [listing, vendor, escape] {
        assert!(response.status().is_client_error(), "{}", response.status());
        assert!(!response.text().await.unwrap().contains("Index of"));
    }
}

#[tokio::test]
async fn health_and_readiness_probes_answer() {
    let app = spawn_app().await;

    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "ok");
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test]
async fn concurrent_sign_ins_never_find_the_database_locked() {
    let app = Arc::new(spawn_app().await);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let client = app.new_client();
                let response = app
                    .login_as(&client, &app.test_user.email, &app.test_user.password)
                    .await;
                response.status()
            })
        })
        .collect();

    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn a_get_to_logout_changes_nothing() {
    let app = spawn_app().await;
    app.login_test_user().await;

    let page = app.get("/logout").await;

    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Sign out"));
    assert_eq!(app.get_dashboard().await.status(), StatusCode::OK);
    let anonymous = app.new_client();
    assert_redirects_to(&app.get_as(&anonymous, "/logout").await, "/login");
}

#[tokio::test]
async fn errors_under_api_are_json_not_pages() {
    let app = spawn_app().await;

    let response = app.get("/api/nothing-here").await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
}
