//! HTTP adapters between actix-web and the accounts domain: the `AuthUser`
//! extractor, CSRF, cookies, who is asking, flash messages and the data every
//! page shares. Handlers take these, make one domain call and turn its result
//! into a page, a redirect or cookies.

pub mod api;
pub mod auth_user;
pub mod client;
pub mod cookies;
pub mod csrf;
pub mod deferred;
pub mod flash;
pub mod headers;
pub mod layout;
pub mod on_response;
pub mod passkey_offer;
pub mod redirects;
pub mod site;

use actix_web::HttpMessage as _;
use actix_web::body::MessageBody;
use std::future::{Ready, ready};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use actix_web::middleware::Next;

pub use auth_user::{AuthUser, MaybeUser};
pub use client::ClientInfo;
pub use site::Site;

use crate::errors::{AppError, ResponseFormat};
use crate::telemetry::request_id_of;
use gatehouse_core::accounts::{
    INVALID_CREDENTIALS, PasswordChangeError, RegisterError, RevokeError, ServiceError, SignInError,
};

/// The request's id (as in its log lines and on its error pages).
pub fn request_id(req: &actix_web::HttpRequest) -> String {
    request_id_of(req)
        .map(|id| id.to_string())
        .unwrap_or_default()
}

/// Gives every error response that is not already a page the site's error
/// page (or JSON body), actix's own 404, 405 and 413 included. A
/// [`ResponseHook`](on_response::ResponseHook): `OnResponse::new(ErrorPages)`.
pub struct ErrorPages;

impl on_response::ResponseHook for ErrorPages {
    fn apply(&self, res: ServiceResponse) -> Result<ServiceResponse, actix_web::Error> {
        Ok(crate::errors::render_error_page(res))
    }
}

/// Middleware: answers `HEAD` wherever `GET` is answered. The request is
/// routed as a `GET`; the connection still knows it was a `HEAD` and sends
/// the status and headers (with the body's length) but no body. Written as
/// a plain service (no boxed future): every request passes through it.
pub struct HeadAsGet;

impl<S, B> Transform<S, ServiceRequest> for HeadAsGet
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = HeadAsGetService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(HeadAsGetService { service }))
    }
}

pub struct HeadAsGetService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for HeadAsGetService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = S::Future;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        if req.method() == Method::HEAD {
            req.head_mut().method = Method::GET;
        }
        self.service.call(req)
    }
}

/// Marks every request under the scope it wraps as one that is answered in
/// JSON (errors and sign-in refusals included). See [`ResponseFormat`].
pub async fn answer_in_json(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    req.extensions_mut().insert(ResponseFormat::Json);
    next.call(req).await
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "the database does not answer");
            Self::Unavailable
        } else {
            Self::Internal(Box::new(e))
        }
    }
}

/// Pages match the cases they answer with a form (field errors, wrong
/// credentials) before `?`; the rest map the same way for every door.
impl From<SignInError> for AppError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::Throttled { retry_after } => Self::TooManyRequests { retry_after },
            SignInError::InvalidCredentials => Self::Unauthorized(INVALID_CREDENTIALS),
            SignInError::MissingCredentials => Self::Unprocessable,
            SignInError::EmailUnverified { .. } => Self::Unconfirmed,
            SignInError::Failed(f) => f.into(),
        }
    }
}

impl From<RegisterError> for AppError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::Throttled { retry_after } => Self::TooManyRequests { retry_after },
            RegisterError::Invalid(_) | RegisterError::EmailTaken { .. } => Self::Unprocessable,
            RegisterError::Failed(f) => f.into(),
        }
    }
}

impl From<PasswordChangeError> for AppError {
    fn from(e: PasswordChangeError) -> Self {
        match e {
            PasswordChangeError::Invalid(_) => Self::Unprocessable,
            PasswordChangeError::SessionEnded => {
                Self::internal("unhandled: session ended during a password change")
            }
            PasswordChangeError::Failed(f) => f.into(),
        }
    }
}

impl From<RevokeError> for AppError {
    fn from(e: RevokeError) -> Self {
        match e {
            RevokeError::NotFound => Self::NotFound,
            RevokeError::Failed(f) => f.into(),
        }
    }
}
