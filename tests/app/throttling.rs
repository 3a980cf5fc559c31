//! Sign-in throttling, registration limits, password strength and re-hashing.

use diesel::prelude::*;
use gatehouse_core::db::schema::{login_throttles, users};
use reqwest::{Response, StatusCode};

use crate::helpers::*;

async fn attempt(app: &TestApp, client: &Client, email: &str, password: &str) -> Response {
    app.login_as(client, email, password).await
}

fn retry_after(response: &Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn five_failures_lock_the_pair_even_for_the_right_password() {
    let app = spawn_app().await;
    let email = app.test_user.email.clone();
    for _ in 0..5 {
        let failed = attempt(&app, &app.client, &email, "not the password!").await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    }

    let locked = attempt(&app, &app.client, &email, &app.test_user.password).await;

    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((55..=60).contains(&retry_after(&locked)));
    let body = locked.text().await.unwrap();
    assert!(body.contains("Try again in 1 minute"), "{body}");
}

#[tokio::test]
async fn a_lock_leaves_other_accounts_and_other_addresses_alone() {
    let app =
        spawn_app_with(|s| s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let other = seed_user(
        &app.pool,
        "Other",
        "other@example.com",
        "another long passphrase",
    )
    .await;
    let attacker = Client::behind_proxy("203.0.113.66");
    for _ in 0..6 {
        attempt(&app, &attacker, &app.test_user.email, "guess guess guess").await;
    }
    let locked = attempt(
        &app,
        &attacker,
        &app.test_user.email,
        &app.test_user.password,
    )
    .await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);

    let victim_at_home = Client::behind_proxy("198.51.100.7");
    let victim = attempt(
        &app,
        &victim_at_home,
        &app.test_user.email,
        &app.test_user.password,
    )
    .await;
    let neighbour = attempt(&app, &attacker, &other.email, &other.password).await;

    assert_redirects_to(&victim, "/dashboard");
    assert_redirects_to(&neighbour, "/dashboard");
}

#[tokio::test]
async fn a_success_clears_the_pair_counter() {
    let app = spawn_app().await;
    let email = app.test_user.email.clone();
    for _ in 0..4 {
        attempt(&app, &app.client, &email, "not the password!").await;
    }
    assert_redirects_to(&app.login_test_user().await, "/dashboard");

    for _ in 0..4 {
        let failed = attempt(&app, &app.new_client(), &email, "not the password!").await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_lock_doubles_with_each_further_failure() {
    let app = spawn_app().await;
    let email = app.test_user.email.clone();
    for _ in 0..5 {
        attempt(&app, &app.client, &email, "not the password!").await;
    }
    // The first lock (one minute) runs out.
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1);
        diesel::update(login_throttles::table)
            .set(login_throttles::locked_until.eq(Some(past)))
            .execute(&mut pool.get_blocking().unwrap())
            .unwrap();
    })
    .await
    .unwrap();

    let sixth = attempt(&app, &app.client, &email, "still not it!!").await;
    let locked = attempt(&app, &app.client, &email, &app.test_user.password).await;

    assert_eq!(sixth.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((115..=120).contains(&retry_after(&locked)));
}

#[tokio::test]
async fn one_address_is_capped_across_all_emails() {
    let app = spawn_app_with(|s| s.throttle.login_max_failures_per_ip = 3).await;
    for n in 0..3 {
        let email = format!("nobody{n}@example.com");
        let failed = attempt(&app, &app.client, &email, "whatever password").await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    }

    let capped = attempt(
        &app,
        &app.client,
        &app.test_user.email,
        &app.test_user.password,
    )
    .await;

    assert_eq!(capped.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&capped) > 3500);
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = spawn_app_with(|s| s.throttle.register_max_per_hour = 2).await;
    for n in 0..2 {
        let client = app.new_client();
        let email = format!("new{n}@example.com");
        let ok = app
            .register_as(&client, "New", &email, "purple monkey dishwasher")
            .await;
        assert_redirects_to(&ok, "/dashboard");
    }

    let third = app
        .register_as(
            &app.new_client(),
            "New",
            "new3@example.com",
            "purple monkey dishwasher",
        )
        .await;

    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn weak_passwords_are_refused_with_advice() {
    let app = spawn_app().await;

    let common = app.register("Ada", "ada@example.com", "password1234").await;
    assert_eq!(common.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(common.text().await.unwrap().contains("too easy to guess"));

    let personal = app
        .register("Ada", "ada@example.com", "ada@example.com!")
        .await;
    assert_eq!(personal.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_raised_bcrypt_cost_rehashes_the_password_at_sign_in() {
    let app = spawn_app_with(|s| s.sessions.bcrypt_cost = 5).await;

    app.login_test_user().await;

    let (pool, id) = (app.pool.clone(), app.test_user.id.clone());
    let hash: String = tokio::task::spawn_blocking(move || {
        users::table
            .find(id)
            .select(users::password_hash)
            .first(&mut pool.get_blocking().unwrap())
            .unwrap()
    })
    .await
    .unwrap();
    assert!(hash.starts_with("$2b$05$"), "{hash}");
    let again = app
        .login_as(
            &app.new_client(),
            &app.test_user.email,
            &app.test_user.password,
        )
        .await;
    assert_redirects_to(&again, "/dashboard");
}
