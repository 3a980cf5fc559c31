//! Extractors that do their work when first polled, not when created.
//!
//! actix-web creates every extractor of a handler at once and then polls them
//! in order, stopping at the first failure. An extractor whose future does its
//! work on the first poll is therefore spared when an earlier one fails: a
//! visitor sent to sign in by `AuthUser` gets no CSRF cookie, no flash lookup
//! and no user-agent parsing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::HttpRequest;

/// What an extractor does with the request.
type Extract<T, E> = fn(&HttpRequest) -> Result<T, E>;

/// The future of an extractor built on [`defer`].
pub struct Deferred<T, E> {
    work: Option<(HttpRequest, Extract<T, E>)>,
}

/// `extract(req)`, run when the extractor is first polled.
pub fn defer<T, E>(req: &HttpRequest, extract: Extract<T, E>) -> Deferred<T, E> {
    Deferred {
        work: Some((req.clone(), extract)),
    }
}

// Holds no pinned data: the request is a reference-counted handle.
impl<T, E> Unpin for Deferred<T, E> {}

impl<T, E> Future for Deferred<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let (req, extract) = self
            .work
            .take()
            .expect("an extractor's future is not polled after it completed");
        Poll::Ready(extract(&req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[actix_web::test]
    async fn the_work_runs_when_polled_not_when_created() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        fn count(_: &HttpRequest) -> Result<usize, ()> {
            Ok(RUNS.fetch_add(1, Ordering::SeqCst) + 1)
        }
        let req = TestRequest::default().to_http_request();
        let unpolled = defer(&req, count);
        drop(unpolled);
        assert_eq!(RUNS.load(Ordering::SeqCst), 0);
        assert_eq!(defer(&req, count).await, Ok(1));
    }
}
