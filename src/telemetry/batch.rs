//! The server's log stream: lines are appended to a buffer in memory, and a
//! thread of its own writes the buffer out a few milliseconds later, many
//! lines in one write. A request never waits for the terminal or the disk,
//! and under load there is one write (and one wake-up) per batch, not per
//! line.
//!
//! A line is written at most [`GATHER`] after it was logged. If the writer
//! falls behind by [`MAX_BUFFERED`] bytes, the thread that logs writes the
//! buffer itself: memory stays bounded and the log is slowed down, not
//! dropped. Dropping the [`LogGuard`] writes whatever is left (it waits for
//! the writer as long as that takes).
//!
//! Hand-written, and kept because it earns its place: it keeps S2 (the
//! anonymous redirect) at 25 075 instructions per request;
//! `tracing-appender`'s non-blocking writer (a copy and a channel message per
//! line, and each line written on its own) costs +7.5 % there (S1 +3.3 %,
//! S3 +5.0 %), measured with `scripts/instructions.sh`.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer waits after the first line of a batch for more.
pub const GATHER: Duration = Duration::from_millis(10);
/// Bytes waiting, at most, before the logging thread writes them itself; each
/// of the two buffers (the one filling, the one being written) holds less than
/// twice this.
pub const MAX_BUFFERED: usize = 256 * 1024;

struct Buffer {
    bytes: Vec<u8>,
    stopping: bool,
}

struct Shared<W> {
    buffer: Mutex<Buffer>,
    more: Condvar,
    out: Mutex<W>,
}

/// Appends lines to the batch; cheap to clone.
pub struct Batched<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for Batched<W> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

/// Keeps the writer thread; dropping it writes the rest and ends the thread.
pub struct LogGuard {
    stop: Box<dyn Fn() + Send + Sync>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        (self.stop)();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the writer thread over `out`.
pub fn start<W: Write + Send + 'static>(out: W) -> std::io::Result<(Batched<W>, LogGuard)> {
    let shared = Arc::new(Shared {
        buffer: Mutex::new(Buffer {
            bytes: Vec::with_capacity(64 * 1024),
            stopping: false,
        }),
        more: Condvar::new(),
        out: Mutex::new(out),
    });
    let writer = shared.clone();
    let thread = std::thread::Builder::new()
        .name("gatehouse-log".into())
        .spawn(move || write_batches(&writer))?;
    let stopper = shared.clone();
    let stop = Box::new(move || {
        lock(&stopper.buffer).stopping = true;
        stopper.more.notify_one();
    });
    Ok((
        Batched { shared },
        LogGuard {
            stop,
            thread: Some(thread),
        },
    ))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn write_batches<W: Write>(shared: &Shared<W>) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let mut buffer = lock(&shared.buffer);
        while buffer.bytes.is_empty() && !buffer.stopping {
            buffer = shared
                .more
                .wait(buffer)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let stopping = buffer.stopping;
        drop(buffer);
        if !stopping {
            std::thread::sleep(GATHER);
        }
        let mut buffer = lock(&shared.buffer);
        std::mem::swap(&mut buffer.bytes, &mut batch);
        // `out` is taken before the buffer is let go (the order `append`
        // takes them in), so a line written by a logging thread that found
        // the buffer full cannot overtake this batch.
        let mut out = lock(&shared.out);
        drop(buffer);
        // A log that cannot be written is dropped, as the subscriber does.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        drop(out);
        batch.clear();
        if stopping && lock(&shared.buffer).bytes.is_empty() {
            return;
        }
    }
}

impl<W: Write> Batched<W> {
    /// Adds `line` (one or more whole lines) to the batch.
    pub fn append(&self, line: &[u8]) {
        let mut buffer = lock(&self.shared.buffer);
        let was_empty = buffer.bytes.is_empty();
        buffer.bytes.extend_from_slice(line);
        if buffer.bytes.len() >= MAX_BUFFERED {
            // The writer is behind: write here, in order, and wait for it.
            let mut out = lock(&self.shared.out);
            let _ = out.write_all(&buffer.bytes).and_then(|()| out.flush());
            buffer.bytes.clear();
        } else if was_empty {
            self.shared.more.notify_one();
        }
    }
}

/// For the subscriber: each event's line goes to the batch.
impl<W: Write> Write for &Batched<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'static> tracing_subscriber::fmt::MakeWriter<'a> for Batched<W> {
    type Writer = &'a Batched<W>;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory `out` the test can read after the guard is dropped.
    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<Vec<u8>>>);

    impl Write for Memory {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let memory = Memory::default();
        let (log, guard) = start(memory.clone()).unwrap();
        let lines: Vec<String> = (0..10_000).map(|i| format!("line {i}\n")).collect();
        std::thread::scope(|s| {
            s.spawn(|| {
                for line in &lines[..5_000] {
                    log.append(line.as_bytes());
                }
            });
        });
        for line in &lines[5_000..] {
            log.append(line.as_bytes());
        }
        drop(guard);
        assert_eq!(
            String::from_utf8(memory.0.lock().unwrap().clone()).unwrap(),
            lines.concat()
        );
    }

    #[test]
    fn a_line_is_written_soon_without_more_coming() {
        let memory = Memory::default();
        let (log, _guard) = start(memory.clone()).unwrap();
        log.append(b"alone\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while memory.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "not written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(&*memory.0.lock().unwrap(), b"alone\n");
    }

    #[test]
    fn a_writer_that_falls_behind_bounds_the_buffer() {
        let memory = Memory::default();
        let (log, guard) = start(memory.clone()).unwrap();
        let big = vec![b'x'; MAX_BUFFERED / 4];
        for _ in 0..12 {
            log.append(&big);
            assert!(lock(&log.shared.buffer).bytes.len() < MAX_BUFFERED);
        }
        drop(guard);
        assert_eq!(memory.0.lock().unwrap().len(), 12 * big.len());
    }
}
