//! The in-memory list of revoked sessions that `AuthUser` consults.
//!
//! An access token stays valid until it expires, so sign-out alone cannot take
//! one back. Each instance therefore keeps the ids of sessions revoked within
//! the last access-token lifetime: loaded at start-up, updated at once when this
//! instance revokes, and refreshed from the database every poll interval, so a
//! revocation made elsewhere (another instance, an operator's SQL) is honoured
//! within about one interval. Older entries are dropped: any token of such a
//! session has expired anyway, which keeps memory bounded.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

/// Extra time kept beyond the token lifetime: JWT leeway plus clock skew
/// between instances.
const SLACK: Duration = Duration::from_secs(30);
/// Polls re-read this far back, so a revocation committed by another instance
/// while the previous poll ran (or stamped by a slightly slow clock) is not missed.
const POLL_OVERLAP: TimeDelta = TimeDelta::seconds(5);

/// The list. Its locks are never left unusable: a thread that panicked while
/// holding one cannot have left the map half-written (every write is a single
/// map operation), so a poisoned guard is taken back rather than a revocation
/// being dropped or a revoked session being reported live.
pub struct RevokedSessions {
    entries: RwLock<HashMap<String, NaiveDateTime>>,
    /// Start of the window the next poll reads.
    next_since: Mutex<NaiveDateTime>,
    retention: TimeDelta,
}

impl RevokedSessions {
    /// An empty list that keeps entries for `access_ttl` plus slack, starting
    /// its first poll that far before `now`.
    pub fn new(access_ttl: Duration, now: NaiveDateTime) -> Self {
        let retention = TimeDelta::from_std(access_ttl + SLACK).unwrap_or(TimeDelta::MAX);
        Self {
            entries: RwLock::new(HashMap::new()),
            next_since: Mutex::new(now.checked_sub_signed(retention).unwrap_or(now)),
            retention,
        }
    }

    pub fn is_revoked(&self, session_id: &str) -> bool {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(session_id)
    }

    /// Records revocations made by this instance.
    pub fn insert<I, S>(&self, session_ids: I, at: NaiveDateTime)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        for id in session_ids {
            entries.insert(id.into(), at);
        }
    }

    /// Where the next poll of the database should start reading.
    pub fn poll_since(&self) -> NaiveDateTime {
        *self
            .next_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes in the revocations a poll read at `now` (from
    /// [`poll_since`](Self::poll_since) on) and drops entries whose tokens
    /// have expired anyway.
    pub fn absorb(&self, found: Vec<(String, NaiveDateTime)>, now: NaiveDateTime) {
        let horizon = now.checked_sub_signed(self.retention).unwrap_or(now);
        {
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            entries.extend(found.into_iter().filter(|(_, at)| *at >= horizon));
            entries.retain(|_, at| *at >= horizon);
        }
        *self
            .next_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = now - POLL_OVERLAP;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_ids_are_revoked() {
        let now = chrono::Utc::now().naive_utc();
        let list = RevokedSessions::new(Duration::from_secs(600), now);
        assert!(!list.is_revoked("a"));
        list.insert(["a"], now);
        assert!(list.is_revoked("a"));
        assert!(!list.is_revoked("b"));
    }

    #[test]
    fn polls_keep_recent_revocations_and_drop_old_ones() {
        let now = chrono::Utc::now().naive_utc();
        let list = RevokedSessions::new(Duration::from_secs(60), now);
        let old = now - TimeDelta::hours(1);
        list.absorb(vec![("recent".into(), now), ("old".into(), old)], now);
        assert!(list.is_revoked("recent"));
        assert!(!list.is_revoked("old"));
        assert_eq!(list.poll_since(), now - POLL_OVERLAP);
    }

    #[test]
    fn a_poisoned_lock_still_reports_revocations() {
        let now = chrono::Utc::now().naive_utc();
        let list = std::sync::Arc::new(RevokedSessions::new(Duration::from_secs(60), now));
        list.insert(["a"], now);
        let poisoner = list.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.entries.write();
            panic!("poison the lock");
        })
        .join();
        assert!(list.entries.is_poisoned());
        assert!(list.is_revoked("a"));
        list.insert(["b"], now);
        assert!(list.is_revoked("b"));
    }
}
