//! Registration and sign-in forms: validation, messages, `next`.

use diesel::prelude::*;
use gatehouse_core::db::schema::{sessions, users};
use reqwest::StatusCode;

use crate::helpers::*;

const GOOD_PASSWORD: &str = "purple monkey dishwasher";

async fn user_count(app: &TestApp) -> i64 {
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        users::table
            .count()
            .get_result(&mut pool.get_blocking().unwrap())
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_short_password_is_refused_and_the_form_keeps_name_and_email() {
    let app = spawn_app().await;

    let response = app
        .register("Ada Lovelace", "ada@example.com", "elevenchars")
        .await;

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    assert!(body.contains("Use at least 12 characters."));
    assert!(body.contains(r#"value="Ada Lovelace""#));
    assert!(body.contains(r#"value="ada@example.com""#));
    assert!(
        !body.contains("elevenchars"),
        "the password is never echoed"
    );
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn a_password_over_72_bytes_is_refused_not_truncated() {
    let app = spawn_app().await;
    let long = format!("{}{}", "é".repeat(30), "purple monkey"); // 60 + 13 = 73 bytes
    assert_eq!(long.len(), 73);

    let response = app.register("Ada", "ada@example.com", &long).await;

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    assert!(body.contains("Use at most 72 bytes"), "{body}");
    assert!(body.contains("this one has 73"), "{body}");
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn a_password_of_exactly_72_bytes_is_accepted() {
    let app = spawn_app().await;
    let exact = format!(
        "{}{}",
        "purple monkey dishwasher ".repeat(2),
        "zebra quartz jukebox!!"
    );
    let exact = &exact[..72];

    let response = app.register("Ada", "ada@example.com", exact).await;

    assert_redirects_to(&response, "/dashboard");
    let again = app
        .login_as(&app.new_client(), "ada@example.com", exact)
        .await;
    assert_redirects_to(&again, "/dashboard");
}

#[tokio::test]
async fn bad_names_and_emails_get_messages_beside_their_fields() {
    let app = spawn_app().await;

    for (name, email, message) in [
        ("Ada", "not-an-email", "Enter a valid email address"),
        ("Ada", "ada@localhost", "Enter a valid email address"),
        ("Ada", "", "Enter your email address."),
        ("   ", "ada@example.com", "Enter your name."),
        (
            &"n".repeat(101),
            "ada@example.com",
            "Use at most 100 characters.",
        ),
    ] {
        let response = app.register(name, email, GOOD_PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?} {email:?}"
        );
        assert!(
            response.text().await.unwrap().contains(message),
            "{message}"
        );
    }
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn only_a_plain_address_is_an_email_not_display_text_or_control_characters() {
    let app = spawn_app().await;

    for email in [
        "Support Team <mallory@example.com>",
        "<mallory@example.com>",
        "Evil\u{1b}[2J\u{7} <mallory@example.com>",
        "row\r\nforged <mallory@example.com>",
        "\"mallory example\"@example.com",
        "\"mallory\texample\"@example.com",
        "mallory@[127.0.0.1]",
    ] {
        let response = app.register("Mallory", email, GOOD_PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{email:?}"
        );
        let body = response.text().await.unwrap();
        assert!(
            body.contains("Enter a valid email address, like name@example.com."),
            "{email:?}: {body}"
        );
    }
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn a_taken_email_is_reported_beside_the_email_field_whatever_its_case() {
    let app = spawn_app().await;

    for email in ["user@example.com", "  USER@Example.com "] {
        let response = app.register("Someone Else", email, GOOD_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = response.text().await.unwrap();
        assert!(body.contains("An account with this email already exists."));
        assert!(body.contains(r#"id="email-error""#));
    }
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn emails_are_stored_trimmed_and_lower_cased() {
    let app = spawn_app().await;

    app.register("Ada", "  Ada@Example.COM ", GOOD_PASSWORD)
        .await;

    let login = app
        .login_as(&app.new_client(), "ada@example.com", GOOD_PASSWORD)
        .await;
    assert_redirects_to(&login, "/dashboard");
}

#[tokio::test]
async fn a_script_in_the_name_is_rendered_escaped() {
    let app = spawn_app().await;

    app.register(
        "<script>alert(1)</script>",
        "xss@example.com",
        GOOD_PASSWORD,
    )
    .await;

    let body = app.get_dashboard().await.text().await.unwrap();
    assert!(!body.contains("<script>alert(1)</script>"));
    assert!(body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
}

#[tokio::test]
async fn missing_fields_re_render_the_form_instead_of_failing() {
    let app = spawn_app().await;
    let csrf = app.csrf_token("/register").await;

    let register = app.post_form("/register", &[("csrf_token", &csrf)]).await;
    let csrf = app.csrf_token("/login").await;
    let login = app.post_form("/login", &[("csrf_token", &csrf)]).await;

    assert_eq!(register.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(register.text().await.unwrap().contains("Enter your name."));
    assert_eq!(login.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        login
            .text()
            .await
            .unwrap()
            .contains("Enter your e-mail and password.")
    );
}

#[tokio::test]
async fn signed_in_visitors_skip_the_forms() {
    let app = spawn_app().await;
    app.login_test_user().await;

    assert_redirects_to(&app.get("/login").await, "/dashboard");
    assert_redirects_to(&app.get("/register").await, "/dashboard");
    assert_redirects_to(&app.get("/").await, "/dashboard");
}

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_look_the_same() {
    let app = spawn_app().await;
    let client = app.new_client();

    let unknown = app
        .login_as(&client, "nobody@example.com", "some password here")
        .await;
    let wrong = app
        .login_as(&client, &app.test_user.email, "some password here")
        .await;

    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let unknown = unknown
        .text()
        .await
        .unwrap()
        .replace("nobody@example.com", "EMAIL");
    let wrong = wrong
        .text()
        .await
        .unwrap()
        .replace(&app.test_user.email, "EMAIL");
    assert_eq!(unknown, wrong);
    assert!(wrong.contains("Invalid email or password."));
    assert!(wrong.contains(r#"value="EMAIL""#), "the e-mail is kept");
}

#[tokio::test]
async fn sign_in_follows_only_safe_next_values() {
    let app = spawn_app().await;
    let cases = [
        ("/account?tab=1", "/account?tab=1"),
        ("/dashboard", "/dashboard"),
        ("//evil.example", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("https://evil.example", "/dashboard"),
        ("javascript:alert(1)", "/dashboard"),
        ("%2F%2Fevil.example", "/dashboard"),
        ("/%2F%2Fevil.example", "/dashboard"),
        ("/%0d%0aSet-Cookie:x", "/dashboard"),
        ("/\r\nSet-Cookie: x=1", "/dashboard"),
    ];

    for (next, expected) in cases {
        let client = app.new_client();
        let csrf = app.csrf_token_as(&client, "/login").await;
        let response = app
            .post_form_as(
                &client,
                "/login",
                &[
                    ("email", app.test_user.email.as_str()),
                    ("password", app.test_user.password.as_str()),
                    ("next", next),
                    ("csrf_token", csrf.as_str()),
                ],
            )
            .await;
        assert_redirects_to(&response, expected);
        assert!(
            set_cookie(&response, "x").is_none(),
            "{next:?} injected a header"
        );
    }
}

#[tokio::test]
async fn the_login_form_carries_only_a_safe_next() {
    let app = spawn_app().await;

    let evil = app
        .get("/login?next=%2F%2Fevil.example")
        .await
        .text()
        .await
        .unwrap();
    let local = app
        .get("/login?next=%2Faccount")
        .await
        .text()
        .await
        .unwrap();

    assert!(evil.contains(r#"name="next" value="/dashboard""#));
    assert!(local.contains(r#"name="next" value="/account""#));
}

#[tokio::test]
async fn signing_in_again_ends_the_previous_session() {
    let app = spawn_app().await;
    app.login_test_user().await;
    let old_access = app.access_cookie().unwrap();
    // Signed in, /login redirects; the session-bound token of the nav's Sign
    // out form is what an open sign-in form would now carry.
    let csrf = app.csrf_token("/dashboard").await;

    let again = app
        .post_form(
            "/login",
            &[
                ("email", app.test_user.email.as_str()),
                ("password", app.test_user.password.as_str()),
                ("csrf_token", csrf.as_str()),
            ],
        )
        .await;
    assert_redirects_to(&again, "/dashboard");

    let pool = app.pool.clone();
    let revoked: Vec<Option<chrono::NaiveDateTime>> = tokio::task::spawn_blocking(move || {
        sessions::table
            .order(sessions::created_at.asc())
            .select(sessions::revoked_at)
            .load(&mut pool.get_blocking().unwrap())
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(revoked.len(), 2);
    assert!(revoked[0].is_some() && revoked[1].is_none());
    let replay = app
        .get_with_cookie("/dashboard", &format!("gatehouse_access={old_access}"))
        .await;
    assert_redirects_to(&replay, "/login?next=%2Fdashboard");
}

#[tokio::test]
async fn the_access_cookie_has_the_right_attributes() {
    let app = spawn_app().await;

    let response = app.login_test_user().await;

    let cookie = set_cookie(&response, "gatehouse_access").unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Secure"));
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert_eq!(token.split('.').count(), 3, "a JWT");
}

#[tokio::test]
async fn secure_cookies_use_the_host_prefix() {
    let app = spawn_app_with(|s| s.http.cookie_secure = Some(true)).await;
    // Post with the CSRF cookie the client was given, by hand.
    let login_page = reqwest::Client::new()
        .get(app.url("/login"))
        .send()
        .await
        .unwrap();
    let set = login_page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set.starts_with("__Host-gatehouse_csrf=") && set.contains("Secure"),
        "{set}"
    );
    let value = set.split(';').next().unwrap().to_owned();
    let form_token = csrf_of(&login_page.text().await.unwrap());

    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/login"))
        .header("Cookie", value)
        .header("Origin", &app.address)
        .form(&[
            ("email", app.test_user.email.as_str()),
            ("password", app.test_user.password.as_str()),
            ("csrf_token", form_token.as_str()),
        ])
        .send()
        .await
        .unwrap();

    assert_redirects_to(&response, "/dashboard");
    let access = set_cookie(&response, "__Host-gatehouse_access").unwrap();
    assert!(access.contains("Secure") && access.contains("Path=/") && !access.contains("Domain"));
    assert!(
        set_cookie(&response, "__Host-gatehouse_refresh")
            .unwrap()
            .contains("Secure")
    );
}

#[tokio::test]
async fn the_password_rules_are_stated_before_typing_and_replaced_by_the_error() {
    let app = spawn_app().await;

    let fresh = app.get("/register").await.text().await.unwrap();
    let refused = app
        .register("Ada", "ada@example.com", "short")
        .await
        .text()
        .await
        .unwrap();

    assert!(
        fresh.contains(r#"aria-describedby="password-help""#),
        "{fresh}"
    );
    assert!(fresh.contains("at most 72 bytes"), "{fresh}");
    assert!(
        refused.contains(r#"aria-describedby="password-error""#),
        "{refused}"
    );
    assert!(
        !refused.contains(r#"id="password-help""#),
        "one message per problem: {refused}"
    );
}
