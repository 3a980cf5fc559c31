//! HTTP adapters between actix-web and the accounts domain: the `AuthUser`
//! extractor, CSRF, cookies, who is asking, flash messages and the data every
//! page shares. Handlers take these, make one domain call and turn its result
//! into a page, a redirect or cookies.

pub mod auth_user;
pub mod client;
pub mod cookies;
pub mod csrf;
pub mod flash;
pub mod layout;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{HttpMessage as _, HttpRequest};

pub use auth_user::AuthUser;
pub use client::ClientInfo;

use crate::accounts::{
    Failure, INVALID_CREDENTIALS, PasswordChangeError, RegisterError, RevokeError, SignInError,
};
use crate::errors::{AppError, ResponseFormat};

/// The adapters' own settings, registered once as `web::Data<Site>`.
pub struct Site {
    pub cookies: cookies::CookieConfig,
    pub csrf: csrf::CsrfKey,
    /// The site's own origin (`PUBLIC_URL`), which unsafe requests must come from.
    pub origin: String,
    pub proxies: client::TrustedProxies,
}

impl Site {
    /// The registered `Site`; its absence is a wiring bug, answered with a 500.
    pub fn of(req: &HttpRequest) -> Result<Data<Site>, AppError> {
        req.app_data::<Data<Site>>()
            .cloned()
            .ok_or_else(|| AppError::internal("Site is not registered"))
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

impl From<Failure> for AppError {
    fn from(e: Failure) -> Self {
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
            SignInError::Failed(f) => f.into(),
        }
    }
}

impl From<RegisterError> for AppError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::Throttled { retry_after } => Self::TooManyRequests { retry_after },
            RegisterError::Invalid(_) => Self::Unprocessable,
            RegisterError::Failed(f) => f.into(),
        }
    }
}

impl From<PasswordChangeError> for AppError {
    fn from(e: PasswordChangeError) -> Self {
        match e {
            PasswordChangeError::Invalid(_) => Self::Unprocessable,
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
