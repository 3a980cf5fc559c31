//! What the JSON API's scope adds to every request: CORS for the listed
//! front ends, the origin and content-type rules for state-changing calls,
//! and the JSON body limits and errors.

use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::web::{self, Data};

use super::site::Site;
use crate::errors::{AppError, ForeignOrigin};
use crate::telemetry::Untrusted;

/// Largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 16 * 1024;

/// How long browsers may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: usize = 600;

/// CORS with credentials for the origins in `CORS_ORIGINS`: each is echoed in
/// `Access-Control-Allow-Origin` (never `*`), with `Vary: Origin`; any other
/// origin, `null` included, gets no CORS headers at all.
pub fn cors(origins: &[String]) -> Cors {
    let allowed = origins.to_vec();
    Cors::default()
        .allowed_origin_fn(move |origin, _| {
            origin
                .to_str()
                .is_ok_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o)))
        })
        .allowed_methods([Method::GET, Method::POST])
        .allowed_headers([header::CONTENT_TYPE, header::ACCEPT])
        .supports_credentials()
        .block_on_origin_mismatch(false)
        .max_age(PREFLIGHT_MAX_AGE)
}

/// JSON bodies: at most [`MAX_JSON_BYTES`], `application/json` only, and every
/// failure a JSON error naming the problem.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_JSON_BYTES)
        .error_handler(|e, _| AppError::from_json(&e).into())
}

/// Middleware on the API scope: a state-changing call (a `POST`: the API has
/// no other) must come from the site's own origin or a listed front end when
/// it names an `Origin` (403), and must be `Content-Type: application/json`
/// (415) — which a cross-site HTML form cannot send without a preflight. A
/// call without `Origin` (not a browser) is judged by the content type and the
/// session alone.
pub async fn guard_state_changes(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if req.method() == Method::POST
        && let Some(refusal) = refusal(&req)?
    {
        // A response, not an `Err`: the error pages render responses.
        return Ok(req.error_response(refusal).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// [`guard_state_changes`] for a resource whose `GET` is a page and whose
/// `POST` is a JSON call: the `POST` passes the rules and is answered in
/// JSON; the page is left alone.
pub async fn guard_json_posts(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if req.method() == Method::POST {
        use actix_web::HttpMessage as _;
        req.extensions_mut()
            .insert(crate::errors::ResponseFormat::Json);
        if let Some(refusal) = refusal(&req)? {
            return Ok(req.error_response(refusal).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

fn refusal(req: &ServiceRequest) -> Result<Option<AppError>, AppError> {
    let site = req
        .app_data::<Data<Site>>()
        .cloned()
        .ok_or_else(|| AppError::internal("Site is not registered"))?;
    let headers = req.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("\u{0}").to_ascii_lowercase();
        if !site.api_accepts(&origin) {
            tracing::warn!(received = %Untrusted(&origin), expected = %site.origin, "API call refused: it came from another origin");
            return Ok(Some(AppError::ForeignOrigin(Box::new(ForeignOrigin {
                received: origin,
                expected: site.origin.clone(),
                explain: false,
            }))));
        }
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    Ok((!json).then_some(AppError::UnsupportedMediaType))
}

/// Middleware outside CORS: a response that allows no origin carries no CORS
/// header at all (the CORS layer adds `Allow-Credentials` regardless).
pub async fn no_stray_cors_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
    }
    Ok(res)
}
