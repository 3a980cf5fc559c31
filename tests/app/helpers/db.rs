//! The test's own database, and direct access to it: seeding users the way
//! an operator would.
//!
//! With `TEST_DATABASE_URL` (a PostgreSQL server's admin URL) each test gets a
//! database of its own, created with a random name and dropped when the test
//! ends, pass or fail; without it, a SQLite file in the test's temporary
//! directory, and one line says the PostgreSQL run was skipped. Tests that
//! need PostgreSQL itself are `#[ignore = "needs TEST_DATABASE_URL"]` and take
//! `TestDatabase::postgres()`, which fails them when the variable is unset.
//! Those that also need a transaction-mode pooler (`TEST_DATABASE_POOLER_URL`)
//! reach the same database through it with `TestDatabase::through_pooler()`.

use std::io::Write as _;
use std::sync::Once;

use diesel::RunQueryDsl as _;
use gatehouse_core::db::{self, DbPool};

/// A database for one test; a PostgreSQL one is dropped on `Drop`.
pub struct TestDatabase {
    pub url: String,
    /// The admin URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh database: PostgreSQL when `TEST_DATABASE_URL` is set, else a
    /// SQLite file in `dir`.
    pub fn new(dir: &std::path::Path) -> Self {
        if let Some(admin) = postgres_admin_url() {
            return Self::create_postgres(admin);
        }
        static SKIPPED: Once = Once::new();
        SKIPPED.call_once(|| {
            // Straight to stderr: the test harness captures `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL run skipped: TEST_DATABASE_URL is not set (tests/app uses SQLite; the tests that need PostgreSQL are ignored)"
            );
        });
        Self::sqlite(dir)
    }

    /// A fresh SQLite file in `dir`, whether or not `TEST_DATABASE_URL` is set.
    pub fn sqlite(dir: &std::path::Path) -> Self {
        Self {
            url: dir.join("test.db").display().to_string(),
            postgres: None,
        }
    }

    /// A fresh PostgreSQL database, for tests that need one (and carry
    /// `#[ignore = "needs TEST_DATABASE_URL"]`). Run with `--include-ignored`
    /// but without the variable, the test fails here rather than passing
    /// without having run.
    pub fn postgres() -> Self {
        let admin = postgres_admin_url().unwrap_or_else(|| {
            panic!(
                "this test needs PostgreSQL: set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
            )
        });
        Self::create_postgres(admin)
    }

    /// This PostgreSQL database reached through the transaction-mode pooler
    /// at `TEST_DATABASE_POOLER_URL` (which serves every database under its
    /// own name). Fails the test without the variable, or when what answers
    /// there does not share server connections between clients as a
    /// transaction-mode pooler does.
    pub fn through_pooler(&self) -> String {
        let (_, name) = self
            .postgres
            .as_ref()
            .unwrap_or_else(|| panic!("only a PostgreSQL database can go through the pooler"));
        let pooler = std::env::var("TEST_DATABASE_POOLER_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "this test needs a transaction-mode pooler: set TEST_DATABASE_POOLER_URL (e.g. postgres://postgres@127.0.0.1:6432/postgres; .ci/run starts PgBouncer and sets it)"
                )
            });
        let url = with_database(&pooler, name);
        assert_pools_transactions(&url);
        url
    }

    fn create_postgres(admin: String) -> Self {
        let name = format!("gatehouse_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = gatehouse_core::db::connect_postgres(&admin)
            .unwrap_or_else(|e| panic!("TEST_DATABASE_URL does not answer: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .unwrap();
        Self {
            url: with_database(&admin, &name),
            postgres: Some((admin, name)),
        }
    }
}

/// Two clients of `url`, one transaction each in turn, must be served by
/// one server process: a transaction-mode pooler hands the connection the
/// first released to the second (PgBouncer reuses the most recent), where
/// PostgreSQL itself, or a session-mode pooler, gives each client its own.
/// Nothing else uses this fresh database yet.
fn assert_pools_transactions(url: &str) {
    use diesel::connection::{CacheSize, Connection as _};
    let backend = |conn: &mut diesel::PgConnection| -> i32 {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
            "pg_backend_pid()",
        ))
        .get_result(conn)
        .unwrap()
    };
    let mut clients = [(); 2].map(|()| {
        let mut conn = db::connect_postgres(url)
            .unwrap_or_else(|e| panic!("TEST_DATABASE_POOLER_URL does not answer: {e}"));
        conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        conn
    });
    let first = backend(&mut clients[0]);
    let second = backend(&mut clients[1]);
    assert_eq!(
        first, second,
        "TEST_DATABASE_POOLER_URL does not pool transactions: two clients got two server processes"
    );
}

/// `TEST_DATABASE_URL`, when it is set and not empty.
fn postgres_admin_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.postgres
            && let Ok(mut conn) = gatehouse_core::db::connect_postgres(admin)
        {
            // FORCE ends the app's own connections, still open in its pool.
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base
        .rsplit_once('/')
        .filter(|(s, _)| s.contains("://") && !s.ends_with('/'))
        .unwrap_or((base, ""));
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// A user that exists in every fresh app.
pub struct TestUser {
    pub id: String,
    pub name: String,
    pub email: String,
    pub password: String,
}

/// Inserts a user directly (bcrypt cost 4).
pub async fn seed_user(pool: &DbPool, name: &str, email: &str, password: &str) -> TestUser {
    seed_user_at_cost(pool, name, email, password, 4).await
}

/// Inserts a user directly, the password hashed at bcrypt `cost`.
pub async fn seed_user_at_cost(
    pool: &DbPool,
    name: &str,
    email: &str,
    password: &str,
    cost: u32,
) -> TestUser {
    let pool = pool.clone();
    let user = TestUser {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        email: email.to_owned(),
        password: password.to_owned(),
    };
    let (id, name, email, password) = (
        user.id.clone(),
        user.name.clone(),
        user.email.clone(),
        user.password.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let hash = bcrypt::hash(&password, cost).unwrap();
        let now = chrono::Utc::now().naive_utc();
        let mut conn = pool.get_blocking().unwrap();
        db::users::insert(
            &mut conn,
            &db::models::NewUser {
                id: &gatehouse_core::ids::UserId::from_stored(id),
                email: &gatehouse_core::ids::Email::new(&email),
                name: &name,
                password_hash: &hash,
                created_at: now,
                updated_at: now,
                registration_ip: None,
                email_verified_at: Some(now),
            },
        )
        .unwrap();
    })
    .await
    .unwrap();
    user
}

/// How many accounts have this e-mail address.
pub async fn accounts_with_email(pool: &DbPool, email: &str) -> i64 {
    use diesel::{ExpressionMethods as _, QueryDsl as _};
    use gatehouse_core::db::schema::users;
    let (pool, email) = (pool.clone(), email.to_owned());
    tokio::task::spawn_blocking(move || {
        users::table
            .filter(users::email.eq(email))
            .count()
            .get_result(&mut pool.get_blocking().unwrap())
            .unwrap()
    })
    .await
    .unwrap()
}

/// Marks `email`'s address as not confirmed (an account registered while
/// confirmation was off).
pub async fn unconfirm(pool: &DbPool, email: &str) {
    use diesel::prelude::*;
    use gatehouse_core::db::schema::users;
    let (pool, email) = (pool.clone(), email.to_owned());
    tokio::task::spawn_blocking(move || {
        diesel::update(users::table.filter(users::email.eq(email)))
            .set(users::email_verified_at.eq(None::<chrono::NaiveDateTime>))
            .execute(&mut pool.get_blocking().unwrap())
            .unwrap();
    })
    .await
    .unwrap();
}
