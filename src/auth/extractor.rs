//! `AuthUser`: the signed-in visitor, taken from the session cookies.
//!
//! The common path is a signature check and a lookup in the in-memory
//! revocation list: no database query, so protected pages scale without a
//! shared store. Only when the access token is missing, expired or revoked and
//! a refresh cookie is present does the extractor go to the database, to rotate
//! the refresh token; the new cookies ride on whatever response the handler
//! gives, so a GET page and a POSTed form are both served without a detour.
//!
//! A handler that takes `AuthUser` is protected; one that takes
//! `Option<AuthUser>` serves both. Failure sends pages to `/login?next=…` (and
//! clears bad cookies in the same response); under `/api/` it is a 401 JSON.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::Cookie;
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};

use super::cookie;
use super::redirect;
use super::session::{Refresh, SessionManager};
use crate::client::client_info;
use crate::errors::{AppError, LoginRequired};

/// A visitor with a valid session.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: String,
    pub session_id: String,
    pub name: String,
    /// When this session signed in (Unix seconds).
    pub auth_time: i64,
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

async fn authenticate(req: &HttpRequest) -> Result<AuthUser, AppError> {
    let Some(manager) = req.app_data::<Data<SessionManager>>().cloned() else {
        return Err(AppError::internal("SessionManager is not registered"));
    };
    let cookies = manager.cookies();
    let mut clear: Vec<Cookie<'static>> = Vec::new();

    if let Some(access) = req.cookie(cookies.access_name()) {
        if let Some(user) = manager.verify_access(access.value()) {
            req.extensions_mut().insert(user.clone());
            return Ok(user);
        }
        clear.push(cookies.removal(cookies.access_name()));
    }

    if let Some(refresh) = req.cookie(cookies.refresh_name()) {
        match manager
            .refresh(refresh.value().to_owned(), client_info(req))
            .await?
        {
            Refresh::Renewed(user, issued) => {
                for cookie in manager.session_cookies(&user, &issued)? {
                    cookie::queue(req, cookie);
                }
                tracing::debug!(user_id = %user.user_id, session_id = %user.session_id, "session refreshed");
                req.extensions_mut().insert(user.clone());
                return Ok(user);
            }
            Refresh::Refused => {
                clear.push(cookies.removal(cookies.access_name()));
                clear.push(cookies.removal(cookies.refresh_name()));
            }
        }
    }
    clear.dedup_by(|a, b| a.name() == b.name());
    // Queued as well, so pages that accept anonymous visitors
    // (`Option<AuthUser>`) also drop the dead cookies.
    for cookie in &clear {
        cookie::queue(req, cookie.clone());
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
        api: req.path().starts_with("/api/"),
    }))
}
