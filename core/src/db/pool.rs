//! The connection pool: which backend a URL names, how connections are
//! opened and checked (SQLite's pragmas), and the pool with its threads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, SimpleConnection as _};
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection as _};
use scheduled_thread_pool::ScheduledThreadPool;

use super::{DbConnection, DbError, DbSetupError, ping};
use crate::threads::BlockingThreads;

/// The connection pool and as many threads as it has connections: work for
/// the database waits for a free thread on the async side (at most the pool's
/// timeout), so a burst of requests queues there instead of parking one
/// thread per request on a connection checkout.
#[derive(Clone)]
pub struct DbPool {
    pub(super) pool: Pool<Manager>,
    pub(super) threads: BlockingThreads,
    pub(super) timeout: Duration,
}

impl DbPool {
    /// A connection taken on the calling thread, waiting for one if need be:
    /// for start-up, the command line's set-up and tests. Never on an async
    /// worker: requests go through [`run`] and [`write`].
    pub fn get_blocking(&self) -> Result<PooledConn, DbError> {
        self.pool.get().map_err(DbError::Unavailable)
    }

    /// How many connections the pool may hold.
    pub fn max_size(&self) -> u32 {
        self.pool.max_size()
    }

    /// How many connections are open and how many of them idle.
    pub fn state(&self) -> diesel::r2d2::State {
        self.pool.state()
    }
}
pub type PooledConn = PooledConnection<Manager>;

/// Where `DATABASE_URL` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file path (`sqlite:` and `sqlite://` prefixes removed).
    Sqlite(String),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Target {
    /// The backend is chosen from the URL's scheme here, never guessed by
    /// trying to connect: a PostgreSQL error then reads as what it is.
    pub fn from_url(database_url: &str) -> Self {
        let lower = database_url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Self::Postgres(database_url.to_owned())
        } else {
            Self::Sqlite(sqlite_path(database_url).to_owned())
        }
    }
}

/// What stands between the instances and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooler {
    /// Each pooled connection is a server session of its own.
    #[default]
    None,
    /// A transaction-mode pooler (PgBouncer `pool_mode = transaction`): a
    /// connection's server session may change after every transaction, so no
    /// named prepared statement, `LISTEN` or session lock may outlive one.
    Transaction,
}

/// Pool sizes and waits, from settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub size: u32,
    /// How long a checkout waits before the caller answers 503.
    pub timeout: Duration,
    /// How long start-up retries an unreachable PostgreSQL server.
    pub startup_timeout: Duration,
    pub pooler: Pooler,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            size: 8,
            timeout: Duration::from_secs(3),
            startup_timeout: Duration::from_secs(30),
            pooler: Pooler::None,
        }
    }
}

/// A PostgreSQL connection. libpq speaks TLS through OpenSSL, and OpenSSL
/// initialised by libpq registers a clean-up that runs when the process exits,
/// even while another thread (a pool refilling itself, the revocation
/// listener) is still inside a TLS call: that thread then crashes the exiting
/// process (a command that did its work exits with SIGSEGV instead of 0).
/// Initialising OpenSSL first, without that exit handler, closes the race.
pub fn connect_postgres(url: &str) -> ConnectionResult<diesel::PgConnection> {
    openssl::init();
    diesel::PgConnection::establish(url)
}

/// Opens connections for the pool, of the backend the target names.
#[derive(Debug, Clone)]
pub struct Manager {
    target: Target,
    pooler: Pooler,
}

impl Manager {
    pub fn new(target: Target, pooler: Pooler) -> Self {
        Self { target, pooler }
    }

    fn establish(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        use diesel::r2d2::Error;
        match &self.target {
            Target::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path).map_err(Error::ConnectionError)?;
                sqlite_pragmas(&mut conn).map_err(Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
            Target::Postgres(url) => {
                let mut conn = connect_postgres(url).map_err(Error::ConnectionError)?;
                if self.pooler == Pooler::Transaction {
                    // Diesel then sends every query with its parameters in
                    // one message (the unnamed statement), which a pooler can
                    // hand to any server session; a named statement exists in
                    // one session only. The two `SET`s diesel sends on
                    // connecting (time zone, client encoding) are parameters
                    // PgBouncer tracks per client and applies for it.
                    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
                }
                Ok(DbConnection::Postgresql(conn))
            }
        }
    }
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        ping(conn).map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        match conn {
            DbConnection::Postgresql(c) => c.is_broken(),
            DbConnection::Sqlite(c) => c.is_broken(),
        }
    }
}

/// Pragmas set on every SQLite connection. `busy_timeout` comes first so that
/// even switching to WAL waits for a lock instead of failing with "database
/// is locked". `cache_size` keeps at most 512 KB of pages per connection
/// (SQLite's default is 2 MB, and a cache only ever grows): the pages a
/// sign-in touches (index roots, the newest sessions) stay in it, and any
/// other is one read from the OS page cache away.
fn sqlite_pragmas(conn: &mut SqliteConnection) -> QueryResult<()> {
    conn.batch_execute(
        "PRAGMA busy_timeout = 5000;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -512;",
    )
}

/// `DATABASE_URL` may be a plain path or a `sqlite:`/`sqlite://` URL.
pub fn sqlite_path(database_url: &str) -> &str {
    database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .unwrap_or(database_url)
}

/// Opens the pool. A PostgreSQL server that does not answer is retried with
/// back-off for `startup_timeout`, then its own error is returned (never a
/// pool timeout that hides it). A SQLite file is created if needed.
pub fn build_pool(database_url: &str, options: PoolOptions) -> Result<DbPool, DbSetupError> {
    let target = Target::from_url(database_url);
    let manager = Manager::new(target.clone(), options.pooler);
    // One connection first: it proves the server answers (and on SQLite
    // switches the file to WAL before the pool opens its connections at once,
    // which would otherwise race for the exclusive lock the switch needs).
    let started = Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        match manager.establish() {
            Ok(_) => break,
            Err(e)
                if matches!(target, Target::Postgres(_))
                    && started.elapsed() < options.startup_timeout =>
            {
                let pause = wait.min(options.startup_timeout.saturating_sub(started.elapsed()));
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "database not reachable yet");
                std::thread::sleep(pause);
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let pool = Pool::builder()
        .max_size(options.size)
        .min_idle(Some(options.size.min(2)))
        // r2d2 opens and retires connections in the background; one thread
        // does that for a pool this size (its default is three).
        .thread_pool(Arc::new(
            ScheduledThreadPool::builder()
                .num_threads(1)
                .thread_name_pattern("gatehouse-db-upkeep")
                .build(),
        ))
        .connection_timeout(options.timeout)
        .build(manager)?;
    Ok(DbPool {
        pool,
        threads: BlockingThreads::new("gatehouse-db", options.size as usize)?,
        timeout: options.timeout,
    })
}

/// What the log may say about a database: the SQLite file, or the PostgreSQL
/// host and database (never the user's password).
pub fn describe(database_url: &str) -> String {
    match Target::from_url(database_url) {
        Target::Sqlite(path) => format!("SQLite file {path}"),
        Target::Postgres(url) => {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            let rest = rest.split('?').next().unwrap_or(rest);
            format!("PostgreSQL {rest}")
        }
    }
}
