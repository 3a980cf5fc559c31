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
