//! The in-memory list of revoked sessions that `AuthUser` consults.
//!
//! An access token stays valid until it expires, so sign-out alone cannot take
//! one back. Each instance therefore keeps the ids of sessions revoked within
//! the last access-token lifetime: loaded at start-up, updated at once when this
//! instance revokes, and refreshed from the database every poll interval, so a
//! revocation made elsewhere (another instance, an operator's command) is
//! honoured within about one interval. Polls read revocations by number, not
//! by time: revocations are numbered in commit order (see
//! `db::sessions::revocations_after`), so a revocation whose transaction
//! committed late, or whose instance's clock is behind, is never skipped. Older entries are dropped: any token of such a
//! session has expired anyway, which keeps memory bounded.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

use crate::ids::SessionId;

/// Extra time kept beyond the token lifetime: JWT leeway plus clock skew
/// between instances.
const SLACK: Duration = Duration::from_secs(30);
/// Revocations written without a number (by hand, in SQL) are read by time,
/// this far back from the previous poll: best effort, as a timestamp is fixed
/// when the statement runs, not when it commits.
const UNNUMBERED_OVERLAP: TimeDelta = TimeDelta::seconds(5);

/// Where the next poll starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollMark {
    /// The highest revocation number read so far.
    pub number: i64,
    /// Revocations without a number stamped from here on.
    pub unnumbered_since: NaiveDateTime,
}

/// The list. Its locks are never left unusable: a thread that panicked while
/// holding one cannot have left the map half-written (every write is a single
/// map operation), so a poisoned guard is taken back rather than a revocation
/// being dropped or a revoked session being reported live.
pub struct RevokedSessions {
    entries: RwLock<HashMap<SessionId, NaiveDateTime>>,
    /// Where the next poll starts reading.
    mark: Mutex<Option<PollMark>>,
    retention: TimeDelta,
}

impl RevokedSessions {
    /// An empty list that keeps entries for `access_ttl` plus slack; its
    /// first poll reads every numbered revocation within that time.
    pub fn new(access_ttl: Duration) -> Self {
        let retention = TimeDelta::from_std(access_ttl + SLACK).unwrap_or(TimeDelta::MAX);
        Self {
            entries: RwLock::new(HashMap::new()),
            mark: Mutex::new(None),
            retention,
        }
    }

    pub fn is_revoked(&self, session_id: &SessionId) -> bool {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(session_id)
    }

    /// Records revocations made by this instance.
    pub fn insert(&self, session_ids: impl IntoIterator<Item = SessionId>, at: NaiveDateTime) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        for id in session_ids {
            entries.insert(id, at);
        }
    }

    /// Where the next poll, at `now`, starts reading: above the highest
    /// number read so far (the first poll reads every number).
    pub fn mark(&self, now: NaiveDateTime) -> PollMark {
        let mark = *self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        mark.unwrap_or(PollMark {
            number: 0,
            unnumbered_since: self.horizon(now),
        })
    }

    /// Revocations stamped before this, at `now`, have no live token left.
    pub fn horizon(&self, now: NaiveDateTime) -> NaiveDateTime {
        now.checked_sub_signed(self.retention).unwrap_or(now)
    }

    /// Takes in the revocations a poll read at `now`, numbered up to
    /// `through`, and drops entries whose tokens have expired anyway.
    pub fn absorb(&self, found: Vec<(SessionId, NaiveDateTime)>, through: i64, now: NaiveDateTime) {
        let horizon = self.horizon(now);
        {
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            entries.extend(found.into_iter().filter(|(_, at)| *at >= horizon));
            entries.retain(|_, at| *at >= horizon);
        }
        let mut mark = self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        let number = mark.map_or(0, |m| m.number).max(through);
        *mark = Some(PollMark {
            number,
            unnumbered_since: now - UNNUMBERED_OVERLAP,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> SessionId {
        SessionId::from_stored(name)
    }

    #[test]
    fn inserted_ids_are_revoked() {
        let now = chrono::Utc::now().naive_utc();
        let list = RevokedSessions::new(Duration::from_secs(600));
        assert!(!list.is_revoked(&id("a")));
        list.insert([id("a")], now);
        assert!(list.is_revoked(&id("a")));
        assert!(!list.is_revoked(&id("b")));
    }

    #[test]
    fn polls_keep_recent_revocations_and_drop_old_ones() {
        let now = chrono::Utc::now().naive_utc();
        let list = RevokedSessions::new(Duration::from_secs(60));
        let old = now - TimeDelta::hours(1);
        assert_eq!(list.mark(now).number, 0);
        list.absorb(vec![(id("recent"), now), (id("old"), old)], 7, now);
        assert!(list.is_revoked(&id("recent")));
        assert!(!list.is_revoked(&id("old")));
        assert_eq!(list.mark(now).number, 7);
        list.absorb(Vec::new(), 3, now);
        assert_eq!(list.mark(now).number, 7, "the mark never moves back");
    }

    #[test]
    fn a_poisoned_lock_still_reports_revocations() {
        let now = chrono::Utc::now().naive_utc();
        let list = std::sync::Arc::new(RevokedSessions::new(Duration::from_secs(60)));
        list.insert([id("a")], now);
        let poisoner = list.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.entries.write();
            panic!("poison the lock");
        })
        .join();
        assert!(list.entries.is_poisoned());
        assert!(list.is_revoked(&id("a")));
        list.insert([id("b")], now);
        assert!(list.is_revoked(&id("b")));
    }
}
