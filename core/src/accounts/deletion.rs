//! Leaving: an account deleted by its owner (with the password) or by an
//! operator, with everything keyed to it, in one transaction. Its sessions end
//! on every instance at once: their revocations are numbered and announced
//! like any other, and kept in `revoked_sessions` after the rows are gone, so
//! a poll still reads them.

use chrono::NaiveDateTime;

use super::events::EventKind;
use super::operator::OperatorError;
use super::service::{Accounts, Requester, ServiceError, SessionUser, Sessions, delta};
use crate::db::{self, DbConnection, confirmations, pending, sessions, users};
use crate::ids::{Email, SessionId, UserId};
use crate::secret::Password;

/// The account that was deleted: where its notice goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedAccount {
    pub email: Email,
    pub name: String,
    /// How many of its sessions were still live.
    pub sessions_ended: usize,
}

/// Why an owner's deletion did not happen; nothing was deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteAccountError {
    #[error("the current password is not correct")]
    WrongPassword,
    /// The account changed its password, or was deleted or disabled, while
    /// the request was on its way: the session asking is no longer its.
    #[error("the session ended during the deletion")]
    SessionEnded,
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

impl From<db::DbError> for DeleteAccountError {
    fn from(e: db::DbError) -> Self {
        Self::Failed(e.into())
    }
}

impl From<diesel::result::Error> for DeleteAccountError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Failed(e.into())
    }
}

impl Accounts {
    /// Deletes `user`'s own account, given its password.
    pub async fn delete_account(
        &self,
        sessions: &Sessions,
        user: &SessionUser,
        current_password: Password,
        who: &Requester,
    ) -> Result<DeletedAccount, DeleteAccountError> {
        let user_id = user.user_id.clone();
        let stored = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(users::find(conn, &user_id)?)
        })
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or(DeleteAccountError::SessionEnded)?;
        let correct = self
            .hasher
            .verify(current_password, Some(stored.password_hash.clone()))
            .await
            .map_err(ServiceError::from)?;
        if !correct {
            return Err(DeleteAccountError::WrongPassword);
        }
        let (ended, deleted) = self
            .delete_in_one_transaction(stored.id, Some(stored.password_version))
            .await?
            .ok_or(DeleteAccountError::SessionEnded)?;
        sessions
            .revoked
            .insert(ended.iter().cloned(), self.clock.now());
        tracing::info!(
            event = EventKind::AccountDeleted.as_str(),
            user_id = %user.user_id,
            session_id = %user.session_id,
            ip = %who.ip,
            ended = ended.len()
        );
        Ok(deleted)
    }

    /// `gatehouse user delete EMAIL`: deletes the account with this address.
    pub async fn delete_user(
        &self,
        email: &Email,
        who: &Requester,
    ) -> Result<DeletedAccount, OperatorError> {
        let email_owned = email.clone();
        let stored = db::run(&self.pool, move |conn| {
            Ok::<_, ServiceError>(users::find_by_email(conn, &email_owned)?)
        })
        .await?
        .ok_or_else(|| OperatorError::NoSuchUser(email.clone()))?;
        let user_id = stored.id.clone();
        let (ended, deleted) = self
            .delete_in_one_transaction(stored.id, None)
            .await
            .map_err(|e| match e {
                DeleteAccountError::Failed(e) => OperatorError::Failed(e),
                _ => OperatorError::NoSuchUser(email.clone()),
            })?
            .ok_or_else(|| OperatorError::NoSuchUser(email.clone()))?;
        tracing::info!(
            event = EventKind::AccountDeleted.as_str(),
            user_id = %user_id,
            by = %who.user_agent,
            ended = ended.len()
        );
        Ok(deleted)
    }

    /// In one transaction: locks the account (while its password is still
    /// at `verified_version`, when given), ends its live sessions (numbered
    /// and announced), keeps the revocations whose access tokens may still be
    /// alive, forgets its address's throttling and deletes the account with
    /// its sessions, events and reset links. `None` when the account is gone
    /// or its password changed meanwhile.
    async fn delete_in_one_transaction(
        &self,
        user_id: UserId,
        verified_version: Option<i32>,
    ) -> Result<Option<(Vec<SessionId>, DeletedAccount)>, DeleteAccountError> {
        let now = self.clock.now();
        // Older revocations have no live access token left.
        let since = now - delta(self.policy.access_token_ttl);
        db::write(&self.pool, move |conn| {
            delete_account_rows(conn, &user_id, verified_version, now, since)
        })
        .await
    }
}

fn delete_account_rows(
    conn: &mut DbConnection,
    user_id: &UserId,
    verified_version: Option<i32>,
    now: NaiveDateTime,
    since: NaiveDateTime,
) -> Result<Option<(Vec<SessionId>, DeletedAccount)>, DeleteAccountError> {
    // The account's row first, then sessions', then the counter (the order
    // every transaction takes them in).
    users::lock(conn, user_id)?;
    let Some(user) = users::find(conn, user_id)? else {
        return Ok(None);
    };
    let version = verified_version.unwrap_or(user.password_version);
    if user.password_version != version {
        return Ok(None);
    }
    let ended =
        sessions::revoke_all_except(conn, user_id, None, now, EventKind::AccountDeleted.as_str())?;
    sessions::keep_revocations(conn, user_id, since)?;
    super::throttle::forget_address(conn, user.email.as_str())?;
    confirmations::delete_for(conn, user_id, &user.email)?;
    pending::delete_for_address(conn, &user.email)?;
    if !users::delete(conn, user_id, version)? {
        return Ok(None);
    }
    let deleted = DeletedAccount {
        email: user.email,
        name: user.name,
        sessions_ended: ended.len(),
    };
    Ok(Some((ended, deleted)))
}
