//! The access log: the middleware that gives each request its id, keeps it
//! current while the request is served, and writes one line when the
//! response is ready.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::{Error, HttpMessage as _};
use tracing::Level;

use super::fields::{Untrusted, loggable_path};
use super::line::{write_level, write_padded, write_timestamp};
use super::{ACCESS, RequestId, in_request};

thread_local! {
    /// This thread's access line, reused: no allocation per request.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Middleware, outermost: gives each request its id, makes it current while
/// the request is served, and writes one `info` line when the response is
/// ready: method, path (without the query string), status, duration and id.
pub struct RequestLog;

impl<S, B> Transform<S, ServiceRequest> for RequestLog
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestLogService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestLogService { service }))
    }
}

pub struct RequestLogService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for RequestLogService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = InRequest<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let id = RequestId::new();
        req.extensions_mut().insert(id);
        let started = Instant::now();
        let method = req.method().clone();
        // A clone of the URI shares its bytes; the request itself must stay
        // unshared until it is routed.
        let uri = req.uri().clone();
        let inner = in_request(Some(id), || self.service.call(req));
        InRequest {
            inner,
            line: Some(AccessLine {
                id,
                started,
                method,
                uri,
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's future, polled with its id current; writes the access
    /// line when it completes.
    pub struct InRequest<F> {
        #[pin]
        inner: F,
        line: Option<AccessLine>,
    }
}

struct AccessLine {
    id: RequestId,
    started: Instant,
    method: Method,
    uri: Uri,
}

impl AccessLine {
    /// Formatted by hand and written straight to the log's stream: this line
    /// is written for every request, and going through the event machinery
    /// (field visitors, escaping) would cost more than the request itself.
    /// A method is a token and a status three digits; the path comes from the
    /// client (without spaces or control characters, which the parser
    /// refuses, but it may hold quotes), so it goes through [`Untrusted`].
    fn write(self, status: StatusCode) {
        if !tracing::enabled!(target: "access", Level::INFO) {
            return;
        }
        let Some(sink) = ACCESS.get() else {
            return;
        };
        let micros = self.started.elapsed().as_micros();
        LINE.with_borrow_mut(|line| {
            line.clear();
            let _ = write_timestamp(line, SystemTime::now());
            let _ = write_level(line, Level::INFO, sink.ansi());
            line.push_str("request method=");
            line.push_str(self.method.as_str());
            line.push_str(" path=");
            let _ = write!(line, "{}", Untrusted(&loggable_path(self.uri.path())));
            line.push_str(" status=");
            line.push_str(status.as_str());
            line.push_str(" duration_ms=");
            line.push_str(itoa::Buffer::new().format(micros / 1000));
            line.push('.');
            let _ = write_padded(line, u64::try_from(micros % 1000).unwrap_or(0), 3);
            line.push_str(" request_id=");
            line.push_str(self.id.encode(&mut [0; 36]));
            line.push('\n');
            sink.write(line.as_bytes());
        });
    }
}

impl<F, B> Future for InRequest<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let id = this.line.as_ref().map(|line| line.id);
        let outcome = match in_request(id, || this.inner.poll(cx)) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => return Poll::Pending,
        };
        if let Some(line) = this.line.take() {
            let status = match &outcome {
                Ok(res) => res.status(),
                Err(e) => e.as_response_error().status_code(),
            };
            line.write(status);
        }
        Poll::Ready(outcome)
    }
}
