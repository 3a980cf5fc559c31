//! Database access: the one helper that runs blocking work off the async
//! workers ([`run`], [`write`]), the write transaction, and the query
//! functions (one module per table). Query functions are plain synchronous
//! functions over a `&mut` connection that know nothing of HTTP. The pool and
//! its connections (SQLite's pragmas) are in `pool`, the embedded migrations
//! in `migrations`; backend specifics stay inside `db`.

mod migrations;
mod pool;

pub mod confirmations;
pub mod events;
pub mod models;
pub mod notify;
pub mod passkeys;
pub mod pending;
pub mod resets;
pub mod schema;
pub mod sessions;
pub mod throttle;
pub mod two_factor;
pub mod users;

use diesel::connection::TransactionManager as _;
use diesel::prelude::*;

pub use migrations::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, pending_migrations, run_migrations};
pub use pool::{
    DbPool, Manager, PoolOptions, PooledConn, Pooler, Target, build_pool, connect_postgres,
    describe, sqlite_path,
};

use crate::threads::RunError;

/// The connection every query function takes: SQLite or PostgreSQL, chosen by
/// `DATABASE_URL`. Query functions are written once, for both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
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
