//! Cookie names and attributes, in one place so that setting and clearing a
//! cookie always agree.
//!
//! Every cookie is `HttpOnly`, `SameSite=Lax` (or as `COOKIE_SAMESITE` says) and `Path=/`; when `Secure` is on,
//! names carry the `__Host-` prefix, which browsers only accept from a secure
//! origin, with `Path=/` and no `Domain`.

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue, InvalidHeaderValue};
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, HttpResponseBuilder};

use super::on_response::ResponseHook;
use crate::config::SameSitePolicy;
use gatehouse_core::accounts::IssuedSession;
use gatehouse_core::auth::token::new_token;

const ACCESS: &str = "gatehouse_access";
const REFRESH: &str = "gatehouse_refresh";
const CSRF: &str = "gatehouse_csrf";
const FLASH: &str = "gatehouse_flash";
const RESET: &str = "gatehouse_reset";
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

/// The value of the request's cookie `name` (the first, if it came twice),
/// read straight from the `Cookie` header. Every cookie this site sets has a
/// plain value (base64url, a JWT, a code), so nothing is decoded, and the
/// other cookies are not parsed at all.
///
/// Hand-written, and kept because it earns its place: it keeps S1 (the
/// signed-in dashboard) at 42 022 instructions per request; the library way,
/// `HttpRequest::cookie_raw` (every cookie parsed into an owned `Cookie`),
/// costs +15.3 % there (S2 +1.8 %, S3 +0.1 %), measured with
/// `scripts/instructions.sh`.
pub fn read<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .find_map(|value| find_cookie(value.as_bytes(), name))
}

/// `name`'s value in one `Cookie` header (`a=1; b=2`): the first pair whose
/// name is exactly `name`.
fn find_cookie<'a>(header: &'a [u8], name: &str) -> Option<&'a str> {
    let mut rest = header;
    loop {
        let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
        let value = rest[..end]
            .trim_ascii()
            .strip_prefix(name.as_bytes())
            .and_then(|after| after.trim_ascii_start().strip_prefix(b"="));
        if let Some(value) = value {
            let value = value.trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            return std::str::from_utf8(value).ok();
        }
        rest = rest.get(end + 1..)?;
    }
}

/// Cookies that an extractor wants on the response (a fresh CSRF cookie, a
/// consumed flash message, a bad token to clear). The [`ApplyQueued`]
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

/// The `Set-Cookie` value of one of this site's cookies, written directly:
/// the same text as the `cookie` crate writes (a test holds them equal). A
/// signed-out page queues a new CSRF cookie for every visitor that has none.
///
/// Hand-written, and kept because it earns its place: it keeps S3 (the
/// sign-in form, which sets a new CSRF cookie) at 34 818 instructions per
/// request; the library way, `HttpResponse::add_cookie` (the `cookie` crate's
/// `Display`), costs +6.1 % there (S1 +1.2 %, S2 +0.2 %), measured with
/// `scripts/instructions.sh`.
fn set_cookie_header(cookie: &Cookie<'_>) -> Result<HeaderValue, InvalidHeaderValue> {
    if cookie.domain().is_some() || cookie.expires().is_some() {
        return HeaderValue::from_str(&cookie.to_string());
    }
    let mut text = String::with_capacity(cookie.name().len() + cookie.value().len() + 64);
    text.push_str(cookie.name());
    text.push('=');
    text.push_str(cookie.value());
    if cookie.http_only() == Some(true) {
        text.push_str("; HttpOnly");
    }
    if let Some(same_site) = cookie.same_site() {
        text.push_str(match same_site {
            SameSite::Strict => "; SameSite=Strict",
            SameSite::Lax => "; SameSite=Lax",
            SameSite::None => "; SameSite=None",
        });
        if same_site == SameSite::None && cookie.secure().is_none() {
            text.push_str("; Secure");
        }
    }
    if cookie.secure() == Some(true) {
        text.push_str("; Secure");
    }
    if let Some(path) = cookie.path() {
        text.push_str("; Path=");
        text.push_str(path);
    }
    if let Some(max_age) = cookie.max_age() {
        text.push_str("; Max-Age=");
        text.push_str(itoa::Buffer::new().format(max_age.whole_seconds()));
    }
    HeaderValue::from_str(&text)
}

/// Adds the cookies extractors queued, unless the handler already set a
/// cookie of the same name. Used as `OnResponse::new(ApplyQueued)`.
pub struct ApplyQueued;

impl ResponseHook for ApplyQueued {
    fn apply(&self, mut res: ServiceResponse) -> Result<ServiceResponse, actix_web::Error> {
        let queued = res.request().extensions_mut().remove::<QueuedCookies>();
        let Some(QueuedCookies(queued)) = queued else {
            return Ok(res);
        };
        let already: Vec<String> = res
            .response()
            .cookies()
            .map(|c| c.name().to_owned())
            .collect();
        for cookie in queued {
            if !already.iter().any(|name| name == cookie.name()) {
                let value = set_cookie_header(&cookie).map_err(actix_web::Error::from)?;
                res.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        Ok(res)
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
    fn a_cookie_is_read_by_its_exact_name_from_any_cookie_header() {
        use actix_web::test::TestRequest;
        let req = TestRequest::default()
            .insert_header((header::COOKIE, "a=1; gatehouse_access=tok.en.sig;x=\"q\""))
            .append_header((header::COOKIE, "later=2; a=shadowed"))
            .to_http_request();
        assert_eq!(read(&req, "gatehouse_access"), Some("tok.en.sig"));
        assert_eq!(read(&req, "a"), Some("1"), "the first of two");
        assert_eq!(
            read(&req, "x"),
            Some("q"),
            "quotes are not part of the value"
        );
        assert_eq!(read(&req, "later"), Some("2"));
        assert_eq!(read(&req, "gatehouse"), None, "no prefix match");
        assert_eq!(read(&req, "access"), None, "no suffix match");
        assert_eq!(read(&req, "en.sig"), None, "nothing inside a value");
        assert_eq!(read(&req, "missing"), None);
        let none = TestRequest::default().to_http_request();
        assert_eq!(read(&none, "a"), None);
    }

    #[test]
    fn set_cookie_headers_read_as_the_cookie_crate_writes_them() {
        for (secure, policy) in [
            (false, SameSitePolicy::Lax),
            (true, SameSitePolicy::Lax),
            (true, SameSitePolicy::Strict),
            (true, SameSitePolicy::None),
        ] {
            let config = CookieConfig::with_same_site(secure, policy, Duration::from_secs(900));
            let mut kinds = vec![
                config.access("header.payload.signature".into()),
                config.refresh("refresh".into(), Some(Duration::from_secs(86_400))),
                config.refresh("refresh".into(), None),
                config.fresh_csrf(),
                config.flash("signed_out"),
                config.reset("reset".into(), Duration::from_secs(1800)),
                config.reset_removal(),
                config.removal(config.access_name()),
            ];
            let mut unset = Cookie::new("bare", "value");
            unset.set_same_site(SameSite::None);
            kinds.push(unset);
            for cookie in kinds {
                assert_eq!(
                    set_cookie_header(&cookie).unwrap().to_str().unwrap(),
                    cookie.to_string()
                );
            }
        }
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
