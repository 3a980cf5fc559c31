//! An account as its owner sees it: who it is, its live sessions and recent
//! activity, and changing its password (which ends every other session).

use chrono::NaiveDateTime;

use super::events::{self, Event, EventKind};
use super::service::{
    Accounts, PasswordChangeError, PasswordErrors, Requester, ServiceError, SessionUser, Sessions,
    SignedIn,
};
use super::sessions::NewTokens;
use crate::auth::token::{hash_token, new_token};
use crate::db::{self, DbConnection, events as event_rows, sessions, users};
use crate::ids::{Email, SessionId, UserId};
use crate::secret::Password;

/// How many events the account overview lists.
const RECENT_EVENTS: i64 = 20;

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
            // And every trusted device: a new password asks for the
            // second factor again everywhere.
            crate::db::two_factor::revoke_all_devices(conn, &user_id)?;
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
