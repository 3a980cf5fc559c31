//! The log line: `2026-11-30T14:05:09.123456Z  INFO request_id=…: message
//! key=value`, its timestamp and its level, shared by the subscriber's lines
//! and the access line.

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::RequestId;

thread_local! {
    /// This thread's last whole second and its text, `2026-11-30T14:05:09`:
    /// a date is formatted once a second, not once a line.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `2026-11-30T14:05:09.123456Z  INFO request_id=…: message key=value`; the
/// request id only on lines written while a request is served.
pub(super) struct LineFormat;

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
pub(super) fn write_level(writer: &mut impl fmt::Write, level: Level, ansi: bool) -> fmt::Result {
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

/// RFC 3339 in UTC with microseconds: the date and time of day come from
/// chrono once a second (this thread's cache), the fraction is written here.
///
/// Hand-written, and kept because it earns its place: every request writes
/// an access line, and it keeps S2 (the anonymous redirect) at 25 075
/// instructions per request; chrono formatting each line
/// (`%Y-%m-%dT%H:%M:%S%.6fZ`) costs +15.4 % there (S1 +9.6 %, S3 +11.1 %),
/// measured with `scripts/instructions.sh`.
pub(super) fn write_timestamp(writer: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
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
pub(super) fn write_padded(writer: &mut impl fmt::Write, number: u64, width: usize) -> fmt::Result {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(number);
    for _ in digits.len()..width {
        writer.write_char('0')?;
    }
    writer.write_str(digits)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

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
