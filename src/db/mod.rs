//! Database access: the connection pool, embedded migrations, the one helper
//! that runs blocking work off the async workers ([`run`]) and the query
//! functions. Query functions are plain synchronous functions over a `&mut`
//! connection that know nothing of HTTP. Backend specifics (SQLite pragmas,
//! transaction modes) stay in this module.

pub mod events;
pub mod models;
pub mod schema;
pub mod sessions;
pub mod throttle;
pub mod users;

use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

/// The connection type every query function takes.
pub type DbConnection = SqliteConnection;
pub type DbPool = Pool<ConnectionManager<DbConnection>>;
pub type PooledConn = PooledConnection<ConnectionManager<DbConnection>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Start-up failures of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("cannot open the database: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("cannot open the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("cannot apply migrations: {0}")]
    Migrations(String),
    #[error("cannot configure the database: {0}")]
    Configure(String),
}

/// A failure to reach or query the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time: the database does not answer.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] diesel::r2d2::PoolError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// The blocking task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

/// Takes a pooled connection and runs `f` with it on tokio's blocking pool, so
/// neither the checkout (which can wait) nor the queries hold up an async
/// worker. Every database call of the crate goes through here.
pub async fn run<T, E, F>(pool: &DbPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(DbError::Unavailable)?;
        f(&mut conn)
    })
    .await
    .map_err(|e| DbError::Task(e.to_string()))?
}

/// `DATABASE_URL` may be a plain path or a `sqlite:`/`sqlite://` URL.
pub fn sqlite_path(database_url: &str) -> &str {
    database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .unwrap_or(database_url)
}

/// Pragmas set on every pooled SQLite connection. `busy_timeout` comes first so
/// that even switching to WAL waits for a lock instead of failing with
/// "database is locked".
#[derive(Debug, Clone, Copy)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "PRAGMA busy_timeout = 5000;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens the pool (creating the database file if needed).
pub fn build_pool(database_url: &str) -> Result<DbPool, DbSetupError> {
    let path = sqlite_path(database_url);
    // Switch the file to WAL through one connection first: WAL is a property of
    // the file, and the pool below opens its connections concurrently, which
    // would otherwise race for the exclusive lock the switch needs.
    let mut first = SqliteConnection::establish(path)?;
    SqlitePragmas
        .on_acquire(&mut first)
        .map_err(|e| DbSetupError::Configure(e.to_string()))?;
    drop(first);
    let manager = ConnectionManager::<DbConnection>::new(path);
    let pool = Pool::builder()
        .max_size(8)
        .connection_timeout(Duration::from_secs(5))
        .connection_customizer(Box::new(SqlitePragmas))
        .build(manager)?;
    Ok(pool)
}

/// Applies every migration not yet applied; returns their versions.
pub fn run_migrations(pool: &DbPool) -> Result<Vec<String>, DbSetupError> {
    let mut conn = pool.get()?;
    conn.run_pending_migrations(MIGRATIONS)
        .map(|applied| applied.iter().map(ToString::to_string).collect())
        .map_err(|e| DbSetupError::Migrations(e.to_string()))
}

/// What the log may say about a database: the SQLite file it is (a URL's
/// credentials, were there any, never appear).
pub fn describe(database_url: &str) -> String {
    format!("SQLite file {}", sqlite_path(database_url))
}

/// Runs `f` in a transaction that takes the write lock up front. On SQLite a
/// deferred transaction that reads and then writes cannot wait for the lock and
/// fails at once under contention; taking it first lets `busy_timeout` apply.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    conn.immediate_transaction(f)
}

/// `SELECT 1`, for the readiness probe.
pub fn ping(conn: &mut DbConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).map(|_| ())
}

/// Current time as stored in the database (UTC, no zone).
pub fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
