//! Deciding a refresh inside its transaction: rotate the token, serve a tab
//! racing inside the grace window, or end a session whose token was replayed
//! or whose time is up.

use chrono::NaiveDateTime;

use super::events::{self, EventKind};
use super::service::{Requester, SessionPolicy, SessionUser, delta};
use super::sessions::NewTokens;
use crate::auth::token::{hash_token, new_token};
use crate::db::models::Session;
use crate::db::{DbConnection, sessions};
use crate::ids::SessionId;

/// What a refresh found, decided inside its transaction.
pub(super) enum Refreshed {
    Renewed(SessionUser, NewTokens),
    Refused,
    /// Expired, idle or replayed: the session was ended at that instant.
    Ended(SessionId, NaiveDateTime),
}

/// Whether `session` is inside its absolute lifetime and its idle limit.
pub(super) fn in_time(session: &Session, policy: &SessionPolicy, now: NaiveDateTime) -> bool {
    now < session.expires_at && now - session.last_seen_at <= delta(policy.idle_timeout)
}

/// Whether a token rotated at `rotated_at` may still be presented: a tab
/// racing the rotation, not a copy replayed later.
pub(super) fn in_grace(
    rotated_at: Option<NaiveDateTime>,
    policy: &SessionPolicy,
    now: NaiveDateTime,
) -> bool {
    rotated_at.is_some_and(|at| now - at <= delta(policy.refresh_reuse_grace))
}

pub(super) fn refresh_in_transaction(
    conn: &mut DbConnection,
    presented_hash: &str,
    policy: &SessionPolicy,
    who: &Requester,
    now: NaiveDateTime,
) -> diesel::QueryResult<Refreshed> {
    match sessions::find_by_refresh_hash(conn, presented_hash)? {
        Some((session, name)) => {
            refresh_found(conn, session, name, presented_hash, policy, who, now)
        }
        None => Ok(Refreshed::Refused),
    }
}

/// Decides a refresh for `session` as it was read: rotate when the presented
/// token is its current one (a compare-and-swap, so of two racing refreshes
/// exactly one rotates and the other takes the grace path), grace when it is
/// the previous one and was rotated a moment ago, else end the session.
fn refresh_found(
    conn: &mut DbConnection,
    session: Session,
    name: String,
    presented_hash: &str,
    policy: &SessionPolicy,
    who: &Requester,
    now: NaiveDateTime,
) -> diesel::QueryResult<Refreshed> {
    if session.revoked_at.is_some() {
        return Ok(Refreshed::Refused);
    }
    let end = |conn: &mut DbConnection, reason: EventKind| -> diesel::QueryResult<_> {
        sessions::revoke(conn, &session.id, &session.user_id, now, reason.as_str())?;
        events::record(
            conn,
            Some(&session.user_id),
            Some(&session.id),
            reason,
            who,
            now,
        )?;
        Ok(Refreshed::Ended(session.id.clone(), now))
    };
    if !in_time(&session, policy, now) {
        return end(conn, EventKind::SessionExpired);
    }

    let user = SessionUser {
        user_id: session.user_id.clone(),
        session_id: session.id.clone(),
        name,
        // Not renewed by a refresh: when the session last proved who it is.
        auth_time: session
            .authenticated_at
            .unwrap_or(session.created_at)
            .and_utc()
            .timestamp(),
    };
    let mut previous = session.previous_refresh_hash.clone();
    let mut rotated_at = session.rotated_at;
    if session.refresh_hash == presented_hash {
        let refresh = new_token();
        if sessions::rotate_refresh(
            conn,
            &session.id,
            presented_hash,
            &hash_token(&refresh),
            now,
        )? {
            let tokens = NewTokens {
                id: session.id.clone(),
                refresh_token: Some(refresh),
                remember: session.remember,
            };
            return Ok(Refreshed::Renewed(user, tokens));
        }
        // Another refresh swapped the token between our read and our write:
        // this one lost the race and is judged against the row as it is now.
        match sessions::find(conn, &session.id)? {
            Some(current) if current.revoked_at.is_none() => {
                previous = current.previous_refresh_hash;
                rotated_at = current.rotated_at;
            }
            _ => return Ok(Refreshed::Refused),
        }
    }

    // The previous token: a racing tab inside the grace window gets a new
    // access token but no new refresh token (its browser already holds the
    // newest one); anyone later, or with an older token, is replaying a copy.
    let is_previous = previous.as_deref() == Some(presented_hash);
    let within_grace = in_grace(rotated_at, policy, now);
    if is_previous && within_grace {
        let tokens = NewTokens {
            id: session.id.clone(),
            refresh_token: None,
            remember: session.remember,
        };
        return Ok(Refreshed::Renewed(user, tokens));
    }
    tracing::warn!(
        event = EventKind::RefreshReuse.as_str(),
        user_id = %session.user_id,
        session_id = %session.id,
        ip = %who.ip,
        "a rotated refresh token was presented again; session revoked"
    );
    end(conn, EventKind::RefreshReuse)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::accounts::sessions::create;
    use crate::db::{self, users};
    use crate::ids::{Email, UserId};

    /// The compare-and-swap's losing side: the row was read with the
    /// presented token as current, then another refresh rotated it.
    #[test]
    fn a_refresh_that_loses_the_swap_takes_the_grace_path() {
        let dir = tempfile::tempdir().unwrap();
        let pool = db::build_pool(
            dir.path().join("race.db").to_str().unwrap(),
            db::PoolOptions::default(),
        )
        .unwrap();
        db::run_migrations(&pool).unwrap();
        let mut conn = pool.get_blocking().unwrap();
        let now = chrono::Utc::now().naive_utc();
        let who = Requester {
            ip: "192.0.2.9".into(),
            user_agent: "race test".into(),
        };
        users::insert(
            &mut conn,
            &crate::db::models::NewUser {
                id: &UserId::from_stored("u1"),
                email: &Email::new("race@example.com"),
                name: "Racer",
                password_hash: "x",
                created_at: now,
                updated_at: now,
                registration_ip: None,
                email_verified_at: Some(now),
            },
        )
        .unwrap();
        let policy = SessionPolicy {
            refresh_reuse_grace: Duration::from_secs(10),
            max_age: Duration::from_secs(3600),
            max_age_remember: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(3600),
            access_token_ttl: Duration::from_secs(600),
        };
        let tokens = create(
            &mut conn,
            &policy,
            &UserId::from_stored("u1"),
            &who,
            false,
            now,
        )
        .unwrap();
        let presented = hash_token(tokens.refresh_token.as_deref().unwrap());
        let (as_read, name) = sessions::find_by_refresh_hash(&mut conn, &presented)
            .unwrap()
            .unwrap();
        // The winner rotates first.
        assert!(
            sessions::rotate_refresh(
                &mut conn,
                &as_read.id,
                &presented,
                &hash_token("winner"),
                now
            )
            .unwrap()
        );

        let outcome = refresh_found(
            &mut conn,
            as_read.clone(),
            name.clone(),
            &presented,
            &policy,
            &who,
            now,
        )
        .unwrap();

        match outcome {
            Refreshed::Renewed(user, tokens) => {
                assert_eq!(user.session_id, as_read.id);
                assert!(
                    tokens.refresh_token.is_none(),
                    "the loser gets no new refresh token"
                );
            }
            _ => panic!("the loser of the race must take the grace path"),
        }
        assert!(
            sessions::find(&mut conn, &as_read.id)
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none()
        );

        // A token two rotations old is a replay, even inside the grace window.
        assert!(
            sessions::rotate_refresh(
                &mut conn,
                &as_read.id,
                &hash_token("winner"),
                &hash_token("third"),
                now
            )
            .unwrap()
        );
        let replay = refresh_found(
            &mut conn,
            as_read.clone(),
            name,
            &presented,
            &policy,
            &who,
            now,
        )
        .unwrap();
        assert!(matches!(replay, Refreshed::Ended(..)));
    }
}
