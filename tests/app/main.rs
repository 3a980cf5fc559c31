//! Integration tests: one binary, one module per feature.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod helpers;

/// A scenario (`async fn(TestApp)`) run as two tests: `$sqlite` on a fresh
/// SQLite file, and `$postgres` on a fresh PostgreSQL database (ignored
/// without `TEST_DATABASE_URL`; CI runs it).
macro_rules! on_sqlite_and_postgres {
    ($scenario:ident => $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            $scenario(spawn_app_on_sqlite().await).await;
        }

        #[tokio::test]
        #[ignore = "needs TEST_DATABASE_URL"]
        async fn $postgres() {
            $scenario(spawn_app_on_postgres().await).await;
        }
    };
}

mod api;
mod auth_flow;
mod bad_input;
mod cross_site;
mod database_down;
mod email_change;
mod faults;
mod first_minutes;
mod forms;
mod hostile_tokens;
mod instances;
mod leaving;
mod logs;
mod operator;
mod passkeys;
mod password_reset;
mod races;
mod schema;
mod sessions;
mod startup;
mod throttling;
mod two_factor;
mod verification;
