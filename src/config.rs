//! Settings: every knob Gatehouse reads, declared once as clap arguments (each
//! with its variable, default and help) and checked once at start-up.
//!
//! Precedence, lowest first: built-in defaults, then `.env` (loaded by `main`;
//! dotenvy never overrides a variable that is already set), then the process
//! environment, then the command line. Parsing has no side effects, and nothing
//! else in the crate reads the environment.
//!
//! Every argument hides its variable's current value from `--help`, and the two
//! secrets are taken as plain strings and checked only after parsing, so no
//! error message can echo a secret.

use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::OsStr;
use std::sync::OnceLock;
use std::time::Duration;

use clap::builder::{EnumValueParser, PossibleValue, StringValueParser, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Args, Command, FromArgMatches as _, ValueEnum};

pub use gatehouse_core::secret::Secret;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppEnv {
    Development,
    Production,
}

/// A start-up error that names the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

/// Everything Gatehouse reads from its environment or command line.
///
/// A value built by clap has passed every per-value rule; [`Settings::check`]
/// adds the rules that span values or must not echo them (the secrets).
/// [`Settings::from_vars`] does both.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "General")]
pub struct Settings {
    /// `development` or `production`; production requires JWT_SECRET and turns on Secure cookies and HSTS
    #[arg(
        long,
        env = "APP_ENV",
        value_name = "APP_ENV",
        default_value = "development",
        value_parser = Trimmed(EnumValueParser::<AppEnv>::new()),
        hide_env_values = true
    )]
    pub app_env: AppEnv,

    /// Log filter (tracing-subscriber EnvFilter syntax)
    #[arg(
        long,
        env = "RUST_LOG",
        value_name = "RUST_LOG",
        default_value = "info",
        value_parser = Trimmed(StringValueParser::new()),
        hide_env_values = true
    )]
    pub rust_log: String,

    #[command(flatten)]
    pub http: HttpSettings,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub sessions: SessionSettings,

    #[command(flatten)]
    pub throttle: ThrottleSettings,

    #[command(flatten)]
    pub mail: MailSettings,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Password reset and mail")]
pub struct MailSettings {
    /// How long a password-reset link works
    #[arg(
        long,
        env = "PASSWORD_RESET_TTL",
        value_name = "PASSWORD_RESET_TTL",
        default_value = "30m",
        value_parser = Trimmed(parse_duration),
        hide_env_values = true
    )]
    pub password_reset_ttl: Duration,

    /// Where mail goes: smtp://user:pass@host:587 (STARTTLS), smtps://…:465, smtp+insecure://host:port (local relay, not in production) or file://DIR; unset: file://mail in development, required in production
    #[arg(
        long,
        env = "MAIL_URL",
        value_name = "MAIL_URL",
        value_parser = Trimmed(StringValueParser::new()),
        hide_env_values = true
    )]
    pub mail_url: Option<String>,

    /// The sender of every mail; unset: Gatehouse <noreply@localhost> in development, required in production
    #[arg(
        long,
        env = "MAIL_FROM",
        value_name = "MAIL_FROM",
        value_parser = Trimmed(StringValueParser::new()),
        hide_env_values = true
    )]
    pub mail_from: Option<String>,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpSettings {
    /// Address to listen on
    #[arg(
        long,
        env = "HOST",
        value_name = "HOST",
        default_value = "127.0.0.1",
        value_parser = Trimmed(StringValueParser::new()),
        hide_env_values = true
    )]
    pub host: String,

    /// Port to listen on; 0 picks a free one (the real one is logged)
    #[arg(
        long,
        env = "PORT",
        value_name = "PORT",
        default_value = "8080",
        value_parser = Trimmed(parse_port),
        hide_env_values = true
    )]
    pub port: u16,

    /// The site's origin as browsers see it (behind a TLS proxy, its https:// origin); unset: http://HOST:PORT
    #[arg(
        long,
        env = "PUBLIC_URL",
        value_name = "PUBLIC_URL",
        value_parser = Trimmed(parse_origin),
        hide_env_values = true
    )]
    pub public_url: Option<String>,

    /// Proxies (comma-separated IPs or CIDR blocks) whose X-Forwarded-For is believed; unset: none
    // `std::vec::Vec` keeps clap from splitting the value itself: the whole
    // list goes through `parse_proxies`, which skips empty entries.
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_name = "TRUSTED_PROXIES",
        default_value = "",
        hide_default_value = true,
        value_parser = Trimmed(parse_proxies),
        hide_env_values = true
    )]
    pub trusted_proxies: std::vec::Vec<ipnet::IpNet>,

    /// Send cookies only over HTTPS: true or false; unset: true in production only
    #[arg(
        long,
        env = "COOKIE_SECURE",
        value_name = "COOKIE_SECURE",
        value_parser = Trimmed(parse_bool),
        hide_env_values = true
    )]
    pub cookie_secure: Option<bool>,

    /// SameSite for every cookie: lax, strict or none (none needs Secure cookies; for a front end on another site)
    #[arg(
        long,
        env = "COOKIE_SAMESITE",
        value_name = "COOKIE_SAMESITE",
        default_value = "lax",
        value_parser = Trimmed(parse_same_site),
        hide_env_values = true
    )]
    pub cookie_samesite: SameSitePolicy,

    /// Origins (comma-separated, exact) whose front ends may call the JSON API with credentials; unset: none
    // `std::vec::Vec`: the whole list goes through `parse_origins`.
    #[arg(
        long,
        env = "CORS_ORIGINS",
        value_name = "CORS_ORIGINS",
        default_value = "",
        hide_default_value = true,
        value_parser = Trimmed(parse_origins),
        hide_env_values = true
    )]
    pub cors_origins: std::vec::Vec<String>,

    /// HTTP worker threads; `None` is one per CPU. Not a variable: tests set it.
    #[arg(skip)]
    pub workers: Option<usize>,
}

impl HttpSettings {
    /// The origin links to the site start with: `PUBLIC_URL`, else the
    /// listening address on `port` (an IPv6 host in brackets).
    pub fn public_origin(&self, port: u16) -> String {
        if let Some(origin) = &self.public_url {
            return origin.clone();
        }
        match self.host.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => format!("http://[{v6}]:{port}"),
            Err(_) => format!("http://{}:{port}", self.host),
        }
    }
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseSettings {
    /// postgres://user:password@host/db for PostgreSQL; anything else is a SQLite file (created at start-up)
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        default_value = "gatehouse.db",
        value_parser = Trimmed(StringValueParser::new()),
        hide_env_values = true
    )]
    pub database_url: String,

    /// Connections each instance keeps open at most (each has a thread)
    #[arg(
        long,
        env = "DB_POOL_SIZE",
        value_name = "DB_POOL_SIZE",
        default_value = "2",
        value_parser = Trimmed(parse_count),
        hide_env_values = true
    )]
    pub db_pool_size: u32,

    /// How long a request waits for a free connection before it is answered 503
    #[arg(
        long,
        env = "DB_POOL_TIMEOUT",
        value_name = "DB_POOL_TIMEOUT",
        default_value = "3s",
        value_parser = Trimmed(parse_duration),
        hide_env_values = true
    )]
    pub db_pool_timeout: Duration,

    /// How long start-up retries an unreachable database before it gives up with the error
    #[arg(
        long,
        env = "DB_STARTUP_TIMEOUT",
        value_name = "DB_STARTUP_TIMEOUT",
        default_value = "30s",
        value_parser = Trimmed(parse_grace),
        hide_env_values = true
    )]
    pub db_startup_timeout: Duration,

    /// Apply pending migrations at start-up (false: leave it to `gatehouse migrate`, and refuse to serve while any are pending)
    #[arg(
        long,
        env = "MIGRATE_ON_START",
        value_name = "MIGRATE_ON_START",
        default_value = "true",
        value_parser = Trimmed(parse_bool),
        hide_env_values = true
    )]
    pub migrate_on_start: bool,
}

impl DatabaseSettings {
    /// Whether `DATABASE_URL` names a PostgreSQL server.
    pub fn is_postgres(&self) -> bool {
        let url = self.database_url.to_ascii_lowercase();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sessions")]
pub struct SessionSettings {
    /// HS256 signing key, at least 32 random bytes; required in production
    // Infallible parser: the secret is checked by `Settings::check`, whose
    // messages never contain it.
    #[arg(
        long,
        env = "JWT_SECRET",
        value_name = "JWT_SECRET",
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub jwt_secret: Option<Secret>,

    /// Earlier secrets (comma-separated), still accepted for verification during a key rotation
    #[arg(
        long,
        env = "JWT_PREVIOUS_SECRETS",
        value_name = "JWT_PREVIOUS_SECRETS",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_secret_list,
        hide_env_values = true
    )]
    pub jwt_previous_secrets: std::vec::Vec<Secret>,

    /// bcrypt work factor, 4-31; each step doubles the cost of a sign-in
    #[arg(
        long,
        env = "BCRYPT_COST",
        value_name = "BCRYPT_COST",
        default_value = "12",
        value_parser = Trimmed(parse_bcrypt_cost),
        hide_env_values = true
    )]
    pub bcrypt_cost: u32,

    /// Lifetime of the access token and its cookie (90s, 10m, 12h, ...)
    #[arg(
        long,
        env = "ACCESS_TOKEN_TTL",
        value_name = "ACCESS_TOKEN_TTL",
        default_value = "10m",
        value_parser = Trimmed(parse_duration),
        hide_env_values = true
    )]
    pub access_token_ttl: Duration,

    /// A rotated refresh token still works this long (tabs racing at expiry); 0 allowed
    #[arg(
        long,
        env = "REFRESH_REUSE_GRACE",
        value_name = "REFRESH_REUSE_GRACE",
        default_value = "10s",
        value_parser = Trimmed(parse_grace),
        hide_env_values = true
    )]
    pub refresh_reuse_grace: Duration,

    /// Absolute session lifetime without "remember me"
    #[arg(
        long,
        env = "SESSION_MAX_AGE",
        value_name = "SESSION_MAX_AGE",
        default_value = "12h",
        value_parser = Trimmed(parse_duration),
        hide_env_values = true
    )]
    pub session_max_age: Duration,

    /// Absolute session lifetime with "remember me"
    #[arg(
        long,
        env = "SESSION_MAX_AGE_REMEMBER",
        value_name = "SESSION_MAX_AGE_REMEMBER",
        default_value = "30d",
        value_parser = Trimmed(parse_duration),
        hide_env_values = true
    )]
    pub session_max_age_remember: Duration,

    /// Sessions not refreshed for this long end
    #[arg(
        long,
        env = "SESSION_IDLE_TIMEOUT",
        value_name = "SESSION_IDLE_TIMEOUT",
        default_value = "7d",
        value_parser = Trimmed(parse_duration),
        hide_env_values = true
    )]
    pub session_idle_timeout: Duration,

    /// How often revocations made by other instances are read from the database
    #[arg(
        long,
        env = "REVOCATION_POLL_INTERVAL",
        value_name = "REVOCATION_POLL_INTERVAL",
        default_value = "1s",
        value_parser = Trimmed(parse_duration),
        hide_env_values = true
    )]
    pub revocation_poll_interval: Duration,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Throttling")]
pub struct ThrottleSettings {
    /// Failed sign-ins per (e-mail, IP) within 15 minutes before the pair is locked
    #[arg(
        long,
        env = "LOGIN_MAX_FAILURES",
        value_name = "LOGIN_MAX_FAILURES",
        default_value = "5",
        value_parser = Trimmed(parse_count),
        hide_env_values = true
    )]
    pub login_max_failures: u32,

    /// Failed sign-ins per IP per hour, across all e-mails
    #[arg(
        long,
        env = "LOGIN_MAX_FAILURES_PER_IP",
        value_name = "LOGIN_MAX_FAILURES_PER_IP",
        default_value = "100",
        value_parser = Trimmed(parse_count),
        hide_env_values = true
    )]
    pub login_max_failures_per_ip: u32,

    /// Registrations per IP per hour
    #[arg(
        long,
        env = "REGISTER_MAX_PER_HOUR",
        value_name = "REGISTER_MAX_PER_HOUR",
        default_value = "10",
        value_parser = Trimmed(parse_count),
        hide_env_values = true
    )]
    pub register_max_per_hour: u32,

    /// Password-reset requests per e-mail address (registered or not) per hour
    #[arg(
        long,
        env = "PASSWORD_RESET_MAX_PER_HOUR",
        value_name = "PASSWORD_RESET_MAX_PER_HOUR",
        default_value = "3",
        value_parser = Trimmed(parse_count),
        hide_env_values = true
    )]
    pub password_reset_max_per_hour: u32,

    /// Password-reset requests per IP per hour, for any addresses
    #[arg(
        long,
        env = "PASSWORD_RESET_MAX_PER_IP",
        value_name = "PASSWORD_RESET_MAX_PER_IP",
        default_value = "20",
        value_parser = Trimmed(parse_count),
        hide_env_values = true
    )]
    pub password_reset_max_per_ip: u32,
}

impl Settings {
    /// Builds settings from a map of variable names to values and nothing else:
    /// the process environment is never read, so tests are sealed. Empty values
    /// count as unset.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let cmd = Self::augment_args(Command::new("gatehouse")).mut_args(|arg| arg.env(None));
        let mut args = vec!["gatehouse".to_owned()];
        for (long, var) in variables() {
            if let Some(value) = vars.get(*var).filter(|v| !v.trim().is_empty()) {
                args.push(format!("--{long}={value}"));
            }
        }
        let matches = cmd
            .try_get_matches_from(args)
            .map_err(|e| ConfigError::from_clap(&e))?;
        let settings = Self::from_arg_matches(&matches).map_err(|e| ConfigError::from_clap(&e))?;
        settings.check()?;
        Ok(settings)
    }

    /// The rules clap does not apply: the secrets' strength (checked here so
    /// that no message echoes them), and a secret being required in production.
    /// The first of [`problems`](Self::problems), if any.
    pub fn check(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every problem these settings have, each naming its variable, so that
    /// start-up can report them all at once.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        match &self.sessions.jwt_secret {
            Some(secret) => {
                problems.extend(check_secret("JWT_SECRET", secret.expose().to_vec()).err())
            }
            None if self.is_production() => problems.push(ConfigError::new(
                "JWT_SECRET",
                "is required in production (at least 32 random bytes)",
            )),
            None => {}
        }
        for secret in &self.sessions.jwt_previous_secrets {
            problems.extend(check_secret("JWT_PREVIOUS_SECRETS", secret.expose().to_vec()).err());
        }
        if self.http.cookie_samesite == SameSitePolicy::None && !self.cookie_secure() {
            problems.push(ConfigError::new(
                "COOKIE_SAMESITE",
                "`none` needs Secure cookies (COOKIE_SECURE=true, or production): browsers \
                 refuse SameSite=None cookies without Secure",
            ));
        }
        if self.is_production() {
            if self.mail.mail_url.is_none() {
                problems.push(ConfigError::new(
                    "MAIL_URL",
                    "is required in production (smtp://…, smtps://… or file://DIR)",
                ));
            }
            if self.mail.mail_from.is_none() {
                problems.push(ConfigError::new(
                    "MAIL_FROM",
                    "is required in production (e.g. `Gatehouse <noreply@example.com>`)",
                ));
            }
        }
        problems
    }

    /// Where mail goes: `MAIL_URL`, else `.eml` files under `mail/`.
    pub fn mail_url(&self) -> &str {
        self.mail.mail_url.as_deref().unwrap_or("file://mail")
    }

    /// The sender of every mail: `MAIL_FROM`, else a development address.
    pub fn mail_from(&self) -> &str {
        self.mail
            .mail_from
            .as_deref()
            .unwrap_or("Gatehouse <noreply@localhost>")
    }

    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }

    /// Whether cookies are sent only over HTTPS: `COOKIE_SECURE`, else on in production.
    pub fn cookie_secure(&self) -> bool {
        self.http
            .cookie_secure
            .unwrap_or_else(|| self.is_production())
    }
}

impl ConfigError {
    /// Names the variable behind the argument a clap error is about. Its
    /// message repeats the offending value only for settings parsed by clap,
    /// which never sees a secret it could refuse.
    pub fn from_clap(e: &clap::Error) -> Self {
        let context = |kind| match e.get(kind) {
            Some(ContextValue::String(s)) => Some(s.as_str()),
            _ => None,
        };
        let var = context(ContextKind::InvalidArg)
            .and_then(|arg| {
                variables().iter().find(|(long, _)| {
                    arg.strip_prefix("--")
                        .and_then(|rest| rest.strip_prefix(long))
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
                })
            })
            .map_or("settings", |(_, var)| *var);
        let value = context(ContextKind::InvalidValue);
        let message = match (e.kind(), value, std::error::Error::source(e)) {
            (ErrorKind::ValueValidation, Some(value), Some(why)) => {
                format!("invalid value `{value}`: {why}")
            }
            (ErrorKind::InvalidValue, Some(value), _) => match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(valid)) => {
                    format!("must be `{}`, not `{value}`", valid.join("` or `"))
                }
                _ => format!("invalid value `{value}`"),
            },
            _ => {
                let rendered = e.render().to_string();
                let first = rendered.lines().next().unwrap_or_default();
                first.trim_start_matches("error: ").to_owned()
            }
        };
        Self::new(var, message)
    }
}

/// The (long option, variable) pair of every setting, read from the clap
/// declaration once. The names are leaked once so that [`ConfigError`] can
/// keep its `&'static str`.
fn variables() -> &'static [(&'static str, &'static str)] {
    static VARIABLES: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    VARIABLES.get_or_init(|| {
        let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
        Settings::augment_args(Command::new("gatehouse"))
            .get_arguments()
            .filter_map(|arg| {
                let long = arg.get_long()?;
                let var = arg.get_env()?.to_str()?;
                Some((leak(long), leak(var)))
            })
            .collect()
    })
}

/// Makes variables that are set but blank count as unset (as `VAR=` in `.env`
/// means), here and in every subcommand. Such a variable's name then no longer
/// shows in `--help`.
pub fn ignore_blank_env(cmd: Command) -> Command {
    cmd.mut_args(|arg| {
        let blank = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|v| v.to_str().is_some_and(|s| s.trim().is_empty()));
        if blank { arg.env(None) } else { arg }
    })
    .mut_subcommands(ignore_blank_env)
}

/// Trims the value before handing it to the inner parser, as a `.env` line or a
/// shell export may carry stray spaces.
#[derive(Clone)]
struct Trimmed<P>(P);

impl<P: TypedValueParser> TypedValueParser for Trimmed<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        cmd: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let Some(text) = value.to_str() else {
            let arg = arg.map_or_else(|| "...".to_owned(), ToString::to_string);
            return Err(clap::Error::raw(
                ErrorKind::InvalidUtf8,
                format!("the value for '{arg}' is not valid UTF-8\n"),
            )
            .with_cmd(cmd));
        };
        self.0.parse_ref(cmd, arg, OsStr::new(text.trim()))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        self.0.possible_values()
    }
}

fn parse_port(raw: &str) -> Result<u16, String> {
    raw.parse()
        .map_err(|_| "must be a whole number from 0 to 65535".to_owned())
}

fn parse_bcrypt_cost(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(cost @ 4..=31) => Ok(cost),
        _ => Err("must be a number from 4 to 31".to_owned()),
    }
}

fn parse_count(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number of at least 1".to_owned()),
    }
}

/// A humantime duration of at least 1s.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    match parse_grace(raw)? {
        d if d >= Duration::from_secs(1) => Ok(d),
        _ => Err("must be at least 1s".to_owned()),
    }
}

/// A humantime duration, 0 allowed (`REFRESH_REUSE_GRACE`).
fn parse_grace(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw)
        .map_err(|e| format!("is not a duration such as 90s, 15m or 12h ({e})"))
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("must be `true` or `false`".to_owned()),
    }
}

/// `TRUSTED_PROXIES`: comma-separated IPs or CIDR blocks; empty entries are skipped.
fn parse_proxies(list: &str) -> Result<Vec<ipnet::IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{entry}` is not an IP address or CIDR block"))
        })
        .collect()
}

/// Takes any string: [`Settings::check`] judges it, without echoing it.
fn parse_secret(raw: &str) -> Result<Secret, Infallible> {
    Ok(Secret::new(raw.trim()))
}

/// `JWT_PREVIOUS_SECRETS`: comma-separated; empty entries are skipped. Judged by
/// [`Settings::check`].
fn parse_secret_list(list: &str) -> Result<Vec<Secret>, Infallible> {
    Ok(list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect())
}

/// Refuses secrets that are short, or well known from tutorials (also when repeated
/// to reach the length). Messages name the variable and the length, never the value.
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
/// `CORS_ORIGINS`: comma-separated origins; empty entries are skipped.
fn parse_origins(list: &str) -> Result<Vec<String>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|origin| parse_origin(origin).map_err(|why| format!("`{origin}` {why}")))
        .collect()
}

/// The `SameSite` attribute every cookie gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSitePolicy {
    Lax,
    Strict,
    None,
}

fn parse_same_site(raw: &str) -> Result<SameSitePolicy, String> {
    match raw.to_ascii_lowercase().as_str() {
        "lax" => Ok(SameSitePolicy::Lax),
        "strict" => Ok(SameSitePolicy::Strict),
        "none" => Ok(SameSitePolicy::None),
        _ => Err("must be `lax`, `strict` or `none`".to_owned()),
    }
}

fn parse_origin(raw: &str) -> Result<String, String> {
    let (scheme, rest) = raw
        .split_once("://")
        .ok_or("must start with http:// or https://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err("must start with http:// or https://".to_owned());
    }
    let authority = rest.trim_end_matches('/');
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@', ' ', '\\'])
        || !authority.is_ascii()
    {
        return Err("must be an origin such as https://login.example.com".to_owned());
    }
    Ok(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let err =
                Settings::from_vars(&vars(&[("JWT_SECRET", GOOD), (var, value)])).unwrap_err();
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
        let p =
            Settings::from_vars(&vars(&[("JWT_SECRET", GOOD), ("APP_ENV", "production")])).unwrap();
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
        let s =
            Settings::from_vars(&vars(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")])).unwrap();
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
}
