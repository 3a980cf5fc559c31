//! Cookie names and attributes, in one place so that setting and clearing a
//! cookie always agree.
//!
//! Every cookie is `HttpOnly`, `SameSite=Lax` (or as `COOKIE_SAMESITE` says) and `Path=/`; when `Secure` is on,
//! names carry the `__Host-` prefix, which browsers only accept from a secure
//! origin, with `Path=/` and no `Domain`.
//!
//! Which cookies exist and their attributes are here ([`CookieConfig`]); how
//! they travel (reading the `Cookie` header, queueing cookies for the
//! response, writing `Set-Cookie`) is in `wire`.

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use actix_web::{HttpResponse, HttpResponseBuilder};

mod wire;

pub use wire::{ApplyQueued, QueuedCookies, queue, read};

use crate::config::SameSitePolicy;
use gatehouse_core::accounts::IssuedSession;
use gatehouse_core::auth::token::new_token;

const ACCESS: &str = "gatehouse_access";
const REFRESH: &str = "gatehouse_refresh";
const CSRF: &str = "gatehouse_csrf";
const FLASH: &str = "gatehouse_flash";
const RESET: &str = "gatehouse_reset";
const TWO_FACTOR: &str = "gatehouse_two_factor";
const TRUSTED: &str = "gatehouse_trusted";
const PASSKEY: &str = "gatehouse_passkey";
/// The reset cookie is sent only to the reset form.
const RESET_PATH: &str = "/password/reset";

#[derive(Debug, Clone)]
pub struct CookieConfig {
    secure: bool,
    same_site: SameSite,
    access_name: String,
    refresh_name: String,
    csrf_name: String,
    flash_name: String,
    reset_name: String,
    two_factor_name: String,
    trusted_name: String,
    passkey_name: String,
    access_max_age: Duration,
}

impl CookieConfig {
    pub fn new(secure: bool, access_max_age: Duration) -> Self {
        Self::with_same_site(secure, SameSitePolicy::Lax, access_max_age)
    }

    /// Cookies with a chosen `SameSite` (`None` only with `secure`, which the
    /// settings check).
    pub fn with_same_site(secure: bool, policy: SameSitePolicy, access_max_age: Duration) -> Self {
        let name = |base: &str| {
            if secure {
                format!("__Host-{base}")
            } else {
                base.to_owned()
            }
        };
        Self {
            secure,
            same_site: match policy {
                SameSitePolicy::Lax => SameSite::Lax,
                SameSitePolicy::Strict => SameSite::Strict,
                SameSitePolicy::None => SameSite::None,
            },
            access_name: name(ACCESS),
            refresh_name: name(REFRESH),
            csrf_name: name(CSRF),
            flash_name: name(FLASH),
            // `__Host-` needs `Path=/`, and this cookie's path is narrower.
            reset_name: if secure {
                format!("__Secure-{RESET}")
            } else {
                RESET.to_owned()
            },
            two_factor_name: name(TWO_FACTOR),
            trusted_name: name(TRUSTED),
            passkey_name: name(PASSKEY),
            access_max_age,
        }
    }

    pub fn access_name(&self) -> &str {
        &self.access_name
    }

    pub fn refresh_name(&self) -> &str {
        &self.refresh_name
    }

    pub fn csrf_name(&self) -> &str {
        &self.csrf_name
    }

    /// How long an access token (and its cookie) lives.
    pub fn access_max_age(&self) -> Duration {
        self.access_max_age
    }

    pub fn flash_name(&self) -> &str {
        &self.flash_name
    }

    /// The access-token cookie; it lives exactly as long as the token.
    pub fn access(&self, token: String) -> Cookie<'static> {
        self.build(self.access_name.clone(), token, Some(self.access_max_age))
    }

    /// The refresh-token cookie: persistent for `max_age` ("remember me"), else
    /// a browser-session cookie. The server enforces the real limits either way.
    pub fn refresh(&self, token: String, max_age: Option<Duration>) -> Cookie<'static> {
        self.build(self.refresh_name.clone(), token, max_age)
    }

    /// The CSRF cookie lives for the browser session.
    pub fn csrf(&self, value: String) -> Cookie<'static> {
        self.build(self.csrf_name.clone(), value, None)
    }

    /// A CSRF cookie with a new random value (32 bytes, base64url).
    pub fn fresh_csrf(&self) -> Cookie<'static> {
        self.csrf(new_token())
    }

    /// A one-shot message for the next page.
    pub fn flash(&self, code: &str) -> Cookie<'static> {
        self.build(
            self.flash_name.clone(),
            code.to_owned(),
            Some(Duration::from_secs(60)),
        )
    }

    /// The cookies of an issued session: the access token, and the refresh
    /// token when one was issued.
    pub fn session(&self, issued: &IssuedSession) -> Vec<Cookie<'static>> {
        let mut cookies = vec![self.access(issued.access_token.clone())];
        if let Some(refresh) = &issued.refresh_token {
            cookies.push(self.refresh(refresh.clone(), issued.refresh_max_age));
        }
        cookies
    }

    /// Sets an issued session's cookies on a response.
    pub fn set_session(&self, response: &mut HttpResponseBuilder, issued: &IssuedSession) {
        for cookie in self.session(issued) {
            response.cookie(cookie);
        }
    }

    /// Clears the session cookies and starts a new CSRF cookie: what signing
    /// out (or ending this very session) sends.
    pub fn set_signed_out(&self, response: &mut HttpResponseBuilder) {
        response
            .cookie(self.removal(self.access_name()))
            .cookie(self.removal(self.refresh_name()))
            .cookie(self.fresh_csrf());
    }

    /// The 303 that completes a sign-in: session cookies and a new CSRF
    /// cookie (tokens from before the sign-in stop matching).
    pub fn signed_in_redirect(&self, issued: &IssuedSession, location: &str) -> HttpResponse {
        let mut response = HttpResponse::SeeOther();
        response.insert_header((header::LOCATION, location));
        self.set_session(&mut response, issued);
        response.cookie(self.fresh_csrf());
        response.finish()
    }

    pub fn two_factor_name(&self) -> &str {
        &self.two_factor_name
    }

    pub fn trusted_name(&self) -> &str {
        &self.trusted_name
    }

    /// A sign-in waiting for its second factor: the challenge's opaque
    /// token, for as long as the challenge lives.
    pub fn two_factor(&self, token: String, max_age: Duration) -> Cookie<'static> {
        self.build(self.two_factor_name.clone(), token, Some(max_age))
    }

    /// A browser its person trusts: a later password sign-in from it skips
    /// the second factor.
    pub fn trusted(&self, token: String, max_age: Duration) -> Cookie<'static> {
        self.build(self.trusted_name.clone(), token, Some(max_age))
    }

    pub fn passkey_name(&self) -> &str {
        &self.passkey_name
    }

    /// A passkey ceremony under way: its opaque token, for as long as the
    /// ceremony lives.
    pub fn passkey(&self, token: String, max_age: Duration) -> Cookie<'static> {
        self.build(self.passkey_name.clone(), token, Some(max_age))
    }

    pub fn reset_name(&self) -> &str {
        &self.reset_name
    }

    /// A password-reset token on its way from the mailed link to the form:
    /// sent only to `/password/reset`, for as long as the link works, so the
    /// token stays out of the address bar, the history and any `Referer`.
    pub fn reset(&self, token: String, max_age: Duration) -> Cookie<'static> {
        let mut cookie = self.build(self.reset_name.clone(), token, Some(max_age));
        cookie.set_path(RESET_PATH);
        cookie
    }

    /// Deletes the reset cookie.
    pub fn reset_removal(&self) -> Cookie<'static> {
        self.reset(String::new(), Duration::ZERO)
    }

    /// A cookie that deletes `name`: same name, path and attributes, `Max-Age=0`.
    pub fn removal(&self, name: &str) -> Cookie<'static> {
        self.build(name.to_owned(), String::new(), Some(Duration::ZERO))
    }

    fn build(&self, name: String, value: String, max_age: Option<Duration>) -> Cookie<'static> {
        let mut builder = Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site);
        if let Some(age) = max_age {
            let secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
            builder = builder.max_age(time::Duration::seconds(secs));
        }
        builder.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_cookies_use_the_host_prefix() {
        let secure = CookieConfig::new(true, Duration::from_secs(900));
        let cookie = secure.access("t".into()).to_string();
        assert!(cookie.starts_with("__Host-gatehouse_access=t"));
        for attr in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=900",
        ] {
            assert!(cookie.contains(attr), "{cookie} lacks {attr}");
        }
        let plain = CookieConfig::new(false, Duration::from_secs(900));
        assert!(!plain.access("t".into()).to_string().contains("Secure"));
        assert_eq!(plain.access_name(), "gatehouse_access");
    }

    #[test]
    fn removal_matches_the_cookie_it_clears() {
        let config = CookieConfig::new(true, Duration::from_secs(900));
        let removal = config.removal(config.access_name()).to_string();
        assert!(removal.starts_with("__Host-gatehouse_access=;"));
        for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=0"] {
            assert!(removal.contains(attr), "{removal} lacks {attr}");
        }
    }
}
