//! The background tasks that keep this instance's revocation list current:
//! a poll of the database that never misses a commit, and, on PostgreSQL, a
//! `LISTEN` that brings other instances' revocations within milliseconds.

use std::time::Duration;

use actix_web::web;
use gatehouse_core::accounts::Sessions;
use gatehouse_core::db;

/// How often the listener reads what its connection has received.
const LISTEN_EVERY: Duration = Duration::from_millis(20);

/// Takes in revocations other instances push, within about [`LISTEN_EVERY`].
pub(super) async fn listen_for_revocations(
    sessions: web::Data<Sessions>,
    listener: db::notify::RevocationListener,
) {
    let listener = std::sync::Arc::new(std::sync::Mutex::new(listener));
    let mut ticks = tokio::time::interval(LISTEN_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let listener = listener.clone();
        let polled = tokio::task::spawn_blocking(move || {
            listener
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .poll()
        })
        .await;
        match polled {
            Ok(ids) => sessions.revoked_elsewhere(ids),
            Err(e) => tracing::warn!(error = %e, "the revocation listener failed"),
        }
    }
}

/// Keeps the revocation list current with revocations made by other
/// instances (or directly in the database).
pub(super) async fn poll_revocations(sessions: web::Data<Sessions>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = sessions.poll_revocations().await {
            tracing::warn!(error = %e, "polling revoked sessions failed");
        }
    }
}
