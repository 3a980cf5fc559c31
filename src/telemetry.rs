//! Logging: one subscriber, a request span and one access-log line per
//! request. Neither ever records a query string, a cookie or a header, and a
//! path segment that is a secret (a password-reset token) is written as `…`,
//! so tokens cannot leak into logs.

use std::borrow::Cow;
use std::time::Instant;

use actix_web::Error;
use actix_web::HttpMessage as _;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `filter` uses `RUST_LOG` syntax. Does nothing
/// when one is already installed (tests start many apps in one process).
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .try_init();
}

/// Request span with method, path (no query), request id and status.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %loggable_path(request.path()),
            request_id = %request_id,
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        match outcome {
            Ok(res) => {
                span.record("status", res.status().as_u16());
            }
            Err(e) => {
                span.record("status", e.as_response_error().status_code().as_u16());
            }
        }
    }
}

/// Paths whose remaining segment is a secret (it authorises something by
/// itself being known) and is never logged.
const SECRET_PATH_PREFIXES: &[&str] = &["/password/reset/"];

/// `path` as the log may show it: a secret segment becomes `…`.
pub fn loggable_path(path: &str) -> Cow<'_, str> {
    for prefix in SECRET_PATH_PREFIXES {
        if let Some(rest) = path.strip_prefix(prefix)
            && !rest.is_empty()
        {
            return Cow::Owned(format!("{prefix}…"));
        }
    }
    Cow::Borrowed(path)
}

/// Middleware, outermost: one `info` line per request with method, path
/// (without the query string), final status, duration and request id.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = loggable_path(req.path()).into_owned();
    let outcome = next.call(req).await;
    let (status, request_id) = match &outcome {
        Ok(res) => (
            res.status().as_u16(),
            res.request()
                .extensions()
                .get::<RequestId>()
                .map(ToString::to_string),
        ),
        Err(e) => (e.as_response_error().status_code().as_u16(), None),
    };
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %request_id.as_deref().unwrap_or("-"),
        "request"
    );
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_path_segments_are_never_logged() {
        assert_eq!(loggable_path("/password/reset/abc123"), "/password/reset/…");
        assert_eq!(loggable_path("/password/reset/"), "/password/reset/");
        assert_eq!(loggable_path("/dashboard"), "/dashboard");
    }
}
