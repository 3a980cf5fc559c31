//! The settings, one group per concern, each declared as clap arguments
//! (with its variable, default and help).

use std::time::Duration;

use clap::Args;
use clap::builder::{EnumValueParser, StringValueParser};

use gatehouse_core::db::Pooler;

use super::parse::*;
use super::secrets::{Secret, parse_secret, parse_secret_list};
use super::{ConfigError, VerifyMode};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Password reset, confirmation and mail")]
pub struct MailSettings {
    /// Whether a new address must be confirmed by a mailed link before it signs in: required or off; unset: required in production, off in development
    #[arg(
        long,
        env = "REGISTRATION_VERIFY",
        value_name = "REGISTRATION_VERIFY",
        value_parser = Trimmed(EnumValueParser::<VerifyMode>::new()),
        hide_env_values = true
    )]
    pub registration_verify: Option<VerifyMode>,

    /// How long a link confirming an address works
    #[arg(
        long,
        env = "VERIFY_TTL",
        value_name = "VERIFY_TTL",
        default_value = "24h",
        value_parser = Trimmed(parse_duration),
        hide_env_values = true
    )]
    pub verify_ttl: Duration,

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

    /// Passkeys' relying-party id: the host of PUBLIC_URL or a registrable suffix of it; unset: the host
    #[arg(
        long,
        env = "WEBAUTHN_RP_ID",
        value_name = "WEBAUTHN_RP_ID",
        value_parser = Trimmed(StringValueParser::new()),
        hide_env_values = true
    )]
    pub webauthn_rp_id: Option<String>,

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

    /// `transaction` when DATABASE_URL goes through a transaction-mode pooler (PgBouncer): no prepared statements, no LISTEN and no migrations over it
    #[arg(
        long,
        env = "DB_POOLER",
        value_name = "DB_POOLER",
        default_value = "none",
        value_parser = Trimmed(parse_pooler),
        hide_env_values = true
    )]
    pub db_pooler: Pooler,

    /// A direct PostgreSQL URL for LISTEN (one connection per instance), so revocations made elsewhere arrive at once, not at the next poll [default: DATABASE_URL, none with DB_POOLER=transaction]
    #[arg(
        long,
        env = "REVOCATION_LISTEN_URL",
        value_name = "REVOCATION_LISTEN_URL",
        value_parser = Trimmed(StringValueParser::new()),
        hide_env_values = true
    )]
    pub revocation_listen_url: Option<String>,

    /// For `gatehouse migrate`: a direct PostgreSQL URL, when DATABASE_URL goes through a pooler (`--database-url` on the command line wins)
    #[arg(
        long,
        env = "MIGRATION_DATABASE_URL",
        value_name = "MIGRATION_DATABASE_URL",
        value_parser = Trimmed(StringValueParser::new()),
        hide_env_values = true
    )]
    pub migration_database_url: Option<String>,
}

impl DatabaseSettings {
    /// Whether `DATABASE_URL` names a PostgreSQL server.
    pub fn is_postgres(&self) -> bool {
        is_postgres_url(&self.database_url)
    }

    /// Where this instance `LISTEN`s for revocations made elsewhere:
    /// `REVOCATION_LISTEN_URL`, else `DATABASE_URL` on PostgreSQL without a
    /// transaction-mode pooler (which cannot keep a `LISTEN`), else nowhere
    /// (the poll alone).
    pub fn listen_url(&self) -> Option<&str> {
        match &self.revocation_listen_url {
            Some(url) => Some(url),
            None if self.is_postgres() && self.db_pooler == Pooler::None => {
                Some(&self.database_url)
            }
            None => None,
        }
    }

    /// Problems of these settings, each naming its variable.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.db_pooler == Pooler::Transaction && !self.is_postgres() {
            problems.push(ConfigError::new(
                "DB_POOLER",
                "`transaction` needs a PostgreSQL DATABASE_URL (the pooler's address)",
            ));
        }
        if self
            .revocation_listen_url
            .as_deref()
            .is_some_and(|url| !is_postgres_url(url))
        {
            problems.push(ConfigError::new(
                "REVOCATION_LISTEN_URL",
                "must be a postgres:// URL that reaches PostgreSQL directly",
            ));
        }
        problems
    }
}

/// Whether `url` names a PostgreSQL server.
fn is_postgres_url(url: &str) -> bool {
    matches!(
        gatehouse_core::db::Target::from_url(url),
        gatehouse_core::db::Target::Postgres(_)
    )
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

    /// Key that seals two-factor (TOTP) secrets at rest: 32 random bytes, base64 (`openssl rand -base64 32`); unset: enrolment unavailable in production, derived from the JWT secret in development
    #[arg(
        long,
        env = "TOTP_ENCRYPTION_KEY",
        value_name = "TOTP_ENCRYPTION_KEY",
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub totp_encryption_key: Option<Secret>,

    /// How recent a sign-in the sensitive account changes (two-factor settings) need; an older one is asked to confirm it's them
    #[arg(
        long,
        env = "STEP_UP_MAX_AGE",
        value_name = "STEP_UP_MAX_AGE",
        default_value = "5m",
        value_parser = Trimmed(parse_duration),
        hide_env_values = true
    )]
    pub step_up_max_age: Duration,

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
