//! The signing secrets: taken as any string while parsing, so that no clap
//! message can echo one, and judged afterwards by [`check_secret`].

use std::convert::Infallible;

pub use gatehouse_core::secret::Secret;

use super::ConfigError;

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

/// Takes any string: [`Settings::check`] judges it, without echoing it.
pub(super) fn parse_secret(raw: &str) -> Result<Secret, Infallible> {
    Ok(Secret::new(raw.trim()))
}

/// `JWT_PREVIOUS_SECRETS`: comma-separated; empty entries are skipped. Judged by
/// [`Settings::check`].
pub(super) fn parse_secret_list(list: &str) -> Result<Vec<Secret>, Infallible> {
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

/// `TOTP_ENCRYPTION_KEY`: exactly 32 bytes, in standard or URL-safe base64
/// (padded or not). Messages never show the value.
pub fn sealing_key(key: &Secret) -> Result<gatehouse_core::auth::sealed::SealingKey, ConfigError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use gatehouse_core::auth::sealed::{KEY_BYTES, SealingKey};
    let text = key.expose();
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok());
    let bytes: [u8; KEY_BYTES] = decoded.and_then(|bytes| bytes.try_into().ok()).ok_or_else(
        || {
            ConfigError::new(
                "TOTP_ENCRYPTION_KEY",
                "must be 32 random bytes in base64; generate one with `openssl rand -base64 32`",
            )
        },
    )?;
    Ok(SealingKey::new(&bytes))
}
