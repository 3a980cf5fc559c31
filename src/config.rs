//! Settings: every knob Gatehouse reads, parsed and checked once at start-up.
//!
//! Precedence, lowest first: built-in defaults, then `.env` (dotenvy never
//! overrides a variable that is already set), then the process environment.
//! Nothing else in the crate reads the environment.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

/// Every variable Gatehouse understands; `.env.example` documents each.
pub const VARIABLES: &[&str] = &[
    "HOST",
    "PORT",
    "DATABASE_URL",
    "APP_ENV",
    "JWT_SECRET",
    "JWT_PREVIOUS_SECRETS",
    "BCRYPT_COST",
    "ACCESS_TOKEN_TTL",
    "REFRESH_REUSE_GRACE",
    "SESSION_MAX_AGE",
    "SESSION_MAX_AGE_REMEMBER",
    "SESSION_IDLE_TIMEOUT",
    "REVOCATION_POLL_INTERVAL",
    "LOGIN_MAX_FAILURES",
    "LOGIN_MAX_FAILURES_PER_IP",
    "REGISTER_MAX_PER_HOUR",
    "TRUSTED_PROXIES",
    "COOKIE_SECURE",
    "PUBLIC_URL",
    "RUST_LOG",
];

/// Shortest accepted signing secret, in bytes (HS256 wants at least its 256-bit output).
pub const MIN_SECRET_BYTES: usize = 32;

/// Secrets copied from tutorials and examples; refused in every environment.
const WELL_KNOWN_SECRETS: &[&str] = &[
    "secret",
    "changeme",
    "change-me",
    "change_me",
    "password",
    "your-256-bit-secret",
    "your_jwt_secret",
    "your-jwt-secret",
    "your-secret-key",
    "supersecret",
    "mysecret",
    "jwt_secret",
    "jwt-secret",
    "secretkey",
    "replace-me-with-at-least-32-random-bytes",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

/// Key material whose `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {} bytes])", self.0.len())
    }
}

/// A start-up error that names the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    /// `0` asks the OS for a free port; [`crate::startup::Application::port`] tells which.
    pub port: u16,
    /// Path of the SQLite database file.
    pub database_url: String,
    pub app_env: AppEnv,
    /// Signs new access tokens (HS256).
    pub jwt_secret: Secret,
    /// Earlier secrets, still accepted for verification during a key rotation.
    pub jwt_previous_secrets: Vec<Secret>,
    pub bcrypt_cost: u32,
    pub access_token_ttl: Duration,
    /// A rotated refresh token still works this long (tabs racing at expiry).
    pub refresh_reuse_grace: Duration,
    /// Absolute session lifetime without "remember me".
    pub session_max_age: Duration,
    /// Absolute session lifetime with "remember me".
    pub session_max_age_remember: Duration,
    /// Sessions not refreshed for this long end.
    pub session_idle_timeout: Duration,
    /// How often revocations made elsewhere are read from the database.
    pub revocation_poll_interval: Duration,
    /// Failures per (e-mail, IP) within 15 minutes before that pair is locked.
    pub login_max_failures: u32,
    /// Failures per IP per hour, across all e-mails.
    pub login_max_failures_per_ip: u32,
    pub register_max_per_hour: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub cookie_secure: bool,
    /// The site's origin as browsers see it; `None` means `http://{host}:{bound port}`.
    pub public_url: Option<String>,
    pub rust_log: String,
    /// HTTP worker threads; `None` is one per CPU.
    pub workers: Option<usize>,
    /// Set when a development secret was generated at this start-up (logged by
    /// `main` once logging is up).
    pub generated_secret_file: Option<PathBuf>,
}

impl Settings {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::new(".env", format!("cannot be read: {e}"))),
        }
        let mut vars = HashMap::new();
        for &name in VARIABLES {
            match std::env::var(name) {
                Ok(value) => {
                    vars.insert(name.to_owned(), value);
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigError::new(name, "is not valid UTF-8"));
                }
            }
        }
        Self::from_vars(&vars)
    }

    /// Builds settings from a map of variable names to values (the environment,
    /// or a test's own map). Empty values count as unset.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };

        let app_env = match get("APP_ENV").as_deref() {
            None | Some("development") => AppEnv::Development,
            Some("production") => AppEnv::Production,
            Some(other) => {
                return Err(ConfigError::new(
                    "APP_ENV",
                    format!("must be `development` or `production`, not `{other}`"),
                ));
            }
        };
        let host = get("HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
        let port = match get("PORT") {
            None => 8080,
            Some(p) => p
                .parse()
                .map_err(|_| ConfigError::new("PORT", format!("must be 0-65535, not `{p}`")))?,
        };
        let database_url = get("DATABASE_URL").unwrap_or_else(|| "gatehouse.db".to_owned());
        let bcrypt_cost = match get("BCRYPT_COST") {
            None => 12,
            Some(c) => match c.parse::<u32>() {
                Ok(cost @ 4..=31) => cost,
                _ => {
                    return Err(ConfigError::new(
                        "BCRYPT_COST",
                        "must be a number from 4 to 31",
                    ));
                }
            },
        };
        let access_token_ttl = duration(&get, "ACCESS_TOKEN_TTL", "10m")?;
        let refresh_reuse_grace = duration(&get, "REFRESH_REUSE_GRACE", "10s")?;
        let session_max_age = duration(&get, "SESSION_MAX_AGE", "12h")?;
        let session_max_age_remember = duration(&get, "SESSION_MAX_AGE_REMEMBER", "30d")?;
        let session_idle_timeout = duration(&get, "SESSION_IDLE_TIMEOUT", "7d")?;
        let revocation_poll_interval = duration(&get, "REVOCATION_POLL_INTERVAL", "1s")?;
        let login_max_failures = count(&get, "LOGIN_MAX_FAILURES", 5)?;
        let login_max_failures_per_ip = count(&get, "LOGIN_MAX_FAILURES_PER_IP", 100)?;
        let register_max_per_hour = count(&get, "REGISTER_MAX_PER_HOUR", 10)?;
        let trusted_proxies = get("TRUSTED_PROXIES")
            .map(|list| parse_proxies(&list))
            .transpose()?
            .unwrap_or_default();
        let cookie_secure = match get("COOKIE_SECURE").as_deref() {
            None => app_env == AppEnv::Production,
            Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    "COOKIE_SECURE",
                    format!("must be `true` or `false`, not `{other}`"),
                ));
            }
        };
        let public_url = get("PUBLIC_URL").map(|u| parse_origin(&u)).transpose()?;
        let mut generated_secret_file = None;
        let jwt_secret = match get("JWT_SECRET") {
            Some(s) => check_secret("JWT_SECRET", s.into_bytes())?,
            None if app_env == AppEnv::Production => {
                return Err(ConfigError::new(
                    "JWT_SECRET",
                    "is required in production (at least 32 random bytes)",
                ));
            }
            None => {
                let (secret, generated) = development_secret(&database_url)?;
                generated_secret_file = generated;
                secret
            }
        };
        let jwt_previous_secrets = get("JWT_PREVIOUS_SECRETS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| check_secret("JWT_PREVIOUS_SECRETS", s.as_bytes().to_vec()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            host,
            port,
            database_url,
            app_env,
            jwt_secret,
            jwt_previous_secrets,
            bcrypt_cost,
            access_token_ttl,
            refresh_reuse_grace,
            session_max_age,
            session_max_age_remember,
            session_idle_timeout,
            revocation_poll_interval,
            login_max_failures,
            login_max_failures_per_ip,
            register_max_per_hour,
            trusted_proxies,
            cookie_secure,
            public_url,
            rust_log: get("RUST_LOG").unwrap_or_else(|| "info".to_owned()),
            workers: None,
            generated_secret_file,
        })
    }

    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }
}

fn duration(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: &str,
) -> Result<Duration, ConfigError> {
    let raw = get(var).unwrap_or_else(|| default.to_owned());
    match humantime::parse_duration(&raw) {
        Ok(d) if d >= Duration::from_secs(1) || var == "REFRESH_REUSE_GRACE" => Ok(d),
        Ok(_) => Err(ConfigError::new(var, "must be at least 1s")),
        Err(e) => Err(ConfigError::new(
            var,
            format!("`{raw}` is not a duration such as 90s, 15m or 12h ({e})"),
        )),
    }
}

fn count(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u32,
) -> Result<u32, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(ConfigError::new(
                var,
                format!("must be a whole number of at least 1, not `{raw}`"),
            )),
        },
    }
}

/// `TRUSTED_PROXIES`: comma-separated IPs or CIDR blocks.
fn parse_proxies(list: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        "TRUSTED_PROXIES",
                        format!("`{entry}` is not an IP address or CIDR block"),
                    )
                })
        })
        .collect()
}

/// Refuses secrets that are short, or well known from tutorials (also when repeated
/// to reach the length).
pub fn check_secret(var: &'static str, bytes: Vec<u8>) -> Result<Secret, ConfigError> {
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::new(
            var,
            format!(
                "is {} bytes; it must be at least {MIN_SECRET_BYTES} random bytes",
                bytes.len()
            ),
        ));
    }
    let lowered = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
    let well_known = WELL_KNOWN_SECRETS.iter().any(|known| {
        let stripped = lowered.replace(known, "");
        stripped.chars().all(|c| !c.is_ascii_alphanumeric())
    });
    let distinct = {
        let mut seen = [false; 256];
        bytes.iter().for_each(|&b| seen[usize::from(b)] = true);
        seen.iter().filter(|&&s| s).count()
    };
    if well_known || distinct < 8 {
        return Err(ConfigError::new(
            var,
            "is a well-known example value; generate one with `openssl rand -base64 48`",
        ));
    }
    Ok(Secret::new(bytes))
}

/// Normalises `PUBLIC_URL` to an origin (`scheme://host[:port]`, no path).
fn parse_origin(raw: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError::new("PUBLIC_URL", format!("`{raw}` {why}"));
    let (scheme, rest) = raw
        .split_once("://")
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad("must start with http:// or https://"));
    }
    let authority = rest.trim_end_matches('/');
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@', ' ', '\\'])
        || !authority.is_ascii()
    {
        return Err(bad("must be an origin such as https://login.example.com"));
    }
    Ok(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// Development convenience: a random secret kept in a git-ignored file beside the
/// database, so restarts keep browsers signed in. Returns the file's path when
/// it was created now.
fn development_secret(database_url: &str) -> Result<(Secret, Option<PathBuf>), ConfigError> {
    let path = secret_file_for(database_url);
    match std::fs::read_to_string(&path) {
        Ok(existing) => {
            return Ok((
                check_secret("JWT_SECRET", existing.trim().as_bytes().to_vec())?,
                None,
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ConfigError::new(
                "JWT_SECRET",
                format!("is unset and {} cannot be read: {e}", path.display()),
            ));
        }
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let encoded = URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, encoded.as_bytes()).map_err(|e| {
        ConfigError::new(
            "JWT_SECRET",
            format!("is unset and {} cannot be written: {e}", path.display()),
        )
    })?;
    Ok((Secret::new(encoded.into_bytes()), Some(path)))
}

/// `gatehouse.db` keeps its development secret in `gatehouse.db.jwt-secret`.
pub fn secret_file_for(database_url: &str) -> PathBuf {
    let db = crate::db::sqlite_path(database_url);
    let mut name = Path::new(db)
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "gatehouse.db".into());
    name.push(".jwt-secret");
    Path::new(db).with_file_name(name)
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const GOOD: &str = "k3J9x2mQ7vW1pL8sT4nR6yB0cF5hD2gA";

    #[test]
    fn production_requires_a_secret() {
        let err = Settings::from_vars(&vars(&[("APP_ENV", "production")])).unwrap_err();
        assert_eq!(err.var, "JWT_SECRET");
    }

    #[test]
    fn short_secret_is_refused() {
        let err = Settings::from_vars(&vars(&[("JWT_SECRET", "0123456789abcdef")])).unwrap_err();
        assert_eq!(err.var, "JWT_SECRET");
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
            ("BCRYPT_COST", "3"),
            ("ACCESS_TOKEN_TTL", "soon"),
            ("APP_ENV", "staging"),
            ("COOKIE_SECURE", "maybe"),
            ("PUBLIC_URL", "example.com"),
            ("SESSION_IDLE_TIMEOUT", "forever"),
            ("JWT_PREVIOUS_SECRETS", "short"),
            ("LOGIN_MAX_FAILURES", "0"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.local"),
        ] {
            let err =
                Settings::from_vars(&vars(&[("JWT_SECRET", GOOD), (var, value)])).unwrap_err();
            assert_eq!(err.var, var);
        }
    }

    #[test]
    fn defaults_and_production_cookie_security() {
        let s = Settings::from_vars(&vars(&[("JWT_SECRET", GOOD)])).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8080));
        assert_eq!(s.access_token_ttl, Duration::from_secs(10 * 60));
        assert_eq!(s.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(
            s.session_max_age_remember,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert!(!s.cookie_secure);
        let p =
            Settings::from_vars(&vars(&[("JWT_SECRET", GOOD), ("APP_ENV", "production")])).unwrap();
        assert!(p.cookie_secure);
    }

    #[test]
    fn public_url_is_normalised_to_an_origin() {
        assert_eq!(
            parse_origin("HTTPS://Login.Example.com/").unwrap(),
            "https://login.example.com"
        );
        assert!(parse_origin("https://example.com/path").is_err());
    }

    #[test]
    fn trusted_proxies_take_addresses_and_blocks() {
        let parsed = parse_proxies("10.0.0.0/8, 192.168.1.7 ,::1").unwrap();
        assert_eq!(parsed.len(), 3);
        assert!(parsed[1].contains(&"192.168.1.7".parse::<std::net::IpAddr>().unwrap()));
    }

    #[test]
    fn env_example_documents_every_variable() {
        let example = include_str!("../.env.example");
        for var in VARIABLES {
            assert!(
                example.contains(&format!("{var}=")),
                "{var} is missing from .env.example"
            );
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert!(!format!("{:?}", Secret::new(GOOD)).contains("k3J9"));
    }

    #[test]
    fn development_secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("dev.db");
        let db = db.to_str().unwrap();
        let first = Settings::from_vars(&vars(&[("DATABASE_URL", db)])).unwrap();
        let second = Settings::from_vars(&vars(&[("DATABASE_URL", db)])).unwrap();
        assert_eq!(first.jwt_secret, second.jwt_secret);
        assert!(secret_file_for(db).exists());
    }
}
