//! Time-based one-time codes (RFC 6238) with `totp-rs`: HMAC-SHA-1, 30-second
//! steps, 6 digits, as every authenticator app reads them from an
//! `otpauth://` address. This module finds which step a code belongs to;
//! whether that step may still be used is the database's decision (one
//! conditional `UPDATE`, see `db::two_factor::accept_step`).

use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits in a code the site accepts.
pub const DIGITS: usize = 6;
/// Steps either side of the current one that are accepted, for clocks that
/// drift: a code from the step before or after is still good.
pub const DRIFT_STEPS: i64 = 1;
/// Bytes in a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

/// A person's TOTP secret, in memory only while a code is checked or the
/// enrolment page is shown. `Debug` shows nothing of it.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TotpSecret {
    /// A fresh random secret of [`SECRET_BYTES`].
    pub fn generate() -> Self {
        match Secret::generate_secret().to_bytes() {
            Ok(bytes) => Self(bytes),
            // A raw secret always converts; were it ever not to, the
            // operating system's generator through `rand` does the same.
            Err(_) => {
                let mut bytes = vec![0u8; SECRET_BYTES];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
                Self(bytes)
            }
        }
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as people type it into an app: base32, no padding.
    pub fn base32(&self) -> String {
        self.totp(DIGITS, String::new(), None).get_secret_base32()
    }

    /// The `otpauth://totp/…` address an app scans (the QR code's content).
    pub fn otpauth_url(&self, issuer: &str, account: &str) -> String {
        self.totp(DIGITS, account.to_owned(), Some(issuer.to_owned()))
            .get_url()
    }

    /// The code of `digits` digits for time step `step`.
    pub fn code_at_step(&self, digits: usize, step: i64) -> String {
        let time = u64::try_from(step.saturating_mul(STEP_SECS)).unwrap_or(0);
        self.totp(digits, String::new(), None).generate(time)
    }

    /// The step, among the current one (at Unix time `now`) and
    /// [`DRIFT_STEPS`] either side, whose code is `code`; the latest if
    /// several match. `None` for anything else, including input that is not
    /// six digits.
    pub fn matching_step(&self, code: &str, now: i64) -> Option<i64> {
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = now.div_euclid(STEP_SECS);
        (current - DRIFT_STEPS..=current + DRIFT_STEPS)
            .rev()
            .find(|&step| {
                constant_time_eq(self.code_at_step(DIGITS, step).as_bytes(), code.as_bytes())
            })
    }

    fn totp(&self, digits: usize, account: String, issuer: Option<String>) -> TOTP {
        // Unchecked: the secret is ours (160 bits) and the account name is
        // only a label in the address, which `get_url` encodes.
        TOTP::new_unchecked(
            Algorithm::SHA1,
            digits,
            0,
            STEP_SECS as u64,
            self.0.clone(),
            issuer,
            account,
        )
    }
}

/// Compares two codes in time that depends on their length only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a typed code is: six digits are a TOTP code; anything else is read
/// as a recovery code.
pub fn looks_like_totp(code: &str) -> bool {
    let code = code.trim();
    code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 secret is the ASCII of
    /// "12345678901234567890"; at T = 59 s (step 1) the 8-digit code is
    /// 94287082.
    #[test]
    fn the_rfc_6238_sha1_vector_through_the_sites_code_path() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.code_at_step(8, 59 / STEP_SECS), "94287082");
        // More of the appendix's SHA-1 rows.
        assert_eq!(
            secret.code_at_step(8, 1_111_111_109 / STEP_SECS),
            "07081804"
        );
        assert_eq!(
            secret.code_at_step(8, 2_000_000_000 / STEP_SECS),
            "69279037"
        );
        // The same secret and step in six digits: the last six of the eight.
        assert_eq!(secret.code_at_step(DIGITS, 1), "287082");
        assert_eq!(secret.matching_step("287082", 59), Some(1));
    }

    #[test]
    fn codes_one_step_either_side_are_accepted_and_no_further() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_015;
        let step = now / STEP_SECS;
        for drift in -1..=1 {
            let code = secret.code_at_step(DIGITS, step + drift);
            assert_eq!(secret.matching_step(&code, now), Some(step + drift));
        }
        for drift in [-3, -2, 2, 3] {
            let code = secret.code_at_step(DIGITS, step + drift);
            // A far step's code may collide with a near one's by chance
            // (one in a million); it then matches that near step only.
            if let Some(found) = secret.matching_step(&code, now) {
                assert!((found - step).abs() <= 1);
            }
        }
        assert_eq!(secret.matching_step("12345", now), None);
        assert_eq!(secret.matching_step("1234567", now), None);
        assert_eq!(secret.matching_step("12a456", now), None);
    }

    #[test]
    fn the_address_names_the_issuer_and_the_account() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let url = secret.otpauth_url("Gatehouse", "ada@example.com");
        assert!(
            url.starts_with("otpauth://totp/Gatehouse:ada%40example.com?"),
            "{url}"
        );
        assert!(
            url.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{url}"
        );
        assert!(url.contains("issuer=Gatehouse"), "{url}");
        assert_eq!(secret.expose().len(), 20);
        assert_eq!(TotpSecret::generate().expose().len(), SECRET_BYTES);
    }
}
