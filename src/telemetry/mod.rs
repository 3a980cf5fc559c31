//! Logging: one subscriber, one line per event, one access-log line per
//! request, and the request's id on every line written while it is served.
//!
//! Nothing here ever records a query string, a cookie or a header, and a path
//! segment that is a secret (a password-reset token) is written as `…`, so
//! tokens cannot leak into logs.
//!
//! Cost matters: every request passes through here. The request id is a
//! `Copy` value kept in a thread-local while the request's future is polled
//! (no span is created, entered or closed per request), the access line is
//! formatted by hand into a reused buffer, and the server's lines are written to stdout by a
//! thread of their own, in batches when they come fast.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::fmt::Write as _;
use std::future::{Future, Ready, ready};
use std::io::Write as _;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::{Error, HttpMessage as _, HttpRequest};
pub use gatehouse_core::request_id::{RequestId, in_request};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

mod batch;

use batch::Batched;
pub use batch::LogGuard;

/// Installs the global subscriber, writing each line to stdout as it comes
/// (for commands, whose output must interleave with the log in order).
/// `filter` uses `RUST_LOG` syntax. Does nothing when one is already
/// installed (tests start many apps in one process).
pub fn init(filter: &str) {
    if install(filter, std::io::stdout) {
        let _ = ACCESS.set(AccessSink::Stdout { ansi: ansi() });
    }
}

/// Installs the global subscriber for the server: lines are gathered in
/// memory and written to stdout in batches by a thread of their own (see
/// `batch`). Keep the guard until the process ends: dropping it writes what
/// is still waiting. `None` when a subscriber was already installed (or the
/// thread could not start, and lines go straight to stdout).
pub fn init_buffered(filter: &str) -> Option<LogGuard> {
    let Ok((writer, guard)) = batch::start(std::io::stdout()) else {
        init(filter);
        return None;
    };
    if !install(filter, writer.clone()) {
        return None;
    }
    let _ = ACCESS.set(AccessSink::Batched {
        ansi: ansi(),
        writer,
    });
    Some(guard)
}

/// Colours on a terminal only.
fn ansi() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}

fn install<W>(filter: &str, writer: W) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi())
        .event_format(LineFormat)
        .with_writer(writer)
        .try_init()
        .is_ok()
}

/// `2026-11-30T14:05:09.123456Z  INFO request_id=…: message key=value`; the
/// request id only on lines written while a request is served.
struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write_timestamp(&mut writer, SystemTime::now())?;
        let ansi = writer.has_ansi_escapes();
        write_level(&mut writer, *event.metadata().level(), ansi)?;
        if let Some(id) = RequestId::current() {
            write!(writer, "request_id={id}: ")?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The level between spaces, as wide as the widest, coloured on a terminal.
fn write_level(writer: &mut impl fmt::Write, level: Level, ansi: bool) -> fmt::Result {
    if !ansi {
        return write!(writer, " {level:>5} ");
    }
    let colour = match level {
        Level::ERROR => 31,
        Level::WARN => 33,
        Level::INFO => 32,
        Level::DEBUG => 34,
        Level::TRACE => 35,
    };
    write!(writer, " \x1b[{colour}m{level:>5}\x1b[0m ")
}

/// Where access lines go: the subscriber's own stream (the same writer
/// thread, for the server), so that every line keeps its place.
enum AccessSink {
    Stdout {
        ansi: bool,
    },
    Batched {
        ansi: bool,
        writer: Batched<std::io::Stdout>,
    },
}

static ACCESS: OnceLock<AccessSink> = OnceLock::new();

impl AccessSink {
    fn ansi(&self) -> bool {
        match self {
            Self::Stdout { ansi } | Self::Batched { ansi, .. } => *ansi,
        }
    }

    fn write(&self, line: &[u8]) {
        match self {
            // A line that cannot be written is dropped, as the subscriber does.
            Self::Stdout { .. } => {
                let _ = std::io::stdout().lock().write_all(line);
            }
            Self::Batched { writer, .. } => writer.append(line),
        }
    }
}

thread_local! {
    /// This thread's access line, reused: no allocation per request.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    /// This thread's last whole second and its text, `2026-11-30T14:05:09`:
    /// a date is formatted once a second, not once a line.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// RFC 3339 in UTC with microseconds: the date and time of day come from
/// chrono once a second (this thread's cache), the fraction is written here.
///
/// Hand-written, and kept because it earns its place: every request writes
/// an access line, and it keeps S2 (the anonymous redirect) at 25 075
/// instructions per request; chrono formatting each line
/// (`%Y-%m-%dT%H:%M:%S%.6fZ`) costs +15.4 % there (S1 +9.6 %, S3 +11.1 %),
/// measured with `scripts/instructions.sh`.
fn write_timestamp(writer: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            let at = i64::try_from(secs)
                .ok()
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .unwrap_or_default();
            *text = at.format("%Y-%m-%dT%H:%M:%S").to_string();
            *second = secs;
        }
        writer.write_str(text)?;
        writer.write_char('.')?;
        write_padded(writer, u64::from(since_epoch.subsec_micros()), 6)?;
        writer.write_char('Z')
    })
}

/// `number` in decimal, with leading zeros to `width` digits.
fn write_padded(writer: &mut impl fmt::Write, number: u64, width: usize) -> fmt::Result {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(number);
    for _ in digits.len()..width {
        writer.write_char('0')?;
    }
    writer.write_str(digits)
}

/// The id given to this request.
pub fn request_id_of(req: &HttpRequest) -> Option<RequestId> {
    req.extensions().get::<RequestId>().copied()
}

/// A value from outside (a header, a path, an address) as a log field's
/// value: written as it is when it is one plain word, else quoted and escaped
/// the way Rust writes a string (`"http://x user_id=1"`, `"\u{1b}"`). Either
/// way it stays one field: it can neither start another (`… user_id=1`) nor
/// end its line, and it shows no terminal escapes. Log with `%Untrusted(…)`.
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_plain_word(self.0) {
            f.write_str(self.0)
        } else {
            fmt::Debug::fmt(self.0, f)
        }
    }
}

/// Non-empty, and nothing that a field's value may not hold bare: no
/// whitespace, quote, backslash, control or invisible character.
fn is_plain_word(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|c| match c {
            '"' | '\'' | '\\' => false,
            '!'..='~' => true,
            c => !c.is_ascii() && !c.is_whitespace() && c.escape_debug().len() == 1,
        })
}

/// Paths whose remaining segment is a secret (it authorises something by
/// itself being known) and is never logged.
const SECRET_PATH_PREFIXES: &[&str] = &["/password/reset/"];

/// `path` as the log may show it: a secret segment becomes `…`.
pub fn loggable_path(path: &str) -> Cow<'_, str> {
    // Judged as decoded (`/password/reset%2FTOKEN` hides a token too); only
    // a path with an escape pays for decoding.
    let decoded = if path.contains('%') {
        percent_encoding::percent_decode_str(path).decode_utf8_lossy()
    } else {
        Cow::Borrowed(path)
    };
    for prefix in SECRET_PATH_PREFIXES {
        if let Some(rest) = decoded.strip_prefix(prefix)
            && !rest.is_empty()
        {
            return Cow::Owned(format!("{prefix}…"));
        }
    }
    Cow::Borrowed(path)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_path_segments_are_never_logged() {
        assert_eq!(loggable_path("/password/reset/abc123"), "/password/reset/…");
        assert_eq!(loggable_path("/password/reset/"), "/password/reset/");
        assert_eq!(loggable_path("/dashboard"), "/dashboard");
        assert_eq!(
            loggable_path("/password/reset%2Fabc123"),
            "/password/reset/…"
        );
        assert_eq!(
            loggable_path("/password%2freset%2Fabc123"),
            "/password/reset/…"
        );
        assert_eq!(loggable_path("/a%20b"), "/a%20b");
    }

    #[test]
    fn untrusted_values_stay_one_field() {
        let shown = |text: &str| Untrusted(text).to_string();
        for plain in [
            "http://evil.example",
            "/password/reset/…",
            "/a=b",
            "ada@example.com",
            "zoë",
        ] {
            assert_eq!(shown(plain), plain);
        }
        assert_eq!(
            shown("http://x expected=http://127.0.0.1 user_id=1"),
            r#""http://x expected=http://127.0.0.1 user_id=1""#
        );
        assert_eq!(shown("a\r\nb"), r#""a\r\nb""#);
        assert_eq!(shown("\u{1b}[31m"), r#""\u{1b}[31m""#);
        assert_eq!(shown("/a\"b"), r#""/a\"b""#);
        assert_eq!(shown("a\u{2028}b"), r#""a\u{2028}b""#);
        assert_eq!(shown("a\u{3000}b"), r#""a\u{3000}b""#);
        assert_eq!(shown(""), r#""""#);
    }

    #[test]
    fn levels_are_padded_to_one_width() {
        let shown = |level, ansi| {
            let mut text = String::new();
            write_level(&mut text, level, ansi).unwrap();
            text
        };
        assert_eq!(shown(Level::INFO, false), "  INFO ");
        assert_eq!(shown(Level::ERROR, false), " ERROR ");
        assert_eq!(shown(Level::WARN, true), " \x1b[33m WARN\x1b[0m ");
        assert_eq!(shown(Level::TRACE, true), " \x1b[35mTRACE\x1b[0m ");
    }

    #[test]
    fn timestamps_are_rfc_3339_with_microseconds() {
        let at = UNIX_EPOCH + Duration::from_micros(1_764_511_509_000_042);
        let mut text = String::new();
        write_timestamp(&mut text, at).unwrap();
        assert_eq!(text, "2025-11-30T14:05:09.000042Z");
        // The same second again, from this thread's cache.
        let mut again = String::new();
        write_timestamp(&mut again, at + Duration::from_micros(5)).unwrap();
        assert_eq!(again, "2025-11-30T14:05:09.000047Z");
    }
}
