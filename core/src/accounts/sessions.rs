//! The session lifecycle: create, verify, refresh (rotate), revoke one, the
//! others or all, and change the password.
//!
//! A session is a `sessions` row. Its browser holds a short-lived access token
//! (a JWT checked without the database) and a refresh token (32 random bytes,
//! stored only as a SHA-256 hash). A valid refresh token gets a new pair; it is
//! single-use, and presenting a rotated one after the grace window means it was
//! copied, so the session is revoked. Every revocation updates the database
//! and this instance's in-memory revocation list in the same call.

use chrono::NaiveDateTime;

use super::events::{self, Event, EventKind};
use super::service::{
    Accounts, IssuedSession, PasswordChangeError, PasswordErrors, Requester, RevokeError,
    ServiceError, SessionPolicy, SessionUser, Sessions, SignedIn, delta,
};
use crate::auth::token::{MAX_TOKEN_LEN, hash_token, new_token};
use crate::db::models::{NewSession, Session};
use crate::db::{self, DbConnection, events as event_rows, sessions, users};
use crate::ids::{Email, SessionId, UserId};
use crate::secret::Password;

/// How many events the account overview lists.
const RECENT_EVENTS: i64 = 20;

/// A session row just written, with the refresh token the client gets.
#[derive(Debug)]
pub(super) struct NewTokens {
    pub id: SessionId,
    pub refresh_token: Option<String>,
    pub remember: bool,
}

/// Who an account is, as the JSON API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub id: UserId,
    pub name: String,
    pub email: Email,
}

/// One live session as its owner sees it.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub id: SessionId,
    pub ip: String,
    pub user_agent: String,
    pub started: NaiveDateTime,
    pub last_seen: NaiveDateTime,
}

/// An account's live sessions and recent activity.
#[derive(Debug)]
pub struct AccountOverview {
    /// Newest first.
    pub sessions: Vec<SessionSummary>,
    /// Newest first.
    pub events: Vec<Event>,
}

/// Creates a session row inside the caller's transaction.
pub(super) fn create(
    conn: &mut DbConnection,
    policy: &SessionPolicy,
    user_id: &UserId,
    who: &Requester,
    remember: bool,
    now: NaiveDateTime,
) -> diesel::QueryResult<NewTokens> {
    let id = SessionId::random();
    let refresh = new_token();
    let lifetime = if remember {
        policy.max_age_remember
    } else {
        policy.max_age
    };
    sessions::insert(
        conn,
        &NewSession {
            id: &id,
            user_id,
            created_at: now,
            last_seen_at: now,
            ip: &who.ip,
            user_agent: &who.user_agent,
            refresh_hash: &hash_token(&refresh),
            remember,
            expires_at: now + delta(lifetime),
        },
    )?;
    Ok(NewTokens {
        id,
        refresh_token: Some(refresh),
        remember,
    })
}

/// What a refresh found, decided inside its transaction.
enum Refreshed {
    Renewed(SessionUser, NewTokens),
    Refused,
    /// Expired, idle or replayed: the session was ended at that instant.
    Ended(SessionId, NaiveDateTime),
}

impl Sessions {
    /// Signs an access token for `user` and pairs it with the session's tokens.
    pub(super) fn issue(
        &self,
        user: SessionUser,
        tokens: NewTokens,
    ) -> Result<SignedIn, ServiceError> {
        let access_token =
            self.keys
                .issue(&user.user_id, &user.session_id, &user.name, user.auth_time)?;
        let session = IssuedSession {
            session_id: tokens.id,
            access_token,
            refresh_token: tokens.refresh_token,
            refresh_max_age: tokens.remember.then_some(self.policy.max_age_remember),
        };
        Ok(SignedIn { user, session })
    }

    /// Checks an access token: signature and claims, then the revocation list.
    /// No database access.
    pub fn verify_access(&self, token: &str) -> Option<SessionUser> {
        match self.keys.verify(token) {
            Ok(claims) => {
                let session_id = SessionId::from_stored(claims.sid);
                if self.revoked.is_revoked(&session_id) {
                    tracing::debug!(session_id = %session_id, "access token of a revoked session");
                    return None;
                }
                Some(SessionUser {
                    user_id: UserId::from_stored(claims.sub),
                    session_id,
                    name: claims.name,
                    auth_time: claims.auth_time,
                })
            }
            Err(reason) => {
                tracing::debug!(%reason, "access token refused");
                None
            }
        }
    }

    /// Trades a refresh token for new tokens; `None` means sign in again
    /// (unknown, revoked, expired, idle, or a replayed rotated token).
    pub async fn refresh(
        &self,
        token: String,
        who: &Requester,
    ) -> Result<Option<SignedIn>, ServiceError> {
        if token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let (policy, who) = (self.policy.clone(), who.clone());
        let clock = self.clock.clone();
        let outcome = db::run(&self.pool, move |conn| {
            let hash = hash_token(&token);
            // Unknown or dead tokens (what a flood of made-up cookies sends)
            // cost one indexed read and never take the write lock.
            let live = sessions::find_by_refresh_hash(conn, &hash)?
                .is_some_and(|(session, _)| session.revoked_at.is_none());
            if !live {
                return Ok::<_, ServiceError>(Refreshed::Refused);
            }
            Ok(db::write_transaction(conn, |conn| {
                refresh_in_transaction(conn, &hash, &policy, &who, clock.now())
            })?)
        })
        .await?;
        match outcome {
            Refreshed::Renewed(user, tokens) => Ok(Some(self.issue(user, tokens)?)),
            Refreshed::Refused => Ok(None),
            Refreshed::Ended(session_id, at) => {
                self.revoked.insert([session_id], at);
                Ok(None)
            }
        }
    }

    /// The live session a refresh token belongs to, read without rotating it
    /// or ending anything: what a form's CSRF check needs to know which
    /// session its token was bound to. `None` for a token that [`refresh`]
    /// would refuse (unknown, revoked, expired, idle, or a rotated one past
    /// the grace window).
    ///
    /// [`refresh`]: Self::refresh
    pub async fn session_of_refresh(
        &self,
        token: String,
    ) -> Result<Option<SessionId>, ServiceError> {
        if token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let hash = hash_token(&token);
        let presented = hash.clone();
        let found = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(sessions::find_by_refresh_hash(conn, &presented)?)
        })
        .await?;
        let (policy, now) = (&self.policy, self.clock.now());
        Ok(found.and_then(|(session, _)| {
            let live = session.revoked_at.is_none()
                && now < session.expires_at
                && now - session.last_seen_at <= delta(policy.idle_timeout);
            let current = session.refresh_hash == hash;
            let in_grace = session.previous_refresh_hash.as_deref() == Some(hash.as_str())
                && session
                    .rotated_at
                    .is_some_and(|at| now - at <= delta(policy.refresh_reuse_grace));
            (live && (current || in_grace)).then_some(session.id)
        }))
    }

    /// Ends `user`'s current session (signing out).
    pub async fn sign_out(&self, user: &SessionUser, who: &Requester) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let ip = who.ip.clone();
        let (session_id, user_id, who) =
            (user.session_id.clone(), user.user_id.clone(), who.clone());
        db::write(&self.pool, move |conn| {
            sessions::revoke(
                conn,
                &session_id,
                &user_id,
                now,
                EventKind::SignedOut.as_str(),
            )?;
            let sid = Some(&session_id);
            Ok::<_, ServiceError>(events::record(
                conn,
                Some(&user_id),
                sid,
                EventKind::SignedOut,
                &who,
                now,
            )?)
        })
        .await?;
        self.revoked.insert([user.session_id.clone()], now);
        tracing::info!(event = EventKind::SignedOut.as_str(), user_id = %user.user_id, session_id = %user.session_id, ip = %ip);
        Ok(())
    }

    /// Ends one of `user`'s live sessions (possibly the current one).
    pub async fn revoke_session(
        &self,
        user: &SessionUser,
        target: &SessionId,
        who: &Requester,
    ) -> Result<(), RevokeError> {
        let now = self.clock.now();
        let (target_id, user_id, who) = (target.clone(), user.user_id.clone(), who.clone());
        let revoked = db::write(&self.pool, move |conn| {
            let kind = EventKind::SessionRevoked;
            let revoked = sessions::revoke(conn, &target_id, &user_id, now, kind.as_str())?;
            if revoked {
                events::record(conn, Some(&user_id), Some(&target_id), kind, &who, now)?;
            }
            Ok::<_, ServiceError>(revoked)
        })
        .await?;
        if !revoked {
            return Err(RevokeError::NotFound);
        }
        self.revoked.insert([target.clone()], now);
        tracing::info!(event = EventKind::SessionRevoked.as_str(), user_id = %user.user_id, session_id = %target);
        Ok(())
    }

    /// Ends every session of `user` but the current one; returns how many.
    pub async fn revoke_others(
        &self,
        user: &SessionUser,
        who: &Requester,
    ) -> Result<usize, ServiceError> {
        let ended = self
            .end_sessions(
                &user.user_id,
                Some(&user.session_id),
                EventKind::SessionRevoked,
                who,
            )
            .await?;
        tracing::info!(event = EventKind::SessionRevoked.as_str(), user_id = %user.user_id, count = ended.len());
        Ok(ended.len())
    }

    /// Ends every session of `user_id`, keeping none (a password reset, a
    /// disabled account); returns the ids ended.
    pub async fn revoke_all(
        &self,
        user_id: &UserId,
        reason: EventKind,
        who: &Requester,
    ) -> Result<Vec<SessionId>, ServiceError> {
        let ended = self.end_sessions(user_id, None, reason, who).await?;
        tracing::info!(event = reason.as_str(), user_id = %user_id, count = ended.len(), "every session ended");
        Ok(ended)
    }

    /// Revokes `user_id`'s sessions but `keep` and records one event, in one
    /// transaction, then updates the revocation list.
    async fn end_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        kind: EventKind,
        who: &Requester,
    ) -> Result<Vec<SessionId>, ServiceError> {
        let now = self.clock.now();
        let (user_id, keep, who) = (user_id.clone(), keep.cloned(), who.clone());
        let ended = db::write(&self.pool, move |conn| {
            // The account's row first, as a password change, a reset and
            // a disable take it, so none of them waits for this one in
            // a circle over the sessions' rows.
            users::lock(conn, &user_id)?;
            let ended =
                sessions::revoke_all_except(conn, &user_id, keep.as_ref(), now, kind.as_str())?;
            events::record(conn, Some(&user_id), keep.as_ref(), kind, &who, now)?;
            Ok::<_, ServiceError>(ended)
        })
        .await?;
        self.revoked.insert(ended.iter().cloned(), now);
        Ok(ended)
    }

    /// Takes in revocations another instance announced (pushed on PostgreSQL).
    pub fn revoked_elsewhere(&self, session_ids: Vec<SessionId>) {
        if !session_ids.is_empty() {
            tracing::debug!(
                count = session_ids.len(),
                "revocations pushed by another instance"
            );
            self.revoked.insert(session_ids, self.clock.now());
        }
    }

    /// Reads revocations made elsewhere (other instances, an operator) into
    /// this instance's list; returns how many the database reported.
    pub async fn poll_revocations(&self) -> Result<usize, ServiceError> {
        let now = self.clock.now();
        let (mark, horizon) = (self.revoked.mark(now), self.revoked.horizon(now));
        let found = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(sessions::revocations_after(
                conn,
                mark.number,
                mark.unnumbered_since,
                horizon,
            )?)
        })
        .await?;
        let count = found.sessions.len();
        self.revoked.absorb(found.sessions, found.through, now);
        Ok(count)
    }
}

impl Accounts {
    /// Changes `user`'s password, given the current one. In one transaction:
    /// the new hash is stored, every other session is revoked and this
    /// session's refresh token is re-issued; the result carries its new tokens.
    pub async fn change_password(
        &self,
        sessions: &Sessions,
        user: &SessionUser,
        current_password: Password,
        new_password: Password,
        who: &Requester,
    ) -> Result<SignedIn, PasswordChangeError> {
        let stored = {
            let user_id = user.user_id.clone();
            db::run(&self.pool, move |conn| {
                Ok::<_, ServiceError>(users::find(conn, &user_id)?)
            })
            .await?
            .ok_or(ServiceError::Inconsistent(
                "signed-in user has no users row",
            ))?
        };
        let current_ok = self
            .hasher
            .verify(current_password, Some(stored.password_hash.clone()))
            .await?;
        let mut errors = PasswordErrors::default();
        if !current_ok {
            errors.current = Some("Your current password is not correct.".into());
        }
        errors.new = self
            .hasher
            .new_password_problem(new_password.clone(), stored.email, stored.name)
            .await?;
        if errors.current.is_some() || errors.new.is_some() {
            return Err(PasswordChangeError::Invalid(errors));
        }
        let new_hash = self.hasher.hash(new_password).await?;

        let now = self.clock.now();
        let kind = EventKind::PasswordChanged;
        let (user_id, keep, who) = (user.user_id.clone(), user.session_id.clone(), who.clone());
        let verified_version = stored.password_version;
        let (ended, tokens) = db::write(&self.pool, move |conn| {
            // A reset or a disable that committed since the current
            // password was checked also ended this session.
            if !users::replace_password(conn, &user_id, Some(verified_version), &new_hash, now)? {
                return Err(PasswordChangeError::SessionEnded);
            }
            // Any password change ends every outstanding reset link.
            crate::db::resets::invalidate_all(conn, &user_id, now)?;
            // Rolls the whole change back when this session ended
            // meanwhile. Before the others are revoked: sessions' rows
            // before the revocation counter, in every transaction.
            let tokens = reissue(conn, &keep, now)?.ok_or(PasswordChangeError::SessionEnded)?;
            let ended =
                sessions::revoke_all_except(conn, &user_id, Some(&keep), now, kind.as_str())?;
            events::record(conn, Some(&user_id), Some(&keep), kind, &who, now)?;
            Ok::<_, PasswordChangeError>((ended, tokens))
        })
        .await?;
        sessions.revoked.insert(ended.iter().cloned(), now);
        tracing::info!(event = kind.as_str(), user_id = %user.user_id, session_id = %user.session_id, ended = ended.len());
        Ok(sessions.issue(user.clone(), tokens)?)
    }

    /// The account behind a session (`None` if it was deleted meanwhile).
    pub async fn profile(&self, user_id: &UserId) -> Result<Option<Profile>, ServiceError> {
        let user_id = user_id.clone();
        db::run(&self.pool, move |conn| {
            Ok(users::find(conn, &user_id)?.map(|u| Profile {
                id: u.id,
                name: u.name,
                email: u.email,
            }))
        })
        .await
    }

    /// `user_id`'s live sessions and recent events, for the account page.
    pub async fn overview(&self, user_id: &UserId) -> Result<AccountOverview, ServiceError> {
        let user_id = user_id.clone();
        let clock = self.clock.clone();
        db::run(&self.pool, move |conn| {
            let sessions = sessions::list_active(conn, &user_id, clock.now())?
                .into_iter()
                .map(|s| SessionSummary {
                    id: s.id,
                    ip: s.ip,
                    user_agent: s.user_agent,
                    started: s.created_at,
                    last_seen: s.last_seen_at,
                })
                .collect();
            let events = event_rows::recent(conn, &user_id, RECENT_EVENTS)?
                .into_iter()
                .map(|e| Event {
                    kind: EventKind::parse(&e.kind),
                    ip: e.ip,
                    user_agent: e.user_agent,
                    at: e.created_at,
                })
                .collect();
            Ok(AccountOverview { sessions, events })
        })
        .await
    }
}

/// Gives `session_id` a new refresh token inside the caller's transaction.
fn reissue(
    conn: &mut DbConnection,
    session_id: &SessionId,
    now: NaiveDateTime,
) -> diesel::QueryResult<Option<NewTokens>> {
    let Some(session) = sessions::find(conn, session_id)?.filter(|s| s.revoked_at.is_none()) else {
        return Ok(None);
    };
    let refresh = new_token();
    let swapped = sessions::rotate_refresh(
        conn,
        session_id,
        &session.refresh_hash,
        &hash_token(&refresh),
        now,
    )?;
    Ok(swapped.then_some(NewTokens {
        id: session.id,
        refresh_token: Some(refresh),
        remember: session.remember,
    }))
}

fn refresh_in_transaction(
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
    if now >= session.expires_at || now - session.last_seen_at > delta(policy.idle_timeout) {
        return end(conn, EventKind::SessionExpired);
    }

    let user = SessionUser {
        user_id: session.user_id.clone(),
        session_id: session.id.clone(),
        name,
        auth_time: session.created_at.and_utc().timestamp(),
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
    let within_grace = rotated_at.is_some_and(|at| now - at <= delta(policy.refresh_reuse_grace));
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
