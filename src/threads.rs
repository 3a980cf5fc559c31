//! A fixed set of threads for blocking work, shared by every async worker.
//!
//! tokio's own blocking pool belongs to one runtime, and actix-web runs one
//! runtime per worker, each of which would start threads of its own (up to
//! 512) for the same bounded work. The database and bcrypt each own one
//! [`BlockingThreads`] instead, sized to what they can use at once (the pool's
//! connections, one hash per CPU), so the process has that many threads for
//! them and no more, whichever worker asked. Idle threads end after
//! [`KEEP_ALIVE`] and start again when work comes.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

/// How long an idle thread waits for work before it ends.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Runs blocking closures on at most `threads` threads; cheap to clone.
#[derive(Clone)]
pub struct BlockingThreads {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    /// A runtime used only for its blocking pool: nothing is ever polled on
    /// it, so it needs no driver and no thread of its own. Taken on drop.
    runtime: Option<Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last clone may be dropped on an async worker, where dropping a
        // runtime would panic; running closures finish on their own.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl BlockingThreads {
    /// Threads named `name`, at most `threads` (at least one) at a time.
    pub fn new(name: &str, threads: usize) -> std::io::Result<Self> {
        let runtime = Builder::new_current_thread()
            .max_blocking_threads(threads.max(1))
            .thread_keep_alive(KEEP_ALIVE)
            .thread_name(name)
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
            }),
        })
    }

    /// Runs `f` on one of the threads. When all are busy it waits its turn
    /// (first come, first served); callers that must not queue here bound
    /// themselves, as the database permits and the hashing slots do.
    pub fn spawn<T, F>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.inner.handle.spawn_blocking(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_work_on_at_most_the_given_number_of_named_threads() {
        let threads = BlockingThreads::new("test-blocking", 2).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                threads.spawn(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    std::thread::current().name().map(str::to_owned)
                })
            })
            .collect();
        for job in jobs {
            assert_eq!(job.await.unwrap().as_deref(), Some("test-blocking"));
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn can_be_dropped_on_an_async_worker() {
        let threads = BlockingThreads::new("test-drop", 1).unwrap();
        assert_eq!(threads.spawn(|| 7).await.unwrap(), 7);
        drop(threads);
    }
}
