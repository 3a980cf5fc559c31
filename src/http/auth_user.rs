//! `AuthUser`: the signed-in visitor, taken from the session cookies.
//!
//! The common path is a signature check and a lookup in the in-memory
//! revocation list: no database query, so protected pages scale without a
//! shared store. Only when the access token is missing, expired or revoked and
//! a refresh cookie is present does the extractor go to the database, to rotate
//! the refresh token; the new cookies ride on whatever response the handler
//! gives, so a GET page and a POSTed form are both served without a detour.
//!
//! A handler that takes `AuthUser` is protected; one that takes [`MaybeUser`]
//! serves both. Failure sends pages to `/login?next=…` (and clears bad cookies
//! in the same response); a request answered in JSON ([`ResponseFormat`]) gets
//! a 401 instead.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::cookie::Cookie;
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};

use super::client::client_info;
use super::cookies;
use super::site::Site;
use crate::errors::{AppError, LoginRequired, ResponseFormat};
use gatehouse_core::accounts::{SessionUser, Sessions};
use gatehouse_core::auth::redirect;

/// A visitor with a valid session.
#[derive(Debug, Clone)]
pub struct AuthUser(pub SessionUser);

impl Deref for AuthUser {
    type Target = SessionUser;

    fn deref(&self) -> &SessionUser {
        &self.0
    }
}

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(user) = req.extensions().get::<AuthUser>() {
            let user = user.clone();
            return Box::pin(async move { Ok(user) });
        }
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

/// The visitor, signed in or not: `MaybeUser(Some(user))` exactly when
/// `AuthUser` would have let the request through. A visitor without session
/// cookies costs a look at the `Cookie` header; bad cookies are cleared as
/// with `AuthUser`. Taken as `MaybeUser(user): MaybeUser`.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<AuthUser>);

impl FromRequest for MaybeUser {
    type Error = AppError;
    type Future = MaybeUserFuture;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed_out = match Site::of(req) {
            Ok(site) => {
                let cookies = &site.cookies;
                cookies::read(req, cookies.access_name()).is_none()
                    && cookies::read(req, cookies.refresh_name()).is_none()
            }
            Err(_) => false,
        };
        if signed_out {
            MaybeUserFuture::SignedOut
        } else {
            MaybeUserFuture::Checking(AuthUser::from_request(req, payload))
        }
    }
}

/// [`MaybeUser`]'s future: ready at once without session cookies.
pub enum MaybeUserFuture {
    SignedOut,
    Checking(<AuthUser as FromRequest>::Future),
}

impl Future for MaybeUserFuture {
    type Output = Result<MaybeUser, AppError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::SignedOut => Poll::Ready(Ok(MaybeUser(None))),
            // Any failure (a rejected or unverifiable session) is a visitor
            // who is not signed in, as `Option<AuthUser>` would have it.
            Self::Checking(user) => user.as_mut().poll(cx).map(|user| Ok(MaybeUser(user.ok()))),
        }
    }
}

async fn authenticate(req: &HttpRequest) -> Result<AuthUser, AppError> {
    let Some(sessions) = req.app_data::<Data<Sessions>>().cloned() else {
        return Err(AppError::internal("Sessions is not registered"));
    };
    let site = Site::of(req)?;
    let cookies = &site.cookies;
    let mut clear: Vec<Cookie<'static>> = Vec::new();

    if let Some(access) = cookies::read(req, cookies.access_name()) {
        if let Some(user) = sessions.verify_access(access) {
            let user = AuthUser(user);
            req.extensions_mut().insert(user.clone());
            return Ok(user);
        }
        clear.push(cookies.removal(cookies.access_name()));
    }

    if let Some(refresh) = cookies::read(req, cookies.refresh_name()) {
        let who = client_info(req);
        match sessions.refresh(refresh.to_owned(), &who).await? {
            Some(renewed) => {
                for cookie in cookies.session(&renewed.session) {
                    cookies::queue(req, cookie);
                }
                let user = AuthUser(renewed.user);
                tracing::debug!(user_id = %user.user_id, session_id = %user.session_id, "session refreshed");
                req.extensions_mut().insert(user.clone());
                return Ok(user);
            }
            None => {
                clear.push(cookies.removal(cookies.access_name()));
                clear.push(cookies.removal(cookies.refresh_name()));
            }
        }
    }
    clear.dedup_by(|a, b| a.name() == b.name());
    // Queued as well, so pages that accept anonymous visitors
    // (`MaybeUser`) also drop the dead cookies.
    for cookie in &clear {
        cookies::queue(req, cookie.clone());
    }
    Err(login_required(req, clear))
}

/// The rejection: where to send the visitor and which cookies to clear.
fn login_required(req: &HttpRequest, clear: Vec<Cookie<'static>>) -> AppError {
    let location = if req.method() == Method::GET {
        let target = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.path(), |pq| pq.as_str());
        redirect::login_url(target)
    } else {
        "/login".to_owned()
    };
    AppError::LoginRequired(Box::new(LoginRequired {
        location,
        clear,
        api: ResponseFormat::of(req) == ResponseFormat::Json,
    }))
}
