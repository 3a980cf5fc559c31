//! Database access: the connection pool, embedded migrations, the one helper
//! that runs blocking work off the async workers ([`run`]) and the query
//! functions. Query functions are plain synchronous functions over a `&mut`
//! connection that know nothing of HTTP. Backend specifics (SQLite pragmas,
//! transaction modes) stay in this module.

pub mod events;
pub mod models;
pub mod notify;
pub mod resets;
pub mod schema;
pub mod sessions;
pub mod throttle;
pub mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::{SimpleConnection as _, TransactionManager as _};
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection as _};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use scheduled_thread_pool::ScheduledThreadPool;

use crate::threads::{BlockingThreads, RunError};

/// The connection every query function takes: SQLite or PostgreSQL, chosen by
/// `DATABASE_URL`. Query functions are written once, for both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// The connection pool and as many threads as it has connections: work for
/// the database waits for a free thread on the async side (at most the pool's
/// timeout), so a burst of requests queues there instead of parking one
/// thread per request on a connection checkout.
#[derive(Clone)]
pub struct DbPool {
    pool: Pool<Manager>,
    threads: BlockingThreads,
    timeout: Duration,
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

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Serialises migrations of instances that start together (any fixed key).
const MIGRATION_LOCK_KEY: i64 = 0x6761_7465_686f_7573; // "gatehous"

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

/// Pool sizes and waits, from settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub size: u32,
    /// How long a checkout waits before the caller answers 503.
    pub timeout: Duration,
    /// How long start-up retries an unreachable PostgreSQL server.
    pub startup_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            size: 8,
            timeout: Duration::from_secs(3),
            startup_timeout: Duration::from_secs(30),
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
}

impl Manager {
    pub fn new(target: Target) -> Self {
        Self { target }
    }

    fn establish(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        use diesel::r2d2::Error;
        match &self.target {
            Target::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path).map_err(Error::ConnectionError)?;
                sqlite_pragmas(&mut conn).map_err(Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
            Target::Postgres(url) => connect_postgres(url)
                .map(DbConnection::Postgresql)
                .map_err(Error::ConnectionError),
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

/// Start-up failures of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("cannot open the database: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("cannot open the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("cannot open the database: {0}")]
    Establish(#[from] diesel::r2d2::Error),
    #[error("cannot start the database threads: {0}")]
    Threads(#[from] std::io::Error),
    #[error("cannot apply migrations: {0}")]
    Migrations(String),
    /// `MIGRATE_ON_START=false` and the database is behind the binary.
    #[error(
        "the database has pending migrations ({}); run `gatehouse migrate` first",
        .0.join(", ")
    )]
    Pending(Vec<String>),
}

/// A failure to reach or query the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time: the database does not answer.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] diesel::r2d2::PoolError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// Every connection stayed busy for the whole pool timeout.
    #[error("the database is unavailable: no connection was free in time")]
    Busy,
    /// The blocking task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

impl DbError {
    /// Whether the database did not answer: no connection in time, or the
    /// connection was lost under a query (the pool then replaces it).
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        matches!(
            self,
            Self::Unavailable(_)
                | Self::Busy
                | Self::Query(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _))
                | Self::Query(Error::BrokenTransactionManager)
        )
    }
}

/// Takes a pooled connection and runs `f` with it on the pool's threads, so
/// neither the checkout (which can wait) nor the queries hold up an async
/// worker. Every database call of the crate goes through here.
pub async fn run<T, E, F>(pool: &DbPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let (threads, wait, pool) = (&pool.threads, pool.timeout, pool.pool.clone());
    threads
        .run(Some(wait), move || {
            let mut conn = pool.get().map_err(DbError::Unavailable)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| match e {
            RunError::Busy(_) => DbError::Busy,
            RunError::Failed(reason) => DbError::Task(reason),
        })?
}

/// Runs `f` in a write transaction ([`write_transaction`]) on a pooled
/// connection on the database's threads ([`run`]): how the domain changes
/// rows. `f`'s error type takes both the pool's and the queries' errors, so
/// `?` works on either inside it.
pub async fn write<T, E, F>(pool: &DbPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + From<diesel::result::Error> + Send + 'static,
{
    run(pool, move |conn| write_transaction(conn, f)).await
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
    let manager = Manager::new(target.clone());
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

/// The names of migrations the database has not had yet.
pub fn pending_migrations(pool: &DbPool) -> Result<Vec<String>, DbSetupError> {
    let mut conn = pool.pool.get()?;
    let names = match &mut *conn {
        DbConnection::Sqlite(c) => pending(c, SQLITE_MIGRATIONS),
        DbConnection::Postgresql(c) => pending(c, POSTGRES_MIGRATIONS),
    };
    names.map_err(|e| DbSetupError::Migrations(e.to_string()))
}

fn pending<C: MigrationHarness<B>, B: diesel::backend::Backend>(
    conn: &mut C,
    migrations: EmbeddedMigrations,
) -> diesel::migration::Result<Vec<String>> {
    Ok(conn
        .pending_migrations(migrations)?
        .iter()
        .map(|m| m.name().to_string())
        .collect())
}

/// Applies every migration not yet applied; returns their versions. On
/// PostgreSQL under an advisory lock, so instances starting together take
/// turns and the later ones find nothing to do.
pub fn run_migrations(pool: &DbPool) -> Result<Vec<String>, DbSetupError> {
    let mut conn = pool.pool.get()?;
    let failed = |e: &dyn std::fmt::Display| DbSetupError::Migrations(e.to_string());
    let applied = match &mut *conn {
        DbConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.iter().map(ToString::to_string).collect())
            .map_err(|e| failed(&e))?,
        DbConnection::Postgresql(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(c)
                .map_err(|e| failed(&e))?;
            let applied = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
                .map_err(|e| failed(&e));
            let unlocked =
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                    .execute(c);
            let applied = applied?;
            unlocked.map_err(|e| failed(&e))?;
            applied
        }
    };
    Ok(applied)
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

/// Runs `f` in a transaction that takes the write lock up front on SQLite. A
/// deferred SQLite transaction that reads and then writes cannot wait for the
/// lock and fails at once under contention; `BEGIN IMMEDIATE` takes it first
/// so that `busy_timeout` applies. PostgreSQL takes row locks as it goes.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    type Manager = <DbConnection as Connection>::TransactionManager;
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    diesel::connection::AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(value) => match Manager::commit_transaction(conn) {
            Ok(()) => Ok(value),
            Err(e) => {
                // A failed COMMIT leaves the transaction open; end it.
                let _ = Manager::rollback_transaction(conn);
                Err(e.into())
            }
        },
        Err(e) => {
            Manager::rollback_transaction(conn)?;
            Err(e)
        }
    }
}

/// `SELECT 1`, for the readiness probe.
pub fn ping(conn: &mut DbConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).map(|_| ())
}
