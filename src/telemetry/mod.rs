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
//!
//! Here: installing the subscriber and where access lines go. The line's
//! format (timestamp, level) is in `line`, the access-log middleware in
//! `access`, how outside values and secret paths are written in `fields`,
//! the batched writer in `batch`.

use std::io::Write as _;
use std::sync::OnceLock;

use actix_web::{HttpMessage as _, HttpRequest};
pub use gatehouse_core::request_id::{RequestId, in_request};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

mod access;
mod batch;
mod fields;
mod line;

pub use access::{InRequest, RequestLog, RequestLogService};
use batch::Batched;
pub use batch::LogGuard;
pub use fields::{Untrusted, loggable_path};
use line::LineFormat;

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

/// The id given to this request.
pub fn request_id_of(req: &HttpRequest) -> Option<RequestId> {
    req.extensions().get::<RequestId>().copied()
}
