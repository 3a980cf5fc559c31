//! Cookies on the wire: reading one from the `Cookie` header, queueing
//! cookies for the response, and writing `Set-Cookie`.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue, InvalidHeaderValue};
use actix_web::{HttpMessage as _, HttpRequest};

use crate::http::on_response::ResponseHook;

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
    use std::time::Duration;

    use super::*;
    use crate::config::SameSitePolicy;
    use crate::http::cookies::CookieConfig;

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
}
