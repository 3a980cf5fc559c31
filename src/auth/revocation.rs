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
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use chrono::NaiveDateTime;

use crate::db::{self, DbConnection, sessions};

/// Extra time kept beyond the token lifetime: JWT leeway plus clock skew
/// between instances.
const SLACK: Duration = Duration::from_secs(30);
/// Polls re-read this far back, so a revocation committed by another instance
/// while the previous poll ran (or stamped by a slightly slow clock) is not missed.
const POLL_OVERLAP: Duration = Duration::from_secs(5);

pub struct RevokedSessions {
    entries: RwLock<HashMap<String, NaiveDateTime>>,
    /// Start of the window the next poll reads.
    next_since: Mutex<NaiveDateTime>,
    retention: chrono::TimeDelta,
}

impl RevokedSessions {
    /// An empty list that keeps entries for `access_ttl` plus slack.
    pub fn new(access_ttl: Duration) -> Self {
        let retention =
            chrono::TimeDelta::from_std(access_ttl + SLACK).unwrap_or(chrono::TimeDelta::MAX);
        Self {
            entries: RwLock::new(HashMap::new()),
            next_since: Mutex::new(db::now() - retention),
            retention,
        }
    }

    pub fn is_revoked(&self, session_id: &str) -> bool {
        self.entries
            .read()
            .is_ok_and(|entries| entries.contains_key(session_id))
    }

    /// Records revocations made by this instance.
    pub fn insert<I, S>(&self, session_ids: I, at: NaiveDateTime)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let Ok(mut entries) = self.entries.write() {
            for id in session_ids {
                entries.insert(id.into(), at);
            }
        }
    }

    /// Reads revocations since the last poll and drops expired entries.
    /// Blocking: run it on a blocking thread.
    pub fn poll(&self, conn: &mut DbConnection) -> diesel::QueryResult<usize> {
        let now = db::now();
        let since = match self.next_since.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        };
        let found = sessions::revoked_since(conn, since)?;
        let count = found.len();
        let horizon = now - self.retention;
        if let Ok(mut entries) = self.entries.write() {
            entries.extend(found.into_iter().filter(|(_, at)| *at >= horizon));
            entries.retain(|_, at| *at >= horizon);
        }
        let overlap = chrono::TimeDelta::from_std(POLL_OVERLAP).unwrap_or_default();
        if let Ok(mut next) = self.next_since.lock() {
            *next = now - overlap;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_ids_are_revoked() {
        let list = RevokedSessions::new(Duration::from_secs(600));
        assert!(!list.is_revoked("a"));
        list.insert(["a"], db::now());
        assert!(list.is_revoked("a"));
        assert!(!list.is_revoked("b"));
    }
}
