//! Settings parsed from variables, as start-up sees them.

use std::ffi::OsStr;
use std::time::Duration;

use super::parse::{parse_origin, parse_proxies};
use super::*;
use gatehouse_core::db::Pooler;

/// `pairs`, over a mail set-up (which production requires and these
/// tests are not about).
fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("MAIL_URL", "file:///var/spool/gatehouse"),
        ("MAIL_FROM", "Gatehouse <noreply@example.com>"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    vars.extend(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vars
}

#[test]
fn production_requires_mail_and_every_problem_is_reported_at_once() {
    let bare: HashMap<String, String> = [("APP_ENV", "production")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let settings = Settings::from_vars(&bare).unwrap_err();
    assert_eq!(settings.var, "JWT_SECRET");
    let mut with_secret = bare.clone();
    with_secret.insert("JWT_SECRET".into(), GOOD.into());
    let err = Settings::from_vars(&with_secret).unwrap_err();
    assert_eq!(err.var, "MAIL_URL");
}

const GOOD: &str = "k3J9x2mQ7vW1pL8sT4nR6yB0cF5hD2gA";

#[test]
fn production_requires_a_secret() {
    let err = Settings::from_vars(&vars(&[("APP_ENV", "production")])).unwrap_err();
    assert_eq!(err.var, "JWT_SECRET");
    assert!(err.message.contains("production"), "{err}");
}

#[test]
fn development_leaves_an_unset_secret_unset() {
    let s = Settings::from_vars(&vars(&[])).unwrap();
    assert!(s.sessions.jwt_secret.is_none());
}

#[test]
fn short_secret_is_refused_without_echoing_it() {
    let err = Settings::from_vars(&vars(&[("JWT_SECRET", "0123456789abcdef")])).unwrap_err();
    assert_eq!(err.var, "JWT_SECRET");
    assert!(err.message.contains("16 bytes"), "{err}");
    assert!(!err.to_string().contains("0123456789abcdef"), "{err}");
}

#[test]
fn well_known_secrets_are_refused_even_when_repeated() {
    for s in [
        "your-256-bit-secretyour-256-bit-secret",
        "changeme-changeme-changeme-changeme",
        "SECRETSECRETSECRETSECRETSECRETSECRET",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        assert!(check_secret("JWT_SECRET", s.into()).is_err(), "{s}");
    }
    assert!(check_secret("JWT_SECRET", GOOD.into()).is_ok());
}

#[test]
fn bad_values_name_their_variable() {
    for (var, value) in [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("BCRYPT_COST", "3"),
        ("BCRYPT_COST", "32"),
        ("ACCESS_TOKEN_TTL", "soon"),
        ("ACCESS_TOKEN_TTL", "500ms"),
        ("APP_ENV", "staging"),
        ("COOKIE_SECURE", "maybe"),
        ("PUBLIC_URL", "example.com"),
        ("PUBLIC_URL", "ftp://example.com"),
        ("PUBLIC_URL", "https://example.com/path"),
        ("SESSION_IDLE_TIMEOUT", "forever"),
        ("JWT_PREVIOUS_SECRETS", "short"),
        ("LOGIN_MAX_FAILURES", "0"),
        ("LOGIN_MAX_FAILURES_PER_IP", "-1"),
        ("REGISTER_MAX_PER_HOUR", "many"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.local"),
    ] {
        let err = Settings::from_vars(&vars(&[("JWT_SECRET", GOOD), (var, value)])).unwrap_err();
        assert_eq!(err.var, var, "{var}={value}: {err}");
    }
}

#[test]
fn defaults_and_production_cookie_security() {
    let s = Settings::from_vars(&vars(&[("JWT_SECRET", GOOD)])).unwrap();
    assert_eq!(s.app_env, AppEnv::Development);
    assert_eq!(s.rust_log, "info");
    assert_eq!((s.http.host.as_str(), s.http.port), ("127.0.0.1", 8080));
    assert_eq!(s.http.public_url, None);
    assert!(s.http.trusted_proxies.is_empty());
    assert_eq!(s.http.workers, None);
    assert_eq!(s.database.database_url, "gatehouse.db");
    assert!(s.sessions.jwt_previous_secrets.is_empty());
    assert_eq!(s.sessions.bcrypt_cost, 12);
    assert_eq!(s.sessions.access_token_ttl, Duration::from_secs(10 * 60));
    assert_eq!(s.sessions.refresh_reuse_grace, Duration::from_secs(10));
    assert_eq!(s.sessions.session_max_age, Duration::from_secs(12 * 3600));
    assert_eq!(
        s.sessions.session_max_age_remember,
        Duration::from_secs(30 * 24 * 3600)
    );
    assert_eq!(
        s.sessions.session_idle_timeout,
        Duration::from_secs(7 * 24 * 3600)
    );
    assert_eq!(s.sessions.revocation_poll_interval, Duration::from_secs(1));
    assert_eq!(
        (
            s.throttle.login_max_failures,
            s.throttle.login_max_failures_per_ip,
            s.throttle.register_max_per_hour
        ),
        (5, 100, 10)
    );
    assert!(!s.cookie_secure());
    let p = Settings::from_vars(&vars(&[("JWT_SECRET", GOOD), ("APP_ENV", "production")])).unwrap();
    assert!(p.cookie_secure());
    let forced = Settings::from_vars(&vars(&[
        ("JWT_SECRET", GOOD),
        ("APP_ENV", "production"),
        ("COOKIE_SECURE", "no"),
    ]))
    .unwrap();
    assert!(!forced.cookie_secure());
}

#[test]
fn values_are_read_trimmed_and_empty_ones_count_as_unset() {
    let s = Settings::from_vars(&vars(&[
        ("JWT_SECRET", ""),
        ("PORT", " 9090 "),
        ("APP_ENV", " production "),
        ("JWT_PREVIOUS_SECRETS", format!(" {GOOD} ,, ").as_str()),
        ("BCRYPT_COST", "  "),
        ("REFRESH_REUSE_GRACE", "0s"),
    ]));
    let err = s.unwrap_err();
    assert_eq!(
        err.var, "JWT_SECRET",
        "production, and JWT_SECRET= is unset"
    );

    let s = Settings::from_vars(&vars(&[
        ("JWT_SECRET", &format!(" {GOOD}\t")),
        ("PORT", " 9090 "),
        ("APP_ENV", " production "),
        ("JWT_PREVIOUS_SECRETS", &format!(" {GOOD} ,, ")),
        ("BCRYPT_COST", "  "),
        ("REFRESH_REUSE_GRACE", "0s"),
    ]))
    .unwrap();
    assert_eq!(s.sessions.jwt_secret, Some(Secret::new(GOOD)));
    assert_eq!(s.http.port, 9090);
    assert!(s.is_production());
    assert_eq!(s.sessions.jwt_previous_secrets, vec![Secret::new(GOOD)]);
    assert_eq!(s.sessions.bcrypt_cost, 12);
    assert_eq!(s.sessions.refresh_reuse_grace, Duration::ZERO);
}

#[test]
fn variables_other_than_settings_are_ignored() {
    let s = Settings::from_vars(&vars(&[("JWT_SECRET", GOOD), ("HOME", "/root")]));
    assert!(s.is_ok());
}

#[test]
fn public_url_is_normalised_to_an_origin() {
    assert_eq!(
        parse_origin("HTTPS://Login.Example.com/").unwrap(),
        "https://login.example.com"
    );
    assert!(parse_origin("https://example.com/path").is_err());
    let s = Settings::from_vars(&vars(&[("PUBLIC_URL", "http://[::1]:8080/")])).unwrap();
    assert_eq!(s.http.public_url.as_deref(), Some("http://[::1]:8080"));
}

#[test]
fn trusted_proxies_take_addresses_and_blocks() {
    let parsed = parse_proxies("10.0.0.0/8, 192.168.1.7 ,::1,").unwrap();
    assert_eq!(parsed.len(), 3);
    assert!(parsed[1].contains(&"192.168.1.7".parse::<std::net::IpAddr>().unwrap()));
    let s = Settings::from_vars(&vars(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")])).unwrap();
    assert_eq!(s.http.trusted_proxies.len(), 2);
}

#[test]
fn secret_debug_is_redacted() {
    assert!(!format!("{:?}", Secret::new(GOOD)).contains("k3J9"));
    let s = Settings::from_vars(&vars(&[
        ("JWT_SECRET", GOOD),
        ("JWT_PREVIOUS_SECRETS", GOOD),
    ]))
    .unwrap();
    assert!(!format!("{s:?}").contains("k3J9"));
}

#[test]
fn refused_previous_secrets_are_not_echoed() {
    let err = Settings::from_vars(&vars(&[
        ("JWT_SECRET", GOOD),
        ("JWT_PREVIOUS_SECRETS", "hunter2-but-short"),
    ]))
    .unwrap_err();
    assert_eq!(err.var, "JWT_PREVIOUS_SECRETS");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn every_setting_has_a_variable_a_long_option_and_hides_its_value() {
    let cmd = Settings::augment_args(Command::new("gatehouse"));
    for arg in cmd.get_arguments() {
        let env = arg.get_env().and_then(OsStr::to_str);
        assert!(env.is_some(), "{} has no variable", arg.get_id());
        assert_eq!(arg.get_value_names().map(|n| n[0].as_str()), env);
        assert!(arg.get_long().is_some(), "{:?}", env);
        assert!(arg.is_hide_env_values_set(), "{:?}", env);
        assert!(arg.get_help().is_some(), "{:?} has no help", env);
    }
    assert_eq!(variables().len(), cmd.get_arguments().count());
}

#[test]
fn a_transaction_pooler_listens_only_where_told_and_needs_postgres() {
    let pooled = "postgres://app@127.0.0.1:6432/gatehouse";
    let direct = "postgres://app@127.0.0.1:5432/gatehouse";
    let plain = Settings::from_vars(&vars(&[("DATABASE_URL", direct)])).unwrap();
    assert_eq!(plain.database.db_pooler, Pooler::None);
    assert_eq!(plain.database.listen_url(), Some(direct));
    let sqlite = Settings::from_vars(&vars(&[])).unwrap();
    assert_eq!(sqlite.database.listen_url(), None);

    let through = [("DATABASE_URL", pooled), ("DB_POOLER", " Transaction ")];
    let s = Settings::from_vars(&vars(&through)).unwrap();
    assert_eq!(s.database.db_pooler, Pooler::Transaction);
    assert_eq!(s.database.listen_url(), None);
    let mut told = through.to_vec();
    told.push(("REVOCATION_LISTEN_URL", direct));
    let s = Settings::from_vars(&vars(&told)).unwrap();
    assert_eq!(s.database.listen_url(), Some(direct));

    let err = Settings::from_vars(&vars(&[("DB_POOLER", "transaction")])).unwrap_err();
    assert_eq!(err.var, "DB_POOLER");
    let err = Settings::from_vars(&vars(&[("DB_POOLER", "session")])).unwrap_err();
    assert_eq!(err.var, "DB_POOLER");
    let err = Settings::from_vars(&vars(&[("REVOCATION_LISTEN_URL", "gatehouse.db")])).unwrap_err();
    assert_eq!(err.var, "REVOCATION_LISTEN_URL");
}
