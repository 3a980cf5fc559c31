//! The id of the request a thread is working for. Set by the web layer for
//! each request, carried across every hop to [`crate::threads`], and written
//! by the log formatter into each line, so a query's or a hash's log lines
//! name the request they were done for.

use std::cell::Cell;
use std::fmt;

use uuid::Uuid;

/// A request's id: in its log lines, its access line and, as "Reference", on
/// its error page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(Uuid);

thread_local! {
    static CURRENT: Cell<Option<RequestId>> = const { Cell::new(None) };
}

impl RequestId {
    /// A fresh id, for a request that has just arrived.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id as text (lower-case, hyphenated), written into `buffer`.
    pub fn encode<'b>(&self, buffer: &'b mut [u8; 36]) -> &'b str {
        self.0.as_hyphenated().encode_lower(buffer)
    }

    /// The request being served on this thread, if any.
    pub fn current() -> Option<Self> {
        CURRENT.get()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

/// Runs `f` as part of request `id` (or of none): its log lines carry the id.
/// For work a request hands to another thread.
pub fn in_request<R>(id: Option<RequestId>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<RequestId>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.set(self.0);
        }
    }
    let _restore = Restore(CURRENT.replace(id));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_id_is_current_only_inside_its_request() {
        let id = RequestId::new();
        assert_eq!(RequestId::current(), None);
        let inside = in_request(Some(id), RequestId::current);
        assert_eq!(inside, Some(id));
        assert_eq!(RequestId::current(), None);
        let _ = std::panic::catch_unwind(|| in_request(Some(id), || panic!("inside")));
        assert_eq!(RequestId::current(), None, "restored after a panic");
    }
}
