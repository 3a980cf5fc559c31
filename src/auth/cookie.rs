//! Cookie names and attributes, in one place so that setting and clearing a
//! cookie always agree.
//!
//! Every cookie is `HttpOnly`, `SameSite=Lax` and `Path=/`; when `Secure` is on,
//! names carry the `__Host-` prefix, which browsers only accept from a secure
//! origin, with `Path=/` and no `Domain`.

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::{HttpMessage as _, HttpRequest};

const ACCESS: &str = "gatehouse_access";
const REFRESH: &str = "gatehouse_refresh";
const CSRF: &str = "gatehouse_csrf";
const FLASH: &str = "gatehouse_flash";

#[derive(Debug, Clone)]
pub struct CookieConfig {
    secure: bool,
    access_name: String,
    refresh_name: String,
    csrf_name: String,
    flash_name: String,
    access_max_age: Duration,
}

impl CookieConfig {
    pub fn new(secure: bool, access_max_age: Duration) -> Self {
        let name = |base: &str| {
            if secure {
                format!("__Host-{base}")
            } else {
                base.to_owned()
            }
        };
        Self {
            secure,
            access_name: name(ACCESS),
            refresh_name: name(REFRESH),
            csrf_name: name(CSRF),
            flash_name: name(FLASH),
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

    /// A one-shot message for the next page.
    pub fn flash(&self, code: &str) -> Cookie<'static> {
        self.build(
            self.flash_name.clone(),
            code.to_owned(),
            Some(Duration::from_secs(60)),
        )
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
            .same_site(SameSite::Lax);
        if let Some(age) = max_age {
            let secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
            builder = builder.max_age(time::Duration::seconds(secs));
        }
        builder.finish()
    }
}

/// Cookies that an extractor wants on the response (a fresh CSRF cookie, a
/// consumed flash message, a bad token to clear). The `apply_queued_cookies`
/// middleware adds them unless the handler set a cookie of the same name.
#[derive(Debug, Default, Clone)]
pub struct QueuedCookies(pub Vec<Cookie<'static>>);

pub fn queue(req: &HttpRequest, cookie: Cookie<'static>) {
    let mut ext = req.extensions_mut();
    let queued = ext.get_mut::<QueuedCookies>();
    match queued {
        Some(q) => {
            q.0.retain(|c| c.name() != cookie.name());
            q.0.push(cookie);
        }
        None => {
            ext.insert(QueuedCookies(vec![cookie]));
        }
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
