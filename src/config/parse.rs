//! The clap glue: value parsers for each kind of setting, each answering
//! with a message that says what is expected.

use std::ffi::OsStr;
use std::time::Duration;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Arg, Command};

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
pub(super) struct Trimmed<P>(pub(super) P);

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

pub(super) fn parse_port(raw: &str) -> Result<u16, String> {
    raw.parse()
        .map_err(|_| "must be a whole number from 0 to 65535".to_owned())
}

pub(super) fn parse_bcrypt_cost(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(cost @ 4..=31) => Ok(cost),
        _ => Err("must be a number from 4 to 31".to_owned()),
    }
}

pub(super) fn parse_count(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number of at least 1".to_owned()),
    }
}

/// A humantime duration of at least 1s.
pub(super) fn parse_duration(raw: &str) -> Result<Duration, String> {
    match parse_grace(raw)? {
        d if d >= Duration::from_secs(1) => Ok(d),
        _ => Err("must be at least 1s".to_owned()),
    }
}

/// A humantime duration, 0 allowed (`REFRESH_REUSE_GRACE`).
pub(super) fn parse_grace(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw)
        .map_err(|e| format!("is not a duration such as 90s, 15m or 12h ({e})"))
}

pub(super) fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("must be `true` or `false`".to_owned()),
    }
}

/// `TRUSTED_PROXIES`: comma-separated IPs or CIDR blocks; empty entries are skipped.
pub(super) fn parse_proxies(list: &str) -> Result<Vec<ipnet::IpNet>, String> {
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

/// `CORS_ORIGINS`: comma-separated origins; empty entries are skipped.
pub(super) fn parse_origins(list: &str) -> Result<Vec<String>, String> {
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

pub(super) fn parse_same_site(raw: &str) -> Result<SameSitePolicy, String> {
    match raw.to_ascii_lowercase().as_str() {
        "lax" => Ok(SameSitePolicy::Lax),
        "strict" => Ok(SameSitePolicy::Strict),
        "none" => Ok(SameSitePolicy::None),
        _ => Err("must be `lax`, `strict` or `none`".to_owned()),
    }
}

pub(super) fn parse_pooler(raw: &str) -> Result<gatehouse_core::db::Pooler, String> {
    match raw.to_ascii_lowercase().as_str() {
        "none" => Ok(gatehouse_core::db::Pooler::None),
        "transaction" => Ok(gatehouse_core::db::Pooler::Transaction),
        _ => Err("must be `none` or `transaction`".to_owned()),
    }
}

/// Normalises `PUBLIC_URL` to an origin (`scheme://host[:port]`, no path).
pub(super) fn parse_origin(raw: &str) -> Result<String, String> {
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
