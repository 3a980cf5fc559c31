//! The operator's command line, run as the real binary against the test's own
//! database while the site serves it: the same accounts, the same rules.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use gatehouse_core::db::schema::{password_resets, sessions};
use reqwest::StatusCode;

use crate::helpers::*;

/// Runs `gatehouse ARGS` on `database_url`, with `stdin` as its input.
fn gatehouse(database_url: &str, args: &[&str], stdin: &str) -> Output {
    run_gatehouse(
        &[("DATABASE_URL", database_url), ("BCRYPT_COST", "4")],
        args,
        stdin,
    )
}

/// The exit status and both streams, for a failed assertion.
fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn an_account_created_on_the_command_line_signs_in_on_the_site() {
    let app = spawn_app().await;

    let output = app
        .cli(
            &[
                "user",
                "create",
                "--email",
                "Op@Example.com",
                "--name",
                "Made By Op",
            ],
            "correct horse battery staple\n",
        )
        .await;

    assert!(output.status.success(), "{}", describe(&output));
    assert!(text(&output.stdout).contains("created op@example.com"));
    let response = app
        .post_login("op@example.com", "correct horse battery staple")
        .await;
    assert_redirects_to(&response, "/dashboard");
}

#[tokio::test]
async fn the_command_line_applies_the_forms_password_policy() {
    let app = spawn_app().await;

    let output = app
        .cli(
            &[
                "user",
                "create",
                "--email",
                "weak@example.com",
                "--name",
                "Weak",
            ],
            "password1234\n",
        )
        .await;

    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("password: This password is too easy to guess"));
    let count = accounts_with_email(&app.pool, "weak@example.com").await;
    assert_eq!(count, 0);
}

#[tokio::test]
async fn disabling_an_account_ends_its_sessions_and_stops_sign_in_until_enabled() {
    let app = spawn_app().await;
    app.login_test_user().await;
    assert_eq!(app.get_dashboard().await.status(), StatusCode::OK);

    let output = app
        .cli(&["user", "disable", &app.test_user.email], "")
        .await;

    assert!(output.status.success(), "{}", describe(&output));
    assert!(text(&output.stdout).contains("1 session(s) ended"));
    // The site hears of the revocation by its poll (1 s).
    let started = Instant::now();
    while app.get_dashboard().await.status() == StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still signed in"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = app
        .login_as(
            &app.new_client(),
            &app.test_user.email,
            &app.test_user.password,
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let enabled = app.cli(&["user", "enable", &app.test_user.email], "").await;
    assert!(enabled.status.success(), "{}", describe(&enabled));
    let again = app
        .login_as(
            &app.new_client(),
            &app.test_user.email,
            &app.test_user.password,
        )
        .await;
    assert_redirects_to(&again, "/dashboard");
}

#[tokio::test]
async fn deleting_an_account_asks_for_the_address_again_and_ends_its_sessions() {
    let app = spawn_app().await;
    app.login_test_user().await;
    let email = app.test_user.email.clone();

    let mistyped = app
        .cli(&["user", "delete", &email], "someone@example.com\n")
        .await;
    assert_eq!(mistyped.status.code(), Some(1), "{}", describe(&mistyped));
    assert!(text(&mistyped.stderr).contains("not deleted"));
    assert_eq!(accounts_with_email(&app.pool, &email).await, 1);

    let output = app
        .cli(&["user", "delete", &email], &format!("{email}\n"))
        .await;

    assert!(output.status.success(), "{}", describe(&output));
    assert!(text(&output.stdout).contains("1 session(s) ended"));
    assert_eq!(accounts_with_email(&app.pool, &email).await, 0);
    // The site hears of it by its poll (1 s), though the rows are gone.
    let started = Instant::now();
    while app.get_dashboard().await.status() == StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still signed in"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gone = app.cli(&["user", "delete", "--yes", &email], "").await;
    assert_eq!(gone.status.code(), Some(1));
    assert!(text(&gone.stderr).contains("no account has the e-mail address"));
}

#[tokio::test]
async fn the_user_list_shows_accounts_and_an_unknown_email_is_an_error() {
    let app = spawn_app().await;

    let list = app.cli(&["user", "list"], "").await;
    let unknown = app
        .cli(&["user", "disable", "nobody@example.com"], "")
        .await;

    assert!(list.status.success(), "{}", describe(&list));
    assert!(text(&list.stdout).contains("user@example.com"));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no account has the e-mail address nobody@example.com"));
}

#[tokio::test]
async fn the_command_line_refuses_an_email_with_display_text() {
    let app = spawn_app().await;

    let output = app
        .cli(
            &[
                "user",
                "create",
                "--email",
                "Support Team <mallory@example.com>",
                "--name",
                "Mallory",
            ],
            "correct horse battery staple\n",
        )
        .await;

    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        text(&output.stderr).contains("--email: Enter a valid email address"),
        "{}",
        describe(&output)
    );
    let count = accounts_with_email(&app.pool, "support team <mallory@example.com>").await;
    assert_eq!(count, 0);
}

#[tokio::test]
async fn the_user_list_prints_control_characters_escaped() {
    let app = spawn_app().await;
    seed_user(
        &app.pool,
        "Eve\u{1b}[2J\u{7}\rroot",
        "eve\u{1b}[8m@example.com",
        "correct horse battery staple",
    )
    .await;
    seed_user(
        &app.pool,
        "Zoë \"Zed\" O'Hara",
        "zoë@example.com",
        "correct horse battery staple",
    )
    .await;

    let list = app.cli(&["user", "list"], "").await;

    assert!(list.status.success(), "{}", describe(&list));
    let stdout = text(&list.stdout);
    for raw in ['\u{1b}', '\u{7}', '\r'] {
        assert!(!stdout.contains(raw), "{raw:?} printed raw: {stdout:?}");
    }
    assert!(stdout.contains(r"Eve\u{1b}[2J\u{7}\rroot"), "{stdout}");
    assert!(stdout.contains(r"eve\u{1b}[8m@example.com"), "{stdout}");
    assert!(stdout.contains("Zoë \"Zed\" O'Hara"), "{stdout}");
    assert!(stdout.contains("zoë@example.com"), "{stdout}");
}

#[tokio::test]
async fn prune_deletes_sessions_that_ended_long_ago_and_keeps_live_ones() {
    let app = spawn_app().await;
    app.login_test_user().await;
    let pool = app.pool.clone();
    let user_id = app.test_user.id.clone();
    tokio::task::spawn_blocking(move || {
        let long_ago = chrono::Utc::now().naive_utc() - chrono::TimeDelta::days(2);
        diesel::insert_into(sessions::table)
            .values((
                sessions::id.eq("ended-long-ago"),
                sessions::user_id.eq(&user_id),
                sessions::created_at.eq(long_ago),
                sessions::last_seen_at.eq(long_ago),
                sessions::ip.eq("192.0.2.1"),
                sessions::user_agent.eq("old"),
                sessions::revoked_at.eq(Some(long_ago)),
                sessions::refresh_hash.eq("x"),
                sessions::remember.eq(false),
                sessions::expires_at.eq(long_ago),
            ))
            .execute(&mut pool.get_blocking().unwrap())
            .unwrap();
    })
    .await
    .unwrap();

    let output = app.cli(&["sessions", "prune"], "").await;

    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        text(&output.stdout).contains("deleted 1 ended session(s)"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(app.get_dashboard().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn prune_deletes_reset_links_that_can_no_longer_be_used_and_says_how_many() {
    let app = spawn_app().await;
    let (pool, user_id) = (app.pool.clone(), app.test_user.id.clone());
    tokio::task::spawn_blocking(move || {
        let now = chrono::Utc::now().naive_utc();
        let hour = chrono::TimeDelta::hours(1);
        let mut conn = pool.get_blocking().unwrap();
        for (id, expires_at, used_at) in [
            ("expired", now - hour, None),
            ("used", now + hour, Some(now - hour)),
            ("live", now + hour, None),
        ] {
            diesel::insert_into(password_resets::table)
                .values((
                    password_resets::id.eq(id),
                    password_resets::user_id.eq(Some(&user_id)),
                    password_resets::token_hash.eq(Some(id)),
                    password_resets::ip.eq("192.0.2.1"),
                    password_resets::created_at.eq(now - hour * 2),
                    password_resets::expires_at.eq(expires_at),
                    password_resets::used_at.eq(used_at),
                ))
                .execute(&mut conn)
                .unwrap();
        }
    })
    .await
    .unwrap();

    let output = app.cli(&["sessions", "prune"], "").await;

    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        text(&output.stdout).contains("2 old reset request(s)"),
        "{}",
        text(&output.stdout)
    );
    let pool = app.pool.clone();
    let left: Vec<String> = tokio::task::spawn_blocking(move || {
        password_resets::table
            .select(password_resets::id)
            .load(&mut pool.get_blocking().unwrap())
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(left, ["live"]);
}

#[test]
fn migrate_lists_what_it_applied_and_serve_refuses_a_database_behind_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("fresh.db").display().to_string();

    let refused = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("JWT_SECRET", TEST_SECRET)
        .env("MIGRATE_ON_START", "false")
        .env("PORT", "0")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let migrated = gatehouse(&url, &["migrate"], "");
    let again = gatehouse(&url, &["migrate"], "");

    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("pending migrations") && stderr.contains("gatehouse migrate"),
        "{stderr}"
    );
    assert!(migrated.status.success(), "{}", describe(&migrated));
    assert!(text(&migrated.stdout).contains("applied "));
    assert!(text(&again.stdout).contains("no pending migrations"));
}

#[tokio::test]
async fn support_staff_can_print_a_one_time_reset_link() {
    let app = spawn_app().await;

    let output = app
        .cli(&["user", "reset-link", &app.test_user.email], "")
        .await;

    assert!(output.status.success(), "{}", describe(&output));
    let printed = text(&output.stdout);
    let token = printed.trim().rsplit('/').next().unwrap().to_owned();
    let client = Client::new("support");
    let link = format!("{}/password/reset/{token}", app.address);
    assert_redirects_to(
        &client.http.get(&link).send().await.unwrap(),
        "/password/reset",
    );
    let reset = client
        .submit(
            &app.address,
            "/password/reset",
            "/password/reset",
            &[("new_password", "an entirely different passphrase")],
        )
        .await;
    assert_redirects_to(&reset, "/dashboard");
    let used_again = client.http.get(&link).send().await.unwrap();
    assert_redirects_to(&used_again, "/password/reset");
    let form = client
        .http
        .get(app.url("/password/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        form.status(),
        StatusCode::BAD_REQUEST,
        "the link worked once"
    );
}

#[tokio::test]
async fn support_staff_can_confirm_an_address_and_the_list_says_which_are_confirmed() {
    let app = spawn_app_with(|s| {
        s.mail.registration_verify = Some(gatehouse::config::VerifyMode::Required);
    })
    .await;
    // Registered while confirmation was off: not confirmed.
    unconfirm(&app.pool, "user@example.com").await;
    let created = app
        .cli(
            &[
                "user",
                "create",
                "--email",
                "op@example.com",
                "--name",
                "Made By Op",
            ],
            "correct horse battery staple\n",
        )
        .await;
    assert!(created.status.success(), "{}", describe(&created));

    let list = text(&app.cli(&["user", "list"], "").await.stdout);
    let row = |email: &str| {
        list.lines()
            .find(|l| l.starts_with(email))
            .unwrap_or_else(|| panic!("{email} not listed: {list}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert!(list.lines().next().unwrap().contains("VERIFIED"), "{list}");
    assert!(row("user@example.com").contains(&"no"), "{list}");
    assert!(row("op@example.com").contains(&"yes"), "{list}");
    // An operator's account signs in; the unconfirmed one gets a link instead.
    assert_redirects_to(
        &app.post_login("op@example.com", "correct horse battery staple")
            .await,
        "/dashboard",
    );
    let user = &app.test_user;
    assert_redirects_to(
        &app.login_as(&app.new_client(), &user.email, &user.password)
            .await,
        "/register/check-email",
    );

    let verified = app.cli(&["user", "verify", "User@Example.com"], "").await;
    assert!(verified.status.success(), "{}", describe(&verified));
    assert!(text(&verified.stdout).contains("verified user@example.com"));
    let again = app.cli(&["user", "verify", "user@example.com"], "").await;
    assert!(
        text(&again.stdout).contains("was already verified"),
        "{}",
        describe(&again)
    );
    let unknown = app.cli(&["user", "verify", "nobody@example.com"], "").await;
    assert_eq!(unknown.status.code(), Some(1));
    let list = text(&app.cli(&["user", "list"], "").await.stdout);
    let column = list
        .lines()
        .next()
        .and_then(|h| h.find("VERIFIED"))
        .unwrap();
    for row in list.lines().skip(1) {
        assert_eq!(row.get(column..column + 4), Some("yes "), "{list}");
    }
    assert_redirects_to(
        &app.login_as(&app.new_client(), &user.email, &user.password)
            .await,
        "/dashboard",
    );
}
