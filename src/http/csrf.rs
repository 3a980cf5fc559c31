//! CSRF protection: a signed double-submit token.
//!
//! Each browser gets a random value in an HttpOnly cookie. Forms carry
//! `MAC(key, cookie value ‖ session id)` (keyed BLAKE3), under a key derived
//! from the server secret, so the token is bound to this browser and, once signed in, to this
//! session. It is stateless, so one token serves any number of submissions, and
//! it changes when the session does (the cookie is also renewed at sign-in and
//! sign-out). Unsafe requests must also come from the site's own origin:
//! a foreign `Origin` (or `Referer`), or `Sec-Fetch-Site: cross-site`, is
//! refused even with a valid token.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Data, Form};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;

use super::auth_user::AuthUser;
use super::cookies::{self, CookieConfig};
use super::deferred::{Deferred, defer};
use super::site::Site;
use crate::errors::{AppError, ForeignOrigin};
use crate::telemetry::Untrusted;
use gatehouse_core::accounts::Sessions;
use gatehouse_core::ids::SessionId;

/// Length of the base64url cookie value (32 random bytes).
const COOKIE_VALUE_LEN: usize = 43;

fn cookie_value(req: &HttpRequest, cookies: &CookieConfig) -> Option<String> {
    cookies::read(req, cookies.csrf_name())
        .map(str::to_owned)
        .filter(|v| {
            let mut bytes = [0u8; 33];
            v.len() == COOKIE_VALUE_LEN && URL_SAFE_NO_PAD.decode_slice(v, &mut bytes) == Ok(32)
        })
}

/// The visitor's CSRF cookie, for pages that render forms. Creates (and queues)
/// one when the browser has none.
pub struct Csrf {
    cookie_value: String,
    site: Data<Site>,
}

impl Csrf {
    /// The token for forms on this page.
    pub fn token(&self, user: Option<&AuthUser>) -> String {
        self.site
            .csrf
            .token(&self.cookie_value, user.map(|u| &u.session_id))
    }
}

impl FromRequest for Csrf {
    type Error = AppError;
    type Future = Deferred<Self, AppError>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        defer(req, csrf_for)
    }
}

fn csrf_for(req: &HttpRequest) -> Result<Csrf, AppError> {
    let site = Site::of(req)?;
    let cookie_value = match cookie_value(req, &site.cookies) {
        Some(v) => v,
        None => {
            let cookie = site.cookies.fresh_csrf();
            let value = cookie.value().to_owned();
            cookies::queue(req, cookie);
            value
        }
    };
    Ok(Csrf { cookie_value, site })
}

/// A form that carries a CSRF token.
pub trait CsrfProtected {
    fn csrf_token(&self) -> &str;

    /// Forms shown to signed-out visitors (sign-in, registration) carry a token
    /// that is not bound to a session; a signed-in browser may still submit one
    /// from an older tab.
    const SIGNED_OUT_FORM: bool = false;
}

/// A URL-encoded form that is only accepted with a valid CSRF token from the
/// site's own origin. Anything else is a 403 and the handler never runs.
pub struct CsrfForm<T>(pub T);

impl<T> Deref for CsrfForm<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> CsrfForm<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> FromRequest for CsrfForm<T>
where
    T: DeserializeOwned + CsrfProtected + 'static,
{
    /// Body errors arrive already mapped by the app's `FormConfig`.
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let form = Form::<T>::from_request(&req, payload);
        Box::pin(async move {
            check_origin(&req)?;
            let form = form.await?.into_inner();
            let token = form.csrf_token();
            // A signed-out form's token is usually unbound: no session to find.
            if !(T::SIGNED_OUT_FORM && check_token(&req, token, None).is_ok()) {
                let session = form_session(&req).await?;
                check_token(&req, token, session.as_ref())?;
            }
            Ok(CsrfForm(form))
        })
    }
}

/// The header a page's script sends its CSRF token in (JSON calls).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The rules a page's JSON call passes, as a form does: the site's own
/// origin, and the page's CSRF token in [`CSRF_HEADER`], bound to the
/// session (or, from a page shown to signed-out visitors,
/// `signed_out_page`, unbound), as [`CsrfProtected::SIGNED_OUT_FORM`] says
/// for forms.
pub async fn check_json_call(req: &HttpRequest, signed_out_page: bool) -> Result<(), AppError> {
    check_origin(req)?;
    let token = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if signed_out_page && check_token(req, token, None).is_ok() {
        return Ok(());
    }
    let session = form_session(req).await?;
    check_token(req, token, session.as_ref())
}

/// The session a form's token was bound to, found without signing anyone in:
/// the user a handler's `AuthUser` already found, else the access token, else
/// the session behind the refresh cookie, read but not rotated (rotating is the
/// business of a handler that asks for the user). `None` when signed out.
async fn form_session(req: &HttpRequest) -> Result<Option<SessionId>, AppError> {
    if let Some(user) = req.extensions().get::<AuthUser>() {
        return Ok(Some(user.session_id.clone()));
    }
    let site = Site::of(req)?;
    let Some(sessions) = req.app_data::<Data<Sessions>>() else {
        return Err(AppError::internal("Sessions is not registered"));
    };
    let cookies = &site.cookies;
    if let Some(user) =
        cookies::read(req, cookies.access_name()).and_then(|t| sessions.verify_access(t))
    {
        return Ok(Some(user.session_id));
    }
    match cookies::read(req, cookies.refresh_name()) {
        Some(refresh) => Ok(sessions.session_of_refresh(refresh.to_owned()).await?),
        None => Ok(None),
    }
}

/// Verifies a submitted token against the browser's cookie and the session it
/// is bound to (`None`: a signed-out visitor's token).
pub fn check_token(
    req: &HttpRequest,
    token: &str,
    session: Option<&SessionId>,
) -> Result<(), AppError> {
    let site = Site::of(req)?;
    let Some(value) = cookie_value(req, &site.cookies) else {
        return Err(AppError::CsrfRejected);
    };
    if site.csrf.verify(token, &value, session) {
        Ok(())
    } else {
        Err(AppError::CsrfRejected)
    }
}

/// Refuses requests that a browser marks as coming from another site. The
/// refusal says which origin came and which was expected (in development, on
/// the page too), and is logged once as a warning.
pub fn check_origin(req: &HttpRequest) -> Result<(), AppError> {
    let site = Site::of(req)?;
    let headers = req.headers();
    let header_str = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    let claimed = match header_str(header::ORIGIN) {
        Some(origin) => Some(origin.to_ascii_lowercase()),
        None => header_str(header::REFERER).map(|r| origin_of(r).unwrap_or_default()),
    };
    let cross_site =
        header_str(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site");
    let foreign = claimed.as_deref().filter(|origin| !site.accepts(origin));
    if !cross_site && foreign.is_none() {
        return Ok(());
    }
    let received = foreign
        .or(claimed.as_deref())
        .unwrap_or("another site")
        .to_owned();
    tracing::warn!(
        received = %Untrusted(&received),
        expected = %site.origin,
        cross_site,
        "form refused: it came from another origin"
    );
    Err(AppError::ForeignOrigin(Box::new(ForeignOrigin {
        received,
        expected: site.origin.clone(),
        explain: !site.production,
    })))
}

/// `scheme://host[:port]` of an absolute URL, lower-cased.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referer_origin_is_parsed() {
        assert_eq!(
            origin_of("HTTP://Example.com:8080/login?x").as_deref(),
            Some("http://example.com:8080")
        );
        assert_eq!(origin_of("/relative"), None);
    }
}
