//! The embedded migrations of both backends, and applying them (on
//! PostgreSQL under an advisory lock, so instances starting together take
//! turns).

use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DbConnection, DbPool, DbSetupError};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Serialises migrations of instances that start together (any fixed key).
const MIGRATION_LOCK_KEY: i64 = 0x6761_7465_686f_7573; // "gatehous"

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
