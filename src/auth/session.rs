//! The session lifecycle: start, refresh, revoke.
//!
//! A session is a `sessions` row. The browser holds two cookies for it: a
//! short-lived access token (a JWT checked without the database) and a refresh
//! token (32 random bytes, stored only as a SHA-256 hash). When the access
//! token is missing or expired, a valid refresh token gets a new pair: the
//! refresh token is single-use, and presenting a rotated one after the grace
//! window means it was copied, so the session is revoked.

use std::time::Duration;

use actix_web::HttpResponseBuilder;
use actix_web::http::header;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDateTime, TimeDelta};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use super::AuthUser;
use super::cookie::CookieConfig;
use super::csrf;
use super::jwt::JwtKeys;
use super::revocation::RevokedSessions;
use crate::client::ClientInfo;
use crate::db::models::{NewAuthEvent, NewSession};
use crate::db::{self, DbConnection, DbPool, events, sessions};
use crate::errors::AppError;

/// Session limits, all enforced by the server.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// How long a rotated refresh token is still accepted (tabs racing at expiry).
    pub refresh_reuse_grace: Duration,
    /// Absolute lifetime without "remember me".
    pub max_age: Duration,
    /// Absolute lifetime with "remember me" (also the refresh cookie's Max-Age).
    pub max_age_remember: Duration,
    /// A session not refreshed for this long ends.
    pub idle_timeout: Duration,
}

/// Names of the events written to `auth_events`.
pub mod event {
    pub const REGISTERED: &str = "registered";
    pub const SIGNED_IN: &str = "signed_in";
    pub const SIGN_IN_FAILED: &str = "sign_in_failed";
    pub const SIGNED_OUT: &str = "signed_out";
    pub const SESSION_REVOKED: &str = "session_revoked";
    pub const PASSWORD_CHANGED: &str = "password_changed";
    pub const REFRESH_REUSE: &str = "refresh_token_reuse";
    pub const SESSION_EXPIRED: &str = "session_expired";
}

/// A session that was just created or whose tokens were just re-issued.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub session_id: String,
    /// The new refresh token, when one was issued (none inside the grace window).
    pub refresh_token: Option<String>,
    pub remember: bool,
}

/// What a refresh attempt found.
#[derive(Debug)]
pub enum Refresh {
    /// New tokens for this user.
    Renewed(AuthUser, IssuedSession),
    /// Unknown, revoked, expired or reused: sign in again.
    Refused,
}

pub struct SessionManager {
    pool: DbPool,
    keys: JwtKeys,
    cookies: CookieConfig,
    revoked: RevokedSessions,
    policy: SessionPolicy,
}

impl SessionManager {
    pub fn new(
        pool: DbPool,
        keys: JwtKeys,
        cookies: CookieConfig,
        revoked: RevokedSessions,
        policy: SessionPolicy,
    ) -> Self {
        Self {
            pool,
            keys,
            cookies,
            revoked,
            policy,
        }
    }

    pub fn cookies(&self) -> &CookieConfig {
        &self.cookies
    }

    pub fn revoked(&self) -> &RevokedSessions {
        &self.revoked
    }

    /// Reads revocations made elsewhere into the in-memory list. Blocking.
    pub fn poll_revocations(&self) -> Result<usize, AppError> {
        let mut conn = self.pool.get()?;
        Ok(self.revoked.poll(&mut conn)?)
    }

    /// Checks an access token: signature and claims, then the revocation list.
    /// No database access.
    pub fn verify_access(&self, token: &str) -> Option<AuthUser> {
        match self.keys.verify(token) {
            Ok(claims) if !self.revoked.is_revoked(&claims.sid) => Some(AuthUser {
                user_id: claims.sub,
                session_id: claims.sid,
                name: claims.name,
                auth_time: claims.auth_time,
            }),
            Ok(claims) => {
                tracing::debug!(session_id = %claims.sid, "access token of a revoked session");
                None
            }
            Err(reason) => {
                tracing::debug!(%reason, "access token refused");
                None
            }
        }
    }

    /// Creates a session row inside the caller's transaction.
    pub fn create(
        &self,
        conn: &mut DbConnection,
        user_id: &str,
        client: &ClientInfo,
        remember: bool,
        now: NaiveDateTime,
    ) -> diesel::QueryResult<IssuedSession> {
        let session_id = uuid::Uuid::new_v4().to_string();
        let refresh = new_refresh_token();
        let lifetime = if remember {
            self.policy.max_age_remember
        } else {
            self.policy.max_age
        };
        sessions::insert(
            conn,
            &NewSession {
                id: &session_id,
                user_id,
                created_at: now,
                last_seen_at: now,
                ip: &client.ip,
                user_agent: &client.user_agent,
                refresh_hash: &hash_token(&refresh),
                remember,
                expires_at: now + delta(lifetime),
            },
        )?;
        Ok(IssuedSession {
            session_id,
            refresh_token: Some(refresh),
            remember,
        })
    }

    /// Gives `session_id` a new refresh token inside the caller's transaction
    /// (after a password change, the current session keeps going on new tokens).
    pub fn reissue(
        &self,
        conn: &mut DbConnection,
        session_id: &str,
        now: NaiveDateTime,
    ) -> diesel::QueryResult<Option<IssuedSession>> {
        let Some(session) = sessions::find(conn, session_id)? else {
            return Ok(None);
        };
        let refresh = new_refresh_token();
        sessions::rotate_refresh(
            conn,
            session_id,
            &session.refresh_hash,
            &hash_token(&refresh),
            now,
        )?;
        Ok(Some(IssuedSession {
            session_id: session.id,
            refresh_token: Some(refresh),
            remember: session.remember,
        }))
    }

    /// Trades a refresh token for new tokens. Runs its queries on the blocking
    /// pool in one write transaction, so concurrent refreshes are serialised.
    pub async fn refresh(&self, token: String, client: ClientInfo) -> Result<Refresh, AppError> {
        if token.len() > 128 {
            return Ok(Refresh::Refused);
        }
        let pool = self.pool.clone();
        let policy = self.policy.clone();
        let (outcome, ended) = actix_web::web::block(move || -> Result<_, AppError> {
            let mut conn = pool.get()?;
            let hash = hash_token(&token);
            // Unknown or dead tokens (what a flood of made-up cookies sends)
            // cost one indexed read and never take the write lock.
            let live = sessions::find_by_refresh_hash(&mut conn, &hash)?
                .is_some_and(|(session, _)| session.revoked_at.is_none());
            if !live {
                return Ok((Refresh::Refused, None));
            }
            Ok(db::write_transaction(&mut conn, |conn| {
                refresh_in_transaction(conn, &hash, &policy, &client, db::now())
            })?)
        })
        .await??;
        if let Some((session_id, at)) = ended {
            self.revoked.insert([session_id], at);
        }
        Ok(outcome)
    }

    /// Sets the cookies of an issued session on a response: the access token,
    /// and the refresh token when one was issued.
    pub fn set_cookies(
        &self,
        response: &mut HttpResponseBuilder,
        user: &AuthUser,
        issued: &IssuedSession,
    ) -> Result<(), AppError> {
        for cookie in self.session_cookies(user, issued)? {
            response.cookie(cookie);
        }
        Ok(())
    }

    /// The cookies for an issued session.
    pub fn session_cookies(
        &self,
        user: &AuthUser,
        issued: &IssuedSession,
    ) -> Result<Vec<actix_web::cookie::Cookie<'static>>, AppError> {
        let access = self.keys.issue(
            &user.user_id,
            &issued.session_id,
            &user.name,
            user.auth_time,
        )?;
        let mut cookies = vec![self.cookies.access(access)];
        if let Some(refresh) = &issued.refresh_token {
            let max_age = issued.remember.then_some(self.policy.max_age_remember);
            cookies.push(self.cookies.refresh(refresh.clone(), max_age));
        }
        Ok(cookies)
    }

    /// The 303 that completes a sign-in: session cookies and a new CSRF
    /// cookie (tokens from before the sign-in stop matching).
    pub fn signed_in_response(
        &self,
        user: &AuthUser,
        issued: &IssuedSession,
        location: &str,
    ) -> Result<actix_web::HttpResponse, AppError> {
        let mut response = actix_web::HttpResponse::SeeOther();
        response.insert_header((header::LOCATION, location));
        self.set_cookies(&mut response, user, issued)?;
        response.cookie(self.cookies.csrf(csrf::new_cookie_value()));
        Ok(response.finish())
    }
}

fn refresh_in_transaction(
    conn: &mut DbConnection,
    presented_hash: &str,
    policy: &SessionPolicy,
    client: &ClientInfo,
    now: NaiveDateTime,
) -> Result<(Refresh, Option<(String, NaiveDateTime)>), diesel::result::Error> {
    let Some((session, name)) = sessions::find_by_refresh_hash(conn, presented_hash)? else {
        return Ok((Refresh::Refused, None));
    };
    if session.revoked_at.is_some() {
        return Ok((Refresh::Refused, None));
    }
    let end = |conn: &mut DbConnection, reason: &str| -> diesel::QueryResult<_> {
        sessions::revoke(conn, &session.id, &session.user_id, now, reason)?;
        record_event(
            conn,
            Some(&session.user_id),
            Some(&session.id),
            reason,
            client,
            now,
        )?;
        Ok((Refresh::Refused, Some((session.id.clone(), now))))
    };
    if now >= session.expires_at {
        return end(conn, event::SESSION_EXPIRED);
    }
    if now - session.last_seen_at > delta(policy.idle_timeout) {
        return end(conn, event::SESSION_EXPIRED);
    }

    let user = AuthUser {
        user_id: session.user_id.clone(),
        session_id: session.id.clone(),
        name,
        auth_time: session.created_at.and_utc().timestamp(),
    };
    if session.refresh_hash == presented_hash {
        let refresh = new_refresh_token();
        sessions::rotate_refresh(
            conn,
            &session.id,
            presented_hash,
            &hash_token(&refresh),
            now,
        )?;
        let issued = IssuedSession {
            session_id: session.id.clone(),
            refresh_token: Some(refresh),
            remember: session.remember,
        };
        return Ok((Refresh::Renewed(user, issued), None));
    }

    // The previous token: a racing tab inside the grace window gets a new
    // access token but no new refresh token (its browser already holds the
    // newest one); anyone later is replaying a copied token.
    let within_grace = session
        .rotated_at
        .is_some_and(|at| now - at <= delta(policy.refresh_reuse_grace));
    if within_grace {
        let issued = IssuedSession {
            session_id: session.id.clone(),
            refresh_token: None,
            remember: session.remember,
        };
        return Ok((Refresh::Renewed(user, issued), None));
    }
    tracing::warn!(
        event = event::REFRESH_REUSE,
        user_id = %session.user_id,
        session_id = %session.id,
        ip = %client.ip,
        "a rotated refresh token was presented again; session revoked"
    );
    end(conn, event::REFRESH_REUSE)
}

/// Writes one row to `auth_events`.
pub fn record_event(
    conn: &mut DbConnection,
    user_id: Option<&str>,
    session_id: Option<&str>,
    kind: &str,
    client: &ClientInfo,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    events::record(
        conn,
        &NewAuthEvent {
            id: uuid::Uuid::new_v4().to_string(),
            user_id,
            session_id,
            kind,
            ip: &client.ip,
            user_agent: &client.user_agent,
            created_at: now,
        },
    )
}

/// 32 random bytes, base64url.
fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a refresh token, hex: all the database ever holds.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }
}
