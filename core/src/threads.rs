//! A fixed set of threads for blocking work, shared by every async worker.
//!
//! tokio's own blocking pool belongs to one runtime, and actix-web runs one
//! runtime per worker, each of which would start threads of its own (up to
//! 512) for the same bounded work. The database and bcrypt each own one
//! [`BlockingThreads`] instead, sized to what they can use at once (the pool's
//! connections, one hash per CPU), so the process has that many threads for
//! them and no more, whichever worker asked. Work waits its turn on the async
//! side (first come, first served), where a caller that goes away, or gives
//! up after its wait, leaves the queue without costing a thread anything.
//! Idle threads end after [`KEEP_ALIVE`] and start again when work comes.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::Semaphore;

use crate::request_id::{RequestId, in_request};

/// How long an idle thread waits for work before it ends.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Runs blocking closures on at most `threads` threads; cheap to clone.
#[derive(Clone)]
pub struct BlockingThreads {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    /// One per thread: taken before a closure is handed to a thread and
    /// returned when it ends, so no closure ever waits inside the runtime.
    slots: Arc<Semaphore>,
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

/// Why a closure did not run to completion.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No thread came free within the caller's wait.
    #[error("every thread stayed busy for {0:?}")]
    Busy(Duration),
    /// The closure panicked (or the threads are shutting down).
    #[error("blocking work failed: {0}")]
    Failed(String),
}

impl BlockingThreads {
    /// Threads named `name`, at most `threads` (at least one) at a time.
    pub fn new(name: &str, threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let runtime = Builder::new_current_thread()
            .max_blocking_threads(threads)
            .thread_keep_alive(KEEP_ALIVE)
            .thread_name(name)
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                handle: runtime.handle().clone(),
                slots: Arc::new(Semaphore::new(threads)),
                runtime: Some(runtime),
            }),
        })
    }

    /// Waits for a free thread (first come, first served; at most `wait`
    /// when given, then [`RunError::Busy`]) and runs `f` on it, as part of
    /// the caller's request: its log lines carry that request's id.
    pub async fn run<T, F>(&self, wait: Option<Duration>, f: F) -> Result<T, RunError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = self.inner.slots.clone().acquire_owned();
        let slot = match wait {
            Some(wait) => tokio::time::timeout(wait, slot)
                .await
                .map_err(|_| RunError::Busy(wait))?,
            None => slot.await,
        }
        .map_err(|closed| RunError::Failed(closed.to_string()))?;
        let request = RequestId::current();
        self.inner
            .handle
            .spawn_blocking(move || {
                // Held until `f` ends, even if the caller stops waiting.
                let _slot = slot;
                in_request(request, f)
            })
            .await
            .map_err(|e| RunError::Failed(e.to_string()))
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
                let (threads, running, most) = (threads.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    threads
                        .run(None, move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, Ordering::SeqCst);
                            std::thread::current().name().map(str::to_owned)
                        })
                        .await
                })
            })
            .collect();
        for job in jobs {
            assert_eq!(
                job.await.unwrap().unwrap().as_deref(),
                Some("test-blocking")
            );
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_caller_that_cannot_wait_longer_is_told_the_threads_are_busy() {
        let threads = BlockingThreads::new("test-busy", 1).unwrap();
        let (started, release) = (
            Arc::new(std::sync::Barrier::new(2)),
            Arc::new(std::sync::Barrier::new(2)),
        );
        let busy = {
            let (threads, started, release) = (threads.clone(), started.clone(), release.clone());
            tokio::spawn(async move {
                threads
                    .run(None, move || {
                        started.wait();
                        release.wait();
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || started.wait())
            .await
            .unwrap();
        let waited = threads.run(Some(Duration::from_millis(50)), || ()).await;
        assert!(matches!(waited, Err(RunError::Busy(_))), "{waited:?}");
        tokio::task::spawn_blocking(move || release.wait())
            .await
            .unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(threads.run(None, || 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn can_be_dropped_on_an_async_worker() {
        let threads = BlockingThreads::new("test-drop", 1).unwrap();
        assert_eq!(threads.run(None, || 7).await.unwrap(), 7);
        drop(threads);
    }
}
