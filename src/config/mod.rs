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
//!
//! The declarations are grouped by what they configure (`sections`), the
//! value parsers clap calls are in `parse`, and the secrets' own rules in
//! `secrets`.

use std::collections::HashMap;
use std::sync::OnceLock;

use clap::builder::{EnumValueParser, StringValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Command, FromArgMatches as _, ValueEnum};

mod parse;
mod secrets;
mod sections;
#[cfg(test)]
mod tests;

use parse::Trimmed;
pub use parse::{SameSitePolicy, ignore_blank_env};
pub use secrets::{MIN_SECRET_BYTES, Secret, check_secret};
pub use sections::{
    DatabaseSettings, HttpSettings, MailSettings, SessionSettings, ThrottleSettings,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppEnv {
    Development,
    Production,
}

/// `REGISTRATION_VERIFY`: whether a new address must be confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyMode {
    Required,
    Off,
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
        if let Some(key) = &self.sessions.totp_encryption_key {
            problems.extend(secrets::sealing_key(key).err());
        }
        if self.http.cookie_samesite == SameSitePolicy::None && !self.cookie_secure() {
            problems.push(ConfigError::new(
                "COOKIE_SAMESITE",
                "`none` needs Secure cookies (COOKIE_SECURE=true, or production): browsers \
                 refuse SameSite=None cookies without Secure",
            ));
        }
        problems.extend(self.database.problems());
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

    /// The key that seals TOTP secrets: `TOTP_ENCRYPTION_KEY` when set (and
    /// valid: [`problems`](Self::problems) reports it otherwise).
    pub fn totp_key(&self) -> Option<gatehouse_core::auth::sealed::SealingKey> {
        let key = self.sessions.totp_encryption_key.as_ref()?;
        secrets::sealing_key(key).ok()
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

    /// Whether new addresses must be confirmed: `REGISTRATION_VERIFY`, else
    /// required in production only.
    pub fn verify_mode(&self) -> gatehouse_core::accounts::VerifyMode {
        use gatehouse_core::accounts::VerifyMode as Mode;
        match self.mail.registration_verify {
            Some(VerifyMode::Required) => Mode::Required,
            Some(VerifyMode::Off) => Mode::Off,
            None if self.is_production() => Mode::Required,
            None => Mode::Off,
        }
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
