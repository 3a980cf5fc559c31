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
