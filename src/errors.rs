//! `AppError` and the error pages.
//!
//! Handlers return `Result<_, AppError>`. Its `ResponseError` sets the status
//! (and headers such as `Retry-After`); [`render_error_page`] then gives every
//! error response that is not already a page, including actix's own 404, 405
//! and 413, the site's error page, or a JSON body when the request is answered
//! in JSON ([`ResponseFormat`]). Internal causes are logged on the
//! request's thread, so the line carries its request id, and the visitor
//! only ever sees that id. This module imports nothing above it: the error page is a
//! template of its own over the plain [`Layout`] data.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::cookie::Cookie;
use actix_web::dev::ServiceResponse;
use actix_web::error::UrlencodedError;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage as _, HttpResponse, ResponseError};

use askama::Template;

use crate::layout::Layout;

/// Whether a request is answered with pages or JSON. Decided once per request
/// (JSON under the `/api` scope, which sets it in the request's extensions)
/// and read by the `AuthUser` extractor and the error renderer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResponseFormat {
    #[default]
    Html,
    Json,
}

impl ResponseFormat {
    /// JSON when the `/api` scope said so, or when the request prefers JSON
    /// (`Accept` names `application/json` and not `text/html`); else pages.
    pub fn of(req: &actix_web::HttpRequest) -> Self {
        if let Some(format) = req.extensions().get::<Self>() {
            return *format;
        }
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("application/json") && !accept.contains("text/html") {
            Self::Json
        } else {
            Self::Html
        }
    }
}

/// The one JSON error body: `{"error": message, "request_id": id}`.
fn json_error(message: &str, request_id: &str) -> serde_json::Value {
    serde_json::json!({ "error": message, "request_id": request_id })
}

/// A form refused for its origin.
#[derive(Debug)]
pub struct ForeignOrigin {
    /// The origin the request came from (or "another site").
    pub received: String,
    /// The site's own origin.
    pub expected: String,
    /// Say both on the page (development); production says less.
    pub explain: bool,
}

/// What signing in to an address nobody has confirmed is told.
pub const UNCONFIRMED: &str = "Confirm your e-mail address first";

/// What a JSON client without a valid session is told.
pub const LOGIN_REQUIRED: &str = "You need to log in";

/// Where a visitor without a valid session is sent.
#[derive(Debug)]
pub struct LoginRequired {
    /// `/login?next=…`
    pub location: String,
    /// Removal cookies for credentials that failed verification.
    pub clear: Vec<Cookie<'static>>,
    /// JSON requests get a 401 JSON answer instead of a redirect.
    pub api: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Credentials were refused (the message is the same for every cause).
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// What was asked for clashes with what exists (an address taken).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The submitted data did not pass validation.
    #[error("unprocessable entity")]
    Unprocessable,
    /// A JSON body that is not JSON (400), naming the problem.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// A JSON body whose fields are missing or of the wrong type (422).
    #[error("invalid fields: {0}")]
    InvalidFields(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("CSRF check failed")]
    CsrfRejected,
    #[error("request from a foreign origin")]
    ForeignOrigin(Box<ForeignOrigin>),
    #[error("too many requests")]
    TooManyRequests { retry_after: Duration },
    /// The right password of an address nobody has confirmed.
    #[error("e-mail address not confirmed")]
    Unconfirmed,
    #[error("login required")]
    LoginRequired(Box<LoginRequired>),
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into().into())
    }

    /// Maps a JSON body that could not be read to the right 4xx, naming the
    /// problem: too large 413, not JSON 415, not parseable 400, wrong or
    /// missing fields 422.
    pub fn from_json(e: &actix_web::error::JsonPayloadError) -> Self {
        use actix_web::error::JsonPayloadError;
        match e {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                Self::PayloadTooLarge
            }
            JsonPayloadError::ContentType => Self::UnsupportedMediaType,
            JsonPayloadError::Deserialize(e) if e.is_data() => Self::InvalidFields(e.to_string()),
            JsonPayloadError::Deserialize(e) => {
                Self::MalformedJson(format!("The body is not valid JSON: {e}"))
            }
            _ => Self::MalformedJson("The body could not be read.".to_owned()),
        }
    }

    /// Maps a form body that could not be read to the right 4xx.
    pub fn from_form(e: actix_web::Error) -> Self {
        match e.as_error::<UrlencodedError>() {
            Some(UrlencodedError::Overflow { .. }) => Self::PayloadTooLarge,
            Some(UrlencodedError::ContentType) => Self::UnsupportedMediaType,
            _ => Self::BadRequest("The form could not be read."),
        }
    }
}

/// The human message an error page shows; stored on the response for
/// [`render_error_page`].
#[derive(Debug, Clone)]
struct ErrorMessage(Cow<'static, str>);

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable | Self::InvalidFields(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::CsrfRejected | Self::ForeignOrigin(_) | Self::Unconfirmed => {
                StatusCode::FORBIDDEN
            }
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::LoginRequired(l) if l.api => StatusCode::UNAUTHORIZED,
            Self::LoginRequired(_) => StatusCode::SEE_OTHER,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        let message = match self {
            Self::LoginRequired(login) => {
                for cookie in &login.clear {
                    res.cookie(cookie.clone());
                }
                if !login.api {
                    return res
                        .insert_header((header::LOCATION, login.location.as_str()))
                        .finish();
                }
                // The body is the shared JSON error shape, by `render_error_page`.
                LOGIN_REQUIRED
            }
            Self::Internal(source) => {
                tracing::error!(error = %source, cause = ?source.source(), "request failed");
                "Something went wrong on our side."
            }
            Self::BadRequest(why) | Self::Unauthorized(why) | Self::Conflict(why) => why,
            Self::CsrfRejected => "This form has expired — reload the page and try again.",
            Self::ForeignOrigin(o) if o.explain => {
                let message = format!(
                    "This form was sent from {}, but this site is {}. Open the site at that \
                     address, or set PUBLIC_URL.",
                    o.received, o.expected
                );
                let mut response = res.finish();
                response
                    .extensions_mut()
                    .insert(ErrorMessage(message.into()));
                return response;
            }
            Self::MalformedJson(why) | Self::InvalidFields(why) => {
                let mut response = res.finish();
                response
                    .extensions_mut()
                    .insert(ErrorMessage(why.clone().into()));
                return response;
            }
            Self::ForeignOrigin(_) => {
                "This request was sent from another site, so it was not accepted."
            }
            Self::Unconfirmed => UNCONFIRMED,
            Self::TooManyRequests { retry_after } => {
                res.insert_header((
                    header::RETRY_AFTER,
                    retry_after.as_secs().max(1).to_string(),
                ));
                "Too many attempts."
            }
            _ => default_message(self.status_code()),
        };
        let mut response = res.finish();
        response
            .extensions_mut()
            .insert(ErrorMessage(message.into()));
        response
    }
}

/// Errors that are not `Send + Sync` keep only their message.
macro_rules! internal_from_display {
    ($($ty:ty),* $(,)?) => {
        $(impl From<$ty> for AppError {
            fn from(e: $ty) -> Self {
                Self::internal(e.to_string())
            }
        })*
    };
}

internal_from_display!(askama::Error);

fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The request could not be understood.",
        401 => "You need to sign in first.",
        403 => "This form has expired — reload the page and try again.",
        404 => "There is nothing at this address.",
        405 => "This address does not accept that kind of request.",
        413 => "The request was too large.",
        415 => "The request was sent in a format this address does not accept.",
        422 => "The submitted data could not be processed.",
        429 => "Too many attempts.",
        503 => "The service is unavailable right now. Please try again shortly.",
        500..=599 => "Something went wrong on our side.",
        _ => "The request could not be completed.",
    }
}

/// Turns an error response (4xx or 5xx) that is not already a page into the
/// site's error page (or the JSON error body); any other response is returned
/// as it is. Every response passes through here (`http::ErrorPages`).
pub fn render_error_page(res: ServiceResponse) -> ServiceResponse {
    if !(res.status().is_client_error() || res.status().is_server_error()) {
        return res;
    }
    let is_page = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html") || ct.starts_with("application/json"));
    if is_page {
        return res;
    }

    let status = res.status();
    let message = res
        .response()
        .extensions()
        .get::<ErrorMessage>()
        .map_or_else(|| Cow::Borrowed(default_message(status)), |m| m.0.clone());
    let request_id = crate::telemetry::request_id_of(res.request())
        .map(|id| id.to_string())
        .unwrap_or_default();
    let format = ResponseFormat::of(res.request());

    let (req, old) = res.into_parts();
    let mut builder = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            builder.append_header((name.clone(), value.clone()));
        }
    }
    let new = if format == ResponseFormat::Json {
        builder.json(json_error(&message, &request_id))
    } else {
        let retry_minutes = old
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|secs| secs.div_ceil(60));
        let page = ErrorPage::new(status, message, request_id, retry_minutes);
        match page.render() {
            Ok(html) => builder.content_type("text/html; charset=utf-8").body(html),
            Err(e) => {
                tracing::error!(error = %e, "error page failed to render");
                builder
                    .content_type("text/plain; charset=utf-8")
                    .body(page.message.into_owned())
            }
        }
    };
    ServiceResponse::new(req, new)
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    layout: Layout,
    status: u16,
    title: &'static str,
    message: Cow<'static, str>,
    request_id: String,
    retry_minutes: Option<u64>,
}

impl ErrorPage {
    pub fn new(
        status: StatusCode,
        message: Cow<'static, str>,
        request_id: String,
        retry_minutes: Option<u64>,
    ) -> Self {
        Self {
            layout: Layout::bare(),
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message,
            request_id,
            retry_minutes,
        }
    }
}
