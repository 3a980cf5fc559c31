//! Revocations pushed between instances on PostgreSQL: the revoking
//! transaction sends `NOTIFY` (delivered when it commits), and every instance
//! `LISTEN`s on a connection of its own. On SQLite there is one machine and
//! nothing to push; the periodic poll covers both backends anyway, as the
//! safety net for a dropped connection or a missed notification.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::{DbConnection, Target};
use crate::ids::SessionId;

/// The channel revoked session ids travel on.
pub const CHANNEL: &str = "gatehouse_revoked";

/// Announces revoked sessions to every listening instance. Call it inside the
/// revoking transaction: PostgreSQL delivers the notifications on commit, and
/// drops them on rollback. Nothing to do on SQLite.
pub fn announce_revoked(conn: &mut DbConnection, session_ids: &[SessionId]) -> QueryResult<()> {
    let DbConnection::Postgresql(pg) = conn else {
        return Ok(());
    };
    for id in session_ids {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(CHANNEL)
            .bind::<Text, _>(id.as_str())
            .execute(pg)?;
    }
    Ok(())
}

/// How often the listener checks that its connection is still alive when
/// nothing arrives.
const KEEPALIVE: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A `LISTEN` connection that reconnects with back-off when it is lost.
/// [`poll`](Self::poll) never blocks on the network for long: it reads what
/// has arrived and returns.
pub struct RevocationListener {
    url: String,
    conn: Option<PgConnection>,
    next_attempt: Instant,
    backoff: Duration,
    last_check: Instant,
}

impl RevocationListener {
    /// A listener for `database_url`, or `None` when it is not PostgreSQL.
    pub fn for_url(database_url: &str) -> Option<Self> {
        match Target::from_url(database_url) {
            Target::Postgres(url) => Some(Self {
                url,
                conn: None,
                next_attempt: Instant::now(),
                backoff: Duration::from_millis(200),
                last_check: Instant::now(),
            }),
            Target::Sqlite(_) => None,
        }
    }

    /// Revoked session ids announced since the last call. Blocking (briefly):
    /// run it off the async workers.
    pub fn poll(&mut self) -> Vec<SessionId> {
        let check_alive = self.last_check.elapsed() >= KEEPALIVE;
        let Some(conn) = self.connection() else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        let mut lost = None;
        for notification in conn.notifications_iter() {
            match notification {
                Ok(n) if n.channel == CHANNEL => ids.push(SessionId::from_stored(n.payload)),
                Ok(_) => {}
                Err(e) => {
                    lost = Some(e);
                    break;
                }
            }
        }
        if lost.is_none() && check_alive {
            lost = diesel::sql_query("SELECT 1").execute(conn).err();
        }
        if check_alive {
            self.last_check = Instant::now();
        }
        if let Some(e) = lost {
            tracing::warn!(error = %e, "the revocation listener lost its connection; reconnecting");
            self.conn = None;
            self.next_attempt = Instant::now();
        }
        ids
    }

    fn connection(&mut self) -> Option<&mut PgConnection> {
        if self.conn.is_none() && Instant::now() >= self.next_attempt {
            match super::connect_postgres(&self.url).and_then(|mut c| {
                diesel::sql_query(format!("LISTEN {CHANNEL}"))
                    .execute(&mut c)
                    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                Ok(c)
            }) {
                Ok(conn) => {
                    tracing::info!("listening for revocations from other instances");
                    self.conn = Some(conn);
                    self.backoff = Duration::from_millis(200);
                    self.last_check = Instant::now();
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        retry_in_ms = self.backoff.as_millis() as u64,
                        "the revocation listener cannot connect"
                    );
                    self.next_attempt = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.conn.as_mut()
    }
}
