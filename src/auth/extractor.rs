//! `AuthUser`: the signed-in visitor, taken from the access cookie.
//!
//! Decoding is a signature check and a few comparisons: no database query on
//! this path, so protected pages scale without a shared store. A handler that
//! takes `AuthUser` is protected; one that takes `Option<AuthUser>` serves both.
//! A missing, malformed, forged or expired token sends pages to
//! `/login?next=…` (and clears a bad cookie in the same response); under
//! `/api/` the same failure is a 401 JSON answer.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};

use super::cookie::CookieConfig;
use super::jwt::JwtKeys;
use super::redirect;
use crate::errors::{AppError, LoginRequired};

/// A visitor with a valid access token.
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
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, AppError> {
    if let Some(user) = req.extensions().get::<AuthUser>() {
        return Ok(user.clone());
    }
    let (Some(keys), Some(cookies)) = (
        req.app_data::<Data<JwtKeys>>(),
        req.app_data::<Data<CookieConfig>>(),
    ) else {
        return Err(AppError::internal(
            "JwtKeys and CookieConfig must be registered",
        ));
    };
    let Some(cookie) = req.cookie(cookies.access_name()) else {
        return Err(login_required(req, None));
    };
    match keys.verify(cookie.value()) {
        Ok(claims) => {
            let user = AuthUser {
                user_id: claims.sub,
                session_id: claims.sid,
                name: claims.name,
                auth_time: claims.auth_time,
            };
            req.extensions_mut().insert(user.clone());
            Ok(user)
        }
        Err(reason) => {
            tracing::debug!(%reason, "access token refused");
            Err(login_required(
                req,
                Some(cookies.removal(cookies.access_name())),
            ))
        }
    }
}

/// The rejection: where to send the visitor and which cookie to clear.
fn login_required(
    req: &HttpRequest,
    clear: Option<actix_web::cookie::Cookie<'static>>,
) -> AppError {
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
        clear: clear.into_iter().collect(),
        api: req.path().starts_with("/api/"),
    }))
}
