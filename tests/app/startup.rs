//! Start-up refuses bad configuration with a message naming the variable.

use std::process::Command;

use crate::helpers::*;

fn start_binary(vars: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .env_clear()
        .env("PORT", "0")
        .env("DATABASE_URL", dir.path().join("startup.db"))
        .current_dir(dir.path());
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[test]
fn a_16_byte_secret_stops_start_up() {
    let output = start_binary(&[("JWT_SECRET", "0123456789abcdef")]);

    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("JWT_SECRET"));
}

#[test]
fn production_without_a_secret_stops_start_up() {
    let output = start_binary(&[("APP_ENV", "production")]);

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("JWT_SECRET") && stderr.contains("production"),
        "{stderr}"
    );
}

#[test]
fn a_well_known_secret_stops_start_up_in_any_environment() {
    let output = start_binary(&[("JWT_SECRET", "your-256-bit-secretyour-256-bit-secret")]);

    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("well-known"));
}

#[test]
fn a_bad_value_names_its_variable() {
    let output = start_binary(&[("JWT_SECRET", TEST_SECRET), ("BCRYPT_COST", "99")]);

    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("BCRYPT_COST"));
}

#[tokio::test]
async fn an_unusable_database_path_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.database.database_url = dir.path().join("missing/dir/x.db").display().to_string();

    let built = gatehouse::startup::Application::build(settings).await;

    assert!(built.is_err());
}

fn run_binary(args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command.env_clear().args(args).current_dir(dir.path());
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[test]
fn both_help_pages_list_every_setting_and_hide_the_environments_values() {
    for args in [&["--help"][..], &["serve", "--help"][..]] {
        let output = run_binary(args, &[("JWT_SECRET", TEST_SECRET)]);

        assert!(output.status.success());
        let help = String::from_utf8_lossy(&output.stdout);
        for line in include_str!("../../.env.example").lines() {
            let Some((var, _)) = line.trim_start_matches("# ").split_once('=') else {
                continue;
            };
            if var.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                assert!(
                    help.contains(&format!("[env: {var}")),
                    "{args:?} lacks {var}"
                );
            }
        }
        assert!(!help.contains(TEST_SECRET), "{help}");
    }
}

#[test]
fn an_unknown_subcommand_exits_2_with_clap_s_message() {
    let output = run_binary(&["frobnicate"], &[]);

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unrecognized subcommand 'frobnicate'"),
        "{stderr}"
    );
}

#[test]
fn a_bad_port_is_reported_by_its_variable() {
    let output = run_binary(&[], &[("PORT", "eighty")]);

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PORT: "), "{stderr}");
}

#[test]
fn an_unreachable_postgresql_stops_start_up_within_its_timeout_naming_the_error() {
    let started = std::time::Instant::now();

    // Port 1 on loopback: nothing listens there.
    let output = start_binary(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/gatehouse"),
        ("JWT_SECRET", TEST_SECRET),
        ("DB_STARTUP_TIMEOUT", "2s"),
    ]);

    assert!(!output.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Connection refused") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
}

#[test]
fn postgresql_without_a_jwt_secret_is_refused_and_says_why() {
    let output = start_binary(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/gatehouse")]);

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("JWT_SECRET") && stderr.contains("same key"),
        "{stderr}"
    );
}

#[test]
fn production_start_up_reports_every_problem_at_once() {
    let output = start_binary(&[("APP_ENV", "production")]);

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for variable in ["JWT_SECRET", "MAIL_URL", "MAIL_FROM"] {
        assert!(stderr.contains(variable), "{variable} not named: {stderr}");
    }
}

/// Production settings over a SQLite file in `dir`, with `extra` variables.
fn production_settings(
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> Result<gatehouse::config::Settings, gatehouse::config::ConfigError> {
    let mut vars: std::collections::HashMap<String, String> = [
        ("APP_ENV", "production".to_owned()),
        ("PORT", "0".to_owned()),
        ("DATABASE_URL", dir.join("prod.db").display().to_string()),
        ("JWT_SECRET", TEST_SECRET.to_owned()),
        ("BCRYPT_COST", "4".to_owned()),
        ("MAIL_URL", format!("file://{}", dir.join("mail").display())),
        ("MAIL_FROM", "Gatehouse <noreply@example.com>".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    gatehouse::config::Settings::from_vars(&vars)
}

#[tokio::test]
async fn production_without_a_totp_key_refuses_to_start_once_an_account_has_two_factor() {
    let dir = tempfile::tempdir().unwrap();
    let settings = production_settings(dir.path(), &[]).unwrap();

    // Nobody has two-factor yet: it starts (enrolment is unavailable).
    let app = gatehouse::startup::Application::build(settings.clone())
        .await
        .unwrap();
    let pool = app.pool();
    drop(app);
    let user = seed_user(&pool, "Ada", "ada@example.com", "irrelevant here").await;
    set_two_factor_on(&pool, &user.id).await;

    let refused = gatehouse::startup::Application::build(settings).await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("TOTP_ENCRYPTION_KEY"), "{message}");

    // With the key set it starts again.
    let with_key = production_settings(
        dir.path(),
        &[(
            "TOTP_ENCRYPTION_KEY",
            "q6BqUcF5ee4y2bVd0+o9WfJ7uXn7v1p6m9Wm3q8cKXo=",
        )],
    )
    .unwrap();
    assert!(
        gatehouse::startup::Application::build(with_key)
            .await
            .is_ok()
    );
}

#[test]
fn a_totp_key_that_is_not_32_bytes_of_base64_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "short",
        "bm90IDMyIGJ5dGVz",
        "!!!not base64 at all but long enough!!!",
    ] {
        let err = production_settings(dir.path(), &[("TOTP_ENCRYPTION_KEY", bad)]).unwrap_err();
        assert_eq!(err.var, "TOTP_ENCRYPTION_KEY");
        assert!(!err.to_string().contains(bad), "the value is echoed: {err}");
    }
}

/// Marks the account as having two-factor on, straight in the database.
async fn set_two_factor_on(pool: &gatehouse_core::db::DbPool, user_id: &str) {
    use diesel::prelude::*;
    use gatehouse_core::db::schema::users;
    let (pool, id) = (pool.clone(), user_id.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get_blocking().unwrap();
        diesel::update(users::table.find(id))
            .set((
                users::totp_secret.eq(Some("v1.sealed-elsewhere")),
                users::two_factor_enabled_at.eq(Some(chrono::Utc::now().naive_utc())),
            ))
            .execute(&mut *conn)
            .unwrap();
    })
    .await
    .unwrap();
}
