//! The session lifecycle: create, verify, refresh (rotate; the decision is in
//! `refresh`), revoke one, the others or all.
//!
//! A session is a `sessions` row. Its browser holds a short-lived access token
//! (a JWT checked without the database) and a refresh token (32 random bytes,
//! stored only as a SHA-256 hash). A valid refresh token gets a new pair; it is
//! single-use, and presenting a rotated one after the grace window means it was
//! copied, so the session is revoked. Every revocation updates the database
//! and this instance's in-memory revocation list in the same call.

use chrono::NaiveDateTime;

use super::refresh::{Refreshed, in_grace, in_time, refresh_in_transaction};

use super::events::{self, EventKind};
use super::service::{
    IssuedSession, Requester, RevokeError, ServiceError, SessionPolicy, SessionUser, Sessions,
    SignedIn, delta,
};
use crate::auth::token::{MAX_TOKEN_LEN, hash_token, new_token};
use crate::db::models::NewSession;
use crate::db::{self, DbConnection, sessions, users};
use crate::ids::{SessionId, UserId};

/// A session row just written, with the refresh token the client gets.
#[derive(Debug)]
pub(super) struct NewTokens {
    pub id: SessionId,
    pub refresh_token: Option<String>,
    pub remember: bool,
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
            authenticated_at: Some(now),
        },
    )?;
    Ok(NewTokens {
        id,
        refresh_token: Some(refresh),
        remember,
    })
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
            let live = session.revoked_at.is_none() && in_time(&session, policy, now);
            let current = session.refresh_hash == hash;
            let racing = session.previous_refresh_hash.as_deref() == Some(hash.as_str())
                && in_grace(session.rotated_at, policy, now);
            (live && (current || racing)).then_some(session.id)
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
