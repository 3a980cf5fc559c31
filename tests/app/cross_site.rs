//! CSRF: every unsafe form needs a valid token from the site's own origin.

use reqwest::{Response, StatusCode};

use crate::helpers::*;

/// POSTs `fields` with `client`'s cookies and exactly these extra headers.
async fn post_raw(
    app: &TestApp,
    client: &Client,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Response {
    let mut request = client.http.post(app.url(path)).form(fields);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[track_caller]
fn assert_forbidden_form(status: StatusCode, body: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("This form has expired"), "{body}");
}

#[tokio::test]
async fn sign_in_and_registration_without_a_valid_token_change_nothing() {
    let app = spawn_app().await;
    let other = app.new_client();
    let foreign_token = app.csrf_token_as(&other, "/register").await;
    app.csrf_token("/register").await; // this client has its own cookie

    for token in ["", "forged", foreign_token.as_str()] {
        let response = app
            .post_form(
                "/register",
                &[
                    ("name", "Eve"),
                    ("email", "eve@example.com"),
                    ("password", "purple monkey dishwasher"),
                    ("csrf_token", token),
                ],
            )
            .await;
        let status = response.status();
        assert_forbidden_form(status, &response.text().await.unwrap());
        let login = app
            .post_form(
                "/login",
                &[
                    ("email", app.test_user.email.as_str()),
                    ("password", app.test_user.password.as_str()),
                    ("csrf_token", token),
                ],
            )
            .await;
        assert_eq!(login.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie(&login, "gatehouse_access").is_none());
    }
    let nobody = app
        .login_as(
            &app.new_client(),
            "eve@example.com",
            "purple monkey dishwasher",
        )
        .await;
    assert_eq!(
        nobody.status(),
        StatusCode::UNAUTHORIZED,
        "no account was created"
    );
}

#[tokio::test]
async fn a_foreign_origin_is_refused_even_with_a_valid_token() {
    let app = spawn_app().await;
    let csrf = app.csrf_token("/login").await;
    let fields = [
        ("email", app.test_user.email.as_str()),
        ("password", app.test_user.password.as_str()),
        ("csrf_token", csrf.as_str()),
    ];

    for headers in [
        vec![("Origin", "https://evil.example")],
        vec![("Origin", "null")],
        vec![("Referer", "https://evil.example/attack.html")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![
            ("Origin", app.address.as_str()),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    ] {
        let response = post_raw(&app, &app.client, "/login", &fields, &headers).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }

    let no_headers = post_raw(&app, &app.client, "/login", &fields, &[]).await;
    // Signing in renewed the CSRF cookie; the signed-in page's token is current.
    let csrf = app.csrf_token("/dashboard").await;
    let fields = [
        ("email", app.test_user.email.as_str()),
        ("password", app.test_user.password.as_str()),
        ("csrf_token", csrf.as_str()),
    ];
    let same_origin_referer = post_raw(
        &app,
        &app.client,
        "/login",
        &fields,
        &[("Referer", &format!("{}/login", app.address))],
    )
    .await;
    assert_redirects_to(&no_headers, "/dashboard");
    assert_eq!(same_origin_referer.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_cross_site_sign_out_changes_nothing() {
    let app = spawn_app().await;
    app.login_test_user().await;
    let csrf = app.csrf_token("/logout").await;

    let forged = post_raw(&app, &app.client, "/logout", &[("csrf_token", "x")], &[]).await;
    let foreign = post_raw(
        &app,
        &app.client,
        "/logout",
        &[("csrf_token", &csrf)],
        &[("Origin", "https://evil.example")],
    )
    .await;

    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get_dashboard().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn one_sign_in_form_can_be_submitted_again_and_again() {
    let app = spawn_app().await;
    let csrf = app.csrf_token("/login").await;
    let cookie = format!(
        "gatehouse_csrf={}",
        app.cookie_in(&app.client, "gatehouse_csrf").unwrap()
    );
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    for _ in 0..3 {
        let response = raw
            .post(app.url("/login"))
            .header("Cookie", &cookie)
            .header("Origin", &app.address)
            .form(&[
                ("email", app.test_user.email.as_str()),
                ("password", app.test_user.password.as_str()),
                ("csrf_token", csrf.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_redirects_to(&response, "/dashboard");
    }
}

#[tokio::test]
async fn the_token_changes_at_sign_in_and_sign_out() {
    let app = spawn_app().await;
    let before = app.csrf_token("/login").await;

    app.login_test_user().await;
    let signed_in = app.csrf_token("/dashboard").await;
    app.post_logout().await;
    let after = app.csrf_token("/login").await;

    assert_ne!(before, signed_in);
    assert_ne!(signed_in, after);
    assert_ne!(before, after);
}
