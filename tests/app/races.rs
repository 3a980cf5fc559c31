//! Requests sent together to win a race: a sign-in in flight while a reset, a
//! password change, a disable or a deletion commits; parallel guesses against the
//! throttle; parallel reset requests against their limits; one reset or
//! confirmation link used by ten browsers at once. On SQLite, and on
//! PostgreSQL when `TEST_DATABASE_URL` is set.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use gatehouse_core::auth::revocation::RevokedSessions;
use gatehouse_core::db::schema::{auth_events, password_resets, users};
use reqwest::{Response, StatusCode};
use tokio::task::JoinSet;

use crate::helpers::*;

const OLD_PASSWORD: &str = "the password before the change";
const NEW_PASSWORD: &str = "an entirely different passphrase";

/// The bcrypt cost at which one hash takes about `target` in this build, and
/// how long one hash at that cost takes.
fn cost_taking(target: Duration) -> (u32, Duration) {
    let started = Instant::now();
    bcrypt::hash("calibration", 6).unwrap();
    let mut took = started.elapsed();
    let mut cost = 6;
    while took * 3 < target * 2 && cost < 16 {
        cost += 1;
        took *= 2;
    }
    (cost, took)
}

/// Offsets from `-step` to `(n - 2) * step`: where the sign-in starts relative
/// to the competing request (negative: the sign-in starts first).
fn offsets(step: Duration, n: i32) -> Vec<i64> {
    let step = i64::try_from(step.as_millis()).unwrap().max(1);
    (-1..n - 1).map(|k| i64::from(k) * step).collect()
}

/// Runs `sign_in` and `other` together, the later one starting `offset_ms`
/// after the earlier (positive: `other` first).
async fn together<A, B>(offset_ms: i64, sign_in: A, other: B) -> (A::Output, B::Output)
where
    A: Future,
    B: Future,
{
    let delay = |ms: i64| tokio::time::sleep(Duration::from_millis(ms.unsigned_abs()));
    let (late_sign_in, late_other) = if offset_ms >= 0 {
        (offset_ms, 0)
    } else {
        (0, -offset_ms)
    };
    tokio::join!(
        async {
            delay(late_sign_in).await;
            sign_in.await
        },
        async {
            delay(late_other).await;
            other.await
        }
    )
}

/// A client on the sign-in page, holding its form's CSRF token.
async fn ready_to_sign_in(app: &TestApp) -> (Client, String) {
    let client = app.new_client();
    let csrf = app.csrf_token_as(&client, "/login").await;
    (client, csrf)
}

async fn sign_in(
    app: &TestApp,
    client: &Client,
    csrf: &str,
    email: &str,
    password: &str,
) -> Response {
    app.post_form_as(
        client,
        "/login",
        &[
            ("email", email),
            ("password", password),
            ("csrf_token", csrf),
        ],
    )
    .await
}

/// Whether `client` holds a session that still works: a page opens (with its
/// access token, or by trading its refresh cookie), or the API trades the
/// refresh cookie.
async fn holds_a_working_session(app: &TestApp, client: &Client) -> bool {
    let page = app.get_as(client, "/dashboard").await.status();
    let api = client
        .http
        .post(app.url("/api/refresh"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
        .status();
    page == StatusCode::OK || api == StatusCode::OK
}

/// A user whose password hashes at `cost`.
async fn user_at_cost(app: &TestApp, n: usize, cost: u32) -> TestUser {
    let email = format!("racer{n}@example.com");
    seed_user_at_cost(&app.pool, "Racer", &email, OLD_PASSWORD, cost).await
}

/// A live reset link for `user_id`, made directly in the database.
async fn reset_token(app: &TestApp, user_id: &str) -> String {
    let token = gatehouse_core::auth::token::new_token();
    let (pool, user_id, hash) = (
        app.pool.clone(),
        gatehouse_core::ids::UserId::from_stored(user_id),
        gatehouse_core::auth::token::hash_token(&token),
    );
    tokio::task::spawn_blocking(move || {
        let now = chrono::Utc::now().naive_utc();
        gatehouse_core::db::resets::insert(
            &mut pool.get_blocking().unwrap(),
            &gatehouse_core::db::resets::NewReset {
                id: &uuid::Uuid::new_v4().to_string(),
                email: None,
                user_id: Some(&user_id),
                token_hash: Some(&hash),
                ip: "192.0.2.1",
                created_at: now,
                expires_at: now + chrono::TimeDelta::hours(1),
            },
        )
        .unwrap();
    })
    .await
    .unwrap();
    token
}

/// A client that opened a live reset link for `user_id`, on the new-password
/// form, holding its CSRF token.
async fn ready_to_reset(app: &TestApp, user_id: &str) -> (Client, String) {
    let resetter = app.new_client();
    let token = reset_token(app, user_id).await;
    let opened = app
        .get_as(&resetter, &format!("/password/reset/{token}"))
        .await;
    assert_redirects_to(&opened, "/password/reset");
    let csrf = app.csrf_token_as(&resetter, "/password/reset").await;
    (resetter, csrf)
}

#[tokio::test]
async fn a_sign_in_in_flight_while_a_reset_commits_keeps_no_session() {
    let (cost, hash_time) = cost_taking(Duration::from_millis(200));
    let app = spawn_app_with(|s| s.sessions.bcrypt_cost = cost).await;
    let mut outcomes = Vec::new();
    for (n, offset) in offsets(hash_time / 4, 8).into_iter().enumerate() {
        let user = user_at_cost(&app, n, cost).await;
        let (resetter, reset_csrf) = ready_to_reset(&app, &user.id).await;
        let (guesser, csrf) = ready_to_sign_in(&app).await;

        let (signed_in, reset) = together(
            offset,
            sign_in(&app, &guesser, &csrf, &user.email, OLD_PASSWORD),
            app.post_form_as(
                &resetter,
                "/password/reset",
                &[("new_password", NEW_PASSWORD), ("csrf_token", &reset_csrf)],
            ),
        )
        .await;

        assert_redirects_to(&reset, "/dashboard");
        outcomes.push((offset, signed_in.status().as_u16()));
        assert!(
            !holds_a_working_session(&app, &guesser).await,
            "a sign-in with the old password starting {offset} ms after the reset kept a session ({outcomes:?})"
        );
    }
    eprintln!(
        "reset race, bcrypt cost {cost} ({hash_time:?} a hash): (offset ms, sign-in status) {outcomes:?}"
    );
}

#[tokio::test]
async fn a_sign_in_in_flight_while_the_password_changes_keeps_no_session() {
    let (cost, hash_time) = cost_taking(Duration::from_millis(200));
    let app = spawn_app_with(|s| s.sessions.bcrypt_cost = cost).await;
    let mut outcomes = Vec::new();
    for (n, offset) in offsets(hash_time / 3, 10).into_iter().enumerate() {
        let user = user_at_cost(&app, n, cost).await;
        let owner = app.new_client();
        assert_redirects_to(
            &app.login_as(&owner, &user.email, OLD_PASSWORD).await,
            "/dashboard",
        );
        let change_csrf = app.csrf_token_as(&owner, "/account").await;
        let (guesser, csrf) = ready_to_sign_in(&app).await;

        let (signed_in, changed) = together(
            offset,
            sign_in(&app, &guesser, &csrf, &user.email, OLD_PASSWORD),
            app.post_form_as(
                &owner,
                "/account/password",
                &[
                    ("current_password", OLD_PASSWORD),
                    ("new_password", NEW_PASSWORD),
                    ("csrf_token", &change_csrf),
                ],
            ),
        )
        .await;

        assert_redirects_to(&changed, "/account");
        outcomes.push((offset, signed_in.status().as_u16()));
        assert!(
            !holds_a_working_session(&app, &guesser).await,
            "a sign-in with the old password starting {offset} ms after the change kept a session ({outcomes:?})"
        );
        assert!(holds_a_working_session(&app, &owner).await);
    }
    eprintln!("password-change race, bcrypt cost {cost} ({hash_time:?} a hash): {outcomes:?}");
}

#[tokio::test]
async fn a_sign_in_in_flight_while_the_account_is_deleted_keeps_no_session() {
    let (cost, hash_time) = cost_taking(Duration::from_millis(200));
    let app = spawn_app_with(|s| s.sessions.bcrypt_cost = cost).await;
    let mut outcomes = Vec::new();
    for (n, offset) in offsets(hash_time / 3, 10).into_iter().enumerate() {
        let user = user_at_cost(&app, n, cost).await;
        let owner = app.new_client();
        assert_redirects_to(
            &app.login_as(&owner, &user.email, OLD_PASSWORD).await,
            "/dashboard",
        );
        let delete_csrf = app.csrf_token_as(&owner, "/account").await;
        let (other, csrf) = ready_to_sign_in(&app).await;

        let (signed_in, deleted) = together(
            offset,
            sign_in(&app, &other, &csrf, &user.email, OLD_PASSWORD),
            app.post_form_as(
                &owner,
                "/account/delete",
                &[
                    ("current_password", OLD_PASSWORD),
                    ("csrf_token", &delete_csrf),
                ],
            ),
        )
        .await;

        assert_redirects_to(&deleted, "/login");
        outcomes.push((offset, signed_in.status().as_u16()));
        assert!(
            !holds_a_working_session(&app, &other).await,
            "a sign-in starting {offset} ms after the deletion kept a session ({outcomes:?})"
        );
        assert_eq!(accounts_with_email(&app.pool, &user.email).await, 0);
    }
    eprintln!("deletion race, bcrypt cost {cost} ({hash_time:?} a hash): {outcomes:?}");
}

#[tokio::test]
async fn a_sign_in_in_flight_while_the_account_is_disabled_keeps_no_session() {
    let (cost, hash_time) = cost_taking(Duration::from_millis(200));
    let poll = Duration::from_millis(100);
    let app = spawn_app_with(|s| {
        s.sessions.bcrypt_cost = cost;
        s.sessions.revocation_poll_interval = poll;
    })
    .await;
    let disable = |email: String| {
        let url = app.database.url.clone();
        // Started when first polled, not when made.
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
                    .env_clear()
                    .env("DATABASE_URL", url)
                    .args(["user", "disable", &email])
                    .output()
                    .unwrap()
            })
            .await
        }
    };
    // The command is a process of its own: how long it takes to commit,
    // measured once, places the sign-ins around that moment.
    let throwaway = user_at_cost(&app, 99, 4).await;
    let started = Instant::now();
    assert!(disable(throwaway.email).await.unwrap().status.success());
    let commits_after = i64::try_from(started.elapsed().as_millis()).unwrap();
    let hash_ms = i64::try_from(hash_time.as_millis()).unwrap();
    let mut outcomes = Vec::new();
    for (n, offset) in offsets(hash_time / 4, 8).into_iter().enumerate() {
        let offset = commits_after - hash_ms + offset;
        let user = user_at_cost(&app, n, cost).await;
        let (guesser, csrf) = ready_to_sign_in(&app).await;

        let (signed_in, disabled) = together(
            offset,
            sign_in(&app, &guesser, &csrf, &user.email, OLD_PASSWORD),
            disable(user.email.clone()),
        )
        .await;

        assert!(disabled.unwrap().status.success());
        outcomes.push((offset, signed_in.status().as_u16()));
        // The site hears of a revocation made by another process at its next
        // poll of the database.
        tokio::time::sleep(poll * 3).await;
        assert!(
            !holds_a_working_session(&app, &guesser).await,
            "a sign-in starting {offset} ms after `user disable` kept a session ({outcomes:?})"
        );
    }
    eprintln!(
        "disable race, bcrypt cost {cost} ({hash_time:?} a hash, the command commits after about {commits_after} ms): {outcomes:?}"
    );
}

#[tokio::test]
async fn a_reset_and_a_password_change_at_once_leave_exactly_one_new_password() {
    let (cost, hash_time) = cost_taking(Duration::from_millis(40));
    let app = spawn_app_with(|s| s.sessions.bcrypt_cost = cost).await;
    let other = "yet another entirely new passphrase";
    let mut outcomes = Vec::new();
    // The change checks the current password before hashing the new one: it
    // commits about one hash later than a reset that starts with it.
    for (n, offset) in offsets(hash_time / 4, 12).into_iter().enumerate() {
        let user = user_at_cost(&app, n, cost).await;
        let owner = app.new_client();
        assert_redirects_to(
            &app.login_as(&owner, &user.email, OLD_PASSWORD).await,
            "/dashboard",
        );
        let change_csrf = app.csrf_token_as(&owner, "/account").await;
        let (resetter, reset_csrf) = ready_to_reset(&app, &user.id).await;

        let (changed, reset) = together(
            -offset,
            app.post_form_as(
                &owner,
                "/account/password",
                &[
                    ("current_password", OLD_PASSWORD),
                    ("new_password", other),
                    ("csrf_token", &change_csrf),
                ],
            ),
            app.post_form_as(
                &resetter,
                "/password/reset",
                &[("new_password", NEW_PASSWORD), ("csrf_token", &reset_csrf)],
            ),
        )
        .await;

        let location = |r: &Response| {
            r.headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned())
        };
        let (changed_to, reset_to) = (location(&changed), location(&reset));
        outcomes.push((changed.status().as_u16(), reset.status().as_u16()));
        // The loser is told so (signed out, or the link is spent), never a
        // 500: the two transactions cannot deadlock.
        assert!(
            [Some("/account"), Some("/login")].contains(&changed_to.as_deref()),
            "{outcomes:?} {changed_to:?}"
        );
        assert!(
            reset_to.as_deref() == Some("/dashboard") || reset.status() == StatusCode::BAD_REQUEST,
            "{outcomes:?} {reset_to:?}"
        );
        let change_won = changed_to.as_deref() == Some("/account");
        let reset_won = reset_to.as_deref() == Some("/dashboard");
        assert!(
            change_won != reset_won,
            "exactly one may change the password: {outcomes:?} {changed_to:?} {reset_to:?}"
        );
        let winner = if change_won { other } else { NEW_PASSWORD };
        let (client, csrf) = ready_to_sign_in(&app).await;
        let signed_in = sign_in(&app, &client, &csrf, &user.email, winner).await;
        assert_redirects_to(&signed_in, "/dashboard");
    }
    eprintln!("reset against password change: (change status, reset status) {outcomes:?}");
}

#[tokio::test]
async fn refresh_refuses_a_session_whose_account_is_disabled() {
    let app = spawn_app().await;
    app.login_test_user().await;
    // Disabled behind the session's back (its row stays live), as a sign-in
    // racing a disable could once leave it.
    let (pool, id) = (app.pool.clone(), app.test_user.id.clone());
    tokio::task::spawn_blocking(move || {
        diesel::update(users::table.find(id))
            .set(users::disabled_at.eq(Some(chrono::Utc::now().naive_utc())))
            .execute(&mut pool.get_blocking().unwrap())
            .unwrap();
    })
    .await
    .unwrap();
    let refresh = app.cookie_in(&app.client, "gatehouse_refresh").unwrap();

    let api = app
        .client
        .http
        .post(app.url("/api/refresh"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let page = app
        .get_with_cookie("/dashboard", &format!("gatehouse_refresh={refresh}"))
        .await;

    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert_redirects_to(&page, "/login?next=%2Fdashboard");
}

#[tokio::test]
async fn thirty_guesses_at_once_are_judged_at_most_as_often_as_the_limit() {
    let (cost, _) = cost_taking(Duration::from_millis(50));
    let app = spawn_app_with(|s| {
        s.throttle.login_max_failures = 5;
        s.sessions.bcrypt_cost = cost;
    })
    .await;
    let user = user_at_cost(&app, 0, cost).await;

    let statuses = sign_ins_at_once(
        &[&app.address],
        30,
        |_| user.email.clone(),
        |i| format!("wrong guess number {i}"),
    )
    .await;
    let (client, csrf) = ready_to_sign_in(&app).await;
    let right = sign_in(&app, &client, &csrf, &user.email, OLD_PASSWORD).await;

    eprintln!("30 guesses at once, limit 5: {} judged", judged(&statuses));
    assert!(judged(&statuses) <= 5, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn right_sign_ins_at_once_after_the_cost_was_raised_all_succeed() {
    // The stored hash is at cost 4; the first sign-in re-hashes it at 6, and
    // that is no password change for the sign-ins checked beside it.
    let app = spawn_app_with(|s| s.sessions.bcrypt_cost = 6).await;

    let statuses = sign_ins_at_once(
        &[&app.address],
        8,
        |_| app.test_user.email.clone(),
        |_| app.test_user.password.clone(),
    )
    .await;

    assert!(
        statuses.iter().all(|s| *s == StatusCode::SEE_OTHER),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn forty_guesses_at_once_over_ten_emails_are_judged_at_most_as_often_as_the_ip_cap() {
    let (cost, _) = cost_taking(Duration::from_millis(50));
    let app = spawn_app_with(|s| {
        s.throttle.login_max_failures_per_ip = 10;
        s.sessions.bcrypt_cost = cost;
    })
    .await;

    let statuses = sign_ins_at_once(
        &[&app.address],
        40,
        |i| format!("someone{}@example.com", i % 10),
        |_| "a wrong password".to_owned(),
    )
    .await;

    eprintln!(
        "40 guesses at once over 10 e-mails, IP cap 10: {} judged",
        judged(&statuses)
    );
    assert!(judged(&statuses) <= 10, "{statuses:?}");
}

/// How many rows of `password_resets` belong to `user_id`, and how many
/// `password_reset_requested` events there are.
async fn reset_rows(app: &TestApp, user_id: &str) -> (i64, i64) {
    let (pool, user_id) = (app.pool.clone(), user_id.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get_blocking().unwrap();
        let links = password_resets::table
            .filter(password_resets::user_id.eq(user_id))
            .count()
            .get_result(&mut conn)
            .unwrap();
        let requested = auth_events::table
            .filter(auth_events::kind.eq("password_reset_requested"))
            .count()
            .get_result(&mut conn)
            .unwrap();
        (links, requested)
    })
    .await
    .unwrap()
}

/// Fires `count` requests for a reset link at once, for `email(i)`.
async fn reset_requests_at_once(app: &TestApp, count: usize, email: impl Fn(usize) -> String) {
    let mut ready = Vec::new();
    for i in 0..count {
        let client = Client::new("forgetful");
        let csrf = app.csrf_token_as(&client, "/password/forgot").await;
        ready.push((client, csrf, email(i)));
    }
    let mut set = JoinSet::new();
    for (client, csrf, email) in ready {
        let address = app.address.clone();
        set.spawn(async move {
            client
                .http
                .post(format!("{address}/password/forgot"))
                .header("Origin", &address)
                .form(&[("email", email.as_str()), ("csrf_token", csrf.as_str())])
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    for status in set.join_all().await {
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn reset_requests_at_once_stay_within_the_account_and_ip_limits() {
    let app = spawn_app_with(|s| {
        s.throttle.password_reset_max_per_hour = 3;
        s.throttle.password_reset_max_per_ip = 6;
    })
    .await;

    reset_requests_at_once(&app, 12, |_| app.test_user.email.clone()).await;
    let (links, _) = reset_rows(&app, &app.test_user.id).await;
    reset_requests_at_once(&app, 12, |i| format!("nobody{i}@example.com")).await;
    let (_, requested) = reset_rows(&app, &app.test_user.id).await;

    eprintln!(
        "12 reset requests at once, limit 3: {links} links; then 12 more, IP limit 6: {requested} admitted in all"
    );
    assert!(links <= 3, "{links} links");
    assert!(requested <= 6, "{requested} requests admitted");
}

#[tokio::test]
async fn throttled_reset_requests_write_nothing() {
    let app = spawn_app_with(|s| s.throttle.password_reset_max_per_hour = 2).await;
    let client = Client::new("forgetful");
    let ask = |email: String| {
        let client = &client;
        let address = app.address.clone();
        async move {
            let response = client
                .submit(
                    &address,
                    "/password/forgot",
                    "/password/forgot",
                    &[("email", email.as_str())],
                )
                .await;
            assert_redirects_to(&response, "/password/forgot/sent");
        }
    };
    for _ in 0..2 {
        ask(app.test_user.email.clone()).await;
        ask("nobody@example.com".to_owned()).await;
    }
    let before = all_rows(&app).await;

    for _ in 0..3 {
        ask(app.test_user.email.clone()).await;
        ask("nobody@example.com".to_owned()).await;
    }

    assert_eq!(all_rows(&app).await, before);
}

/// Rows in `password_resets` and `auth_events`.
async fn all_rows(app: &TestApp) -> (i64, i64) {
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get_blocking().unwrap();
        (
            password_resets::table
                .count()
                .get_result(&mut conn)
                .unwrap(),
            auth_events::table.count().get_result(&mut conn).unwrap(),
        )
    })
    .await
    .unwrap()
}

/// Polls the database for revocations into `list`, as each instance does.
fn poll(conn: &mut gatehouse_core::db::DbConnection, list: &RevokedSessions) {
    let now = chrono::Utc::now().naive_utc();
    let mark = list.mark(now);
    let found = gatehouse_core::db::sessions::revocations_after(
        conn,
        mark.number,
        mark.unnumbered_since,
        list.horizon(now),
    )
    .unwrap();
    list.absorb(found.sessions, found.through, now);
}

#[tokio::test]
async fn a_revocation_that_commits_after_a_later_one_is_still_polled() {
    use gatehouse_core::db::{self, sessions as session_rows};
    let app = spawn_app().await;
    for _ in 0..2 {
        let client = app.new_client();
        let response = app
            .login_as(&client, &app.test_user.email, &app.test_user.password)
            .await;
        assert_redirects_to(&response, "/dashboard");
    }
    let pool = app.pool.clone();
    let user_id = gatehouse_core::ids::UserId::from_stored(app.test_user.id.clone());

    let (first, second, list) = tokio::task::spawn_blocking(move || {
        let ids: Vec<gatehouse_core::ids::SessionId> = gatehouse_core::db::schema::sessions::table
            .select(gatehouse_core::db::schema::sessions::id)
            .load(&mut pool.get_blocking().unwrap())
            .unwrap();
        let (first, second) = (ids[0].clone(), ids[1].clone());
        let list = RevokedSessions::new(Duration::from_secs(600));
        let mut poller = pool.get_blocking().unwrap();
        poll(&mut poller, &list);

        // One revoking transaction stays open (stamped 10 s back, as by an
        // instance whose clock is behind) while a later one tries to commit.
        let (held, is_held) = std::sync::mpsc::channel();
        let (go, may_go) = std::sync::mpsc::channel::<()>();
        let earlier = std::thread::spawn({
            let (pool, user_id, id) = (pool.clone(), user_id.clone(), first.clone());
            move || {
                let mut conn = pool.get_blocking().unwrap();
                db::write_transaction(&mut conn, |conn| {
                    let at = chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(10);
                    session_rows::revoke(conn, &id, &user_id, at, "signed_out")?;
                    held.send(()).unwrap();
                    may_go.recv().unwrap();
                    Ok::<_, diesel::result::Error>(())
                })
                .unwrap();
            }
        });
        is_held.recv().unwrap();
        let later = std::thread::spawn({
            let (pool, user_id, id) = (pool.clone(), user_id.clone(), second.clone());
            move || {
                let mut conn = pool.get_blocking().unwrap();
                db::write_transaction(&mut conn, |conn| {
                    session_rows::revoke(
                        conn,
                        &id,
                        &user_id,
                        chrono::Utc::now().naive_utc(),
                        "signed_out",
                    )
                })
                .unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        poll(&mut poller, &list);
        go.send(()).unwrap();
        earlier.join().unwrap();
        later.join().unwrap();
        poll(&mut poller, &list);
        (first, second, list)
    })
    .await
    .unwrap();

    assert!(
        list.is_revoked(&first),
        "the revocation that committed last"
    );
    assert!(list.is_revoked(&second));
}

/// The token of the last confirmation link in `inbox`'s messages.
fn last_confirm_token(messages: &[String]) -> String {
    let joined = messages.concat().replace("=\n", "");
    let at = joined
        .rfind("/verify/")
        .expect("no confirmation link mailed");
    joined[at + "/verify/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test]
async fn a_confirmation_link_sent_ten_times_at_once_makes_exactly_one_account() {
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| {
        s.mail.mail_url = Some(mail_url);
        s.mail.registration_verify = Some(gatehouse::config::VerifyMode::Required);
    })
    .await;
    let email = "contested@example.com";
    let (squatter, victim) = (
        "the squatter's own passphrase",
        "the victim's own passphrase",
    );
    for password in [squatter, victim] {
        let registered = app.register("Someone", email, password).await;
        assert_redirects_to(&registered, "/register/check-email");
    }
    let token = last_confirm_token(&inbox.wait_for(2).await);
    let path = format!("/verify/{token}");

    // Ten browsers on the link's page, half typing each password.
    let mut ready = Vec::new();
    for n in 0..10 {
        let client = app.new_client();
        let csrf = app.csrf_token_as(&client, &path).await;
        ready.push((client, csrf, if n % 2 == 0 { squatter } else { victim }));
    }
    let mut sent = JoinSet::new();
    for (client, csrf, password) in ready {
        let (url, origin) = (app.url(&path), app.address.clone());
        sent.spawn(async move {
            let response = client
                .http
                .post(url)
                .header("Origin", origin)
                .form(&[("password", password), ("csrf_token", &csrf)])
                .send()
                .await
                .unwrap();
            (response.status(), password)
        });
    }
    let answers = sent.join_all().await;
    let winners: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::SEE_OTHER)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (status, _) in &answers {
        assert!(
            [StatusCode::SEE_OTHER, StatusCode::BAD_REQUEST].contains(status),
            "{answers:?}"
        );
    }
    assert_eq!(accounts_with_email(&app.pool, email).await, 1);

    // The account has the winner's password, and only that one (read from
    // the row: the losers' attempts count against sign-ins from here).
    let winner = winners[0].1;
    let loser = if winner == squatter { victim } else { squatter };
    let hash = password_hash_of(&app, email).await;
    assert!(bcrypt::verify(winner, &hash).unwrap());
    assert!(!bcrypt::verify(loser, &hash).unwrap());
}

/// The password hash stored for `email`, read from the row.
async fn password_hash_of(app: &TestApp, email: &str) -> String {
    let (pool, email) = (app.pool.clone(), email.to_owned());
    tokio::task::spawn_blocking(move || {
        users::table
            .filter(users::email.eq(email))
            .select(users::password_hash)
            .first(&mut pool.get_blocking().unwrap())
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn one_reset_link_posted_from_ten_browsers_at_once_sets_one_password() {
    let app = spawn_app().await;
    for round in 0..5 {
        let token = reset_token(&app, &app.test_user.id).await;
        // Ten browsers opened the one link, each with a password of its own.
        let mut ready = Vec::new();
        for n in 0..10 {
            let client = app.new_client();
            let opened = app
                .get_as(&client, &format!("/password/reset/{token}"))
                .await;
            assert_redirects_to(&opened, "/password/reset");
            let csrf = app.csrf_token_as(&client, "/password/reset").await;
            let password = format!("round {round}: the new passphrase of browser {n}");
            ready.push((client, csrf, password));
        }
        let mut sent = JoinSet::new();
        for (client, csrf, password) in ready {
            let (url, origin) = (app.url("/password/reset"), app.address.clone());
            sent.spawn(async move {
                let response = client
                    .http
                    .post(url)
                    .header("Origin", origin)
                    .form(&[("new_password", password.as_str()), ("csrf_token", &csrf)])
                    .send()
                    .await
                    .unwrap();
                let to = response
                    .headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_owned());
                (response.status(), to, password)
            });
        }
        let answers = sent.join_all().await;

        // One sets its password and is signed in; the others find the link
        // spent, and their passwords were never stored.
        let won = |to: &Option<String>| to.as_deref() == Some("/dashboard");
        let winners = answers.iter().filter(|(_, to, _)| won(to)).count();
        assert_eq!(winners, 1, "round {round}: {answers:?}");
        let hash = password_hash_of(&app, &app.test_user.email).await;
        for (status, to, password) in &answers {
            assert!(
                won(to) || *status == StatusCode::BAD_REQUEST,
                "round {round}: {answers:?}"
            );
            assert_eq!(
                bcrypt::verify(password, &hash).unwrap(),
                won(to),
                "{password}"
            );
        }
    }
}

#[tokio::test]
async fn an_address_change_confirmed_with_the_old_password_while_it_changes_never_both_win() {
    let (cost, hash_time) = cost_taking(Duration::from_millis(200));
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| {
        s.sessions.bcrypt_cost = cost;
        s.mail.mail_url = Some(mail_url);
    })
    .await;
    let mut outcomes = Vec::new();
    for (n, offset) in offsets(hash_time / 3, 10).into_iter().enumerate() {
        let user = user_at_cost(&app, n, cost).await;
        let owner = app.new_client();
        assert_redirects_to(
            &app.login_as(&owner, &user.email, OLD_PASSWORD).await,
            "/dashboard",
        );
        // A change of address asked for while the old password was known;
        // its link, opened by whoever holds the old password.
        let new_email = format!("moved{n}@example.com");
        let asked = owner
            .submit(
                &app.address,
                "/account",
                "/account/email",
                &[
                    ("new_email", &new_email),
                    ("current_password", OLD_PASSWORD),
                ],
            )
            .await;
        assert_redirects_to(&asked, "/account");
        let link = loop {
            let found = inbox
                .messages()
                .iter()
                .find_map(|m| confirm_link(m).filter(|_| m.contains(&format!("To: {new_email}"))));
            if let Some(link) = found {
                break link;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let path = link.trim_start_matches(&app.address).to_owned();
        let holder = app.new_client();
        let confirm_csrf = app.csrf_token_as(&holder, &path).await;
        let change_csrf = app.csrf_token_as(&owner, "/account").await;

        let (confirmed, changed) = together(
            offset,
            app.post_form_as(
                &holder,
                &path,
                &[("password", OLD_PASSWORD), ("csrf_token", &confirm_csrf)],
            ),
            app.post_form_as(
                &owner,
                "/account/password",
                &[
                    ("current_password", OLD_PASSWORD),
                    ("new_password", NEW_PASSWORD),
                    ("csrf_token", &change_csrf),
                ],
            ),
        )
        .await;

        let confirm_won = confirmed.status() == StatusCode::SEE_OTHER;
        let change_won =
            changed.headers().get("location").map(|l| l.as_bytes()) == Some(b"/account");
        outcomes.push((offset, confirmed.status().as_u16(), change_won));
        assert!(
            confirm_won != change_won,
            "exactly one of the two wins, {offset} ms apart ({outcomes:?})"
        );
        let now_at = if confirm_won { &new_email } else { &user.email };
        assert_eq!(
            accounts_with_email(&app.pool, now_at).await,
            1,
            "{outcomes:?}"
        );
        assert_eq!(holds_a_working_session(&app, &holder).await, confirm_won);
    }
    eprintln!("address-change race, bcrypt cost {cost} ({hash_time:?} a hash): {outcomes:?}");
}
