//! Register, sign in, dashboard, sign out.

use crate::helpers::*;
use reqwest::StatusCode;

#[tokio::test]
async fn registering_signs_in_and_greets_by_name() {
    let app = spawn_app().await;

    let response = app
        .register("Ada Lovelace", "ada@example.com", "analytical engine 1843")
        .await;

    assert_redirects_to(&response, "/dashboard");
    let dashboard = app.get_dashboard().await;
    assert_eq!(dashboard.status(), StatusCode::OK);
    assert!(dashboard.text().await.unwrap().contains("Ada Lovelace"));
}

#[tokio::test]
async fn signing_in_leads_to_the_dashboard() {
    let app = spawn_app().await;

    app.login_test_user().await;

    let dashboard = app.get_dashboard().await;
    assert_eq!(dashboard.status(), StatusCode::OK);
    let body = dashboard.text().await.unwrap();
    assert!(body.contains(&app.test_user.name));
    assert!(body.contains("127.0.0.1"));
    assert!(body.contains("Firefox on Linux"));
}

#[tokio::test]
async fn dashboard_redirects_anonymous_visitors_to_login() {
    let app = spawn_app().await;

    let response = app.get_dashboard().await;

    assert_redirects_to(&response, "/login?next=%2Fdashboard");
}

#[tokio::test]
async fn signing_out_clears_the_cookie_and_gates_the_dashboard_again() {
    let app = spawn_app().await;
    app.login_test_user().await;

    let response = app.post_logout().await;

    assert_redirects_to(&response, "/login");
    assert_clears_cookie(&response, "gatehouse_access");
    let login = app.get("/login").await.text().await.unwrap();
    assert!(login.contains("You have been signed out."));
    assert_redirects_to(&app.get_dashboard().await, "/login?next=%2Fdashboard");
}

#[tokio::test]
async fn every_protected_route_redirects_anonymous_visitors_to_login() {
    let app = spawn_app().await;
    let csrf = app.csrf_token("/login").await;

    for page in PROTECTED_PAGES {
        let response = app.get(page).await;
        let expected = format!(
            "/login?next={}",
            page.replace('/', "%2F")
                .replace('?', "%3F")
                .replace('=', "%3D")
        );
        assert_redirects_to(&response, &expected);
    }
    for action in PROTECTED_ACTIONS {
        let response = app.post_form(action, &[("csrf_token", &csrf)]).await;
        assert_redirects_to(&response, "/login");
    }
}

#[tokio::test]
async fn restarting_the_server_keeps_accounts_and_signed_in_browsers() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    // No JWT_SECRET: in development the signing secret is kept beside the database.
    settings.sessions.jwt_secret = None;
    let secret_file = gatehouse::startup::secret_file_for(&settings.database.database_url);
    let first = gatehouse::startup::Application::build(settings.clone())
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", first.port());
    let server = tokio::spawn(first.run_until_stopped());
    let client = Client::new("restart-test");
    let registered = client
        .submit(
            &address,
            "/register",
            "/register",
            &[
                ("name", "Restarted"),
                ("email", "restart@example.com"),
                ("password", "survives every restart"),
            ],
        )
        .await;
    assert_redirects_to(&registered, "/dashboard");
    assert!(
        secret_file.exists(),
        "{} was not created",
        secret_file.display()
    );
    server.abort();

    settings.http.port = 0;
    let second = gatehouse::startup::Application::build(settings)
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    // The client's cookies were set for 127.0.0.1 (any port).
    let dashboard = client
        .http
        .get(format!("{address}/dashboard"))
        .send()
        .await
        .unwrap();

    assert_eq!(dashboard.status(), StatusCode::OK);
    assert!(dashboard.text().await.unwrap().contains("Restarted"));

    // The account itself survived: a new client signs in with its password.
    let other = Client::new("restart-test-2");
    let signed_in = other
        .submit(
            &address,
            "/login",
            "/login",
            &[
                ("email", "restart@example.com"),
                ("password", "survives every restart"),
            ],
        )
        .await;
    assert_redirects_to(&signed_in, "/dashboard");
}
