//! Queries on `sessions`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::models::{NewSession, Session};
use super::schema::{revocation_counter, revoked_sessions, sessions, users};
use crate::ids::{SessionId, UserId};

pub fn insert(conn: &mut DbConnection, session: &NewSession<'_>) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .map(|_| ())
}

pub fn find(conn: &mut DbConnection, id: &SessionId) -> QueryResult<Option<Session>> {
    sessions::table
        .find(id)
        .select(Session::as_select())
        .first(conn)
        .optional()
}

/// The session whose current or previous refresh token has this hash, with
/// its user's display name, if its account is enabled.
pub fn find_by_refresh_hash(
    conn: &mut DbConnection,
    hash: &str,
) -> QueryResult<Option<(Session, String)>> {
    sessions::table
        .inner_join(users::table)
        .filter(
            sessions::refresh_hash
                .eq(hash)
                .or(sessions::previous_refresh_hash.eq(hash)),
        )
        // A disabled account's sessions refresh no more.
        .filter(users::disabled_at.is_null())
        .select((Session::as_select(), users::name))
        .first(conn)
        .optional()
}

/// Replaces the refresh token (the old one becomes `previous`) and marks the
/// session as seen now — a compare-and-swap: only while `old_hash` is still the
/// current token of a live session. Returns whether this call swapped; of two
/// racing rotations from the same token exactly one does.
pub fn rotate_refresh(
    conn: &mut DbConnection,
    id: &SessionId,
    old_hash: &str,
    new_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::refresh_hash.eq(old_hash))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::refresh_hash.eq(new_hash),
        sessions::previous_refresh_hash.eq(Some(old_hash)),
        sessions::rotated_at.eq(Some(now)),
        sessions::last_seen_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Records that the live session `session_id` of `user_id` proved who it
/// is again (step-up); whether it is live.
pub fn set_authenticated(
    conn: &mut DbConnection,
    session_id: &SessionId,
    user_id: &UserId,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::authenticated_at.eq(Some(at)))
    .execute(conn)
    .map(|n| n == 1)
}

/// Ends one of `user_id`'s live sessions; returns whether one was ended.
/// Other instances hear of it at commit (see [`super::notify`]).
pub fn revoke(
    conn: &mut DbConnection,
    session_id: &SessionId,
    user_id: &UserId,
    at: NaiveDateTime,
    reason: &str,
) -> QueryResult<bool> {
    let revoked = diesel::update(
        sessions::table
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(Some(at)),
        sessions::revoke_reason.eq(Some(reason)),
    ))
    .execute(conn)?;
    if revoked > 0 {
        announce(conn, std::slice::from_ref(session_id))?;
    }
    Ok(revoked > 0)
}

/// Ends every live session of `user_id` except `keep` (none kept when `None`);
/// returns the ids ended.
pub fn revoke_all_except(
    conn: &mut DbConnection,
    user_id: &UserId,
    keep: Option<&SessionId>,
    at: NaiveDateTime,
    reason: &str,
) -> QueryResult<Vec<SessionId>> {
    let mut live = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .select(sessions::id)
        .into_boxed();
    if let Some(keep) = keep {
        live = live.filter(sessions::id.ne(keep));
    }
    let ids: Vec<SessionId> = live.load(conn)?;
    if !ids.is_empty() {
        diesel::update(sessions::table.filter(sessions::id.eq_any(&ids)))
            .set((
                sessions::revoked_at.eq(Some(at)),
                sessions::revoke_reason.eq(Some(reason)),
            ))
            .execute(conn)?;
        announce(conn, &ids)?;
    }
    Ok(ids)
}

/// Numbers the revocation of `ids` (just revoked in the caller's
/// transaction) and tells listening instances of it at commit.
///
/// The number comes from the one-row counter, incremented here: its row
/// lock is held until the transaction ends, so a later revocation gets its
/// number only after this one committed, and numbers are in commit order. A
/// poll that has seen number `n` has seen every revocation numbered up to
/// `n` (see [`revocations_after`]). Every transaction takes the account's
/// row (when it takes it) first, then sessions' rows, then the counter, so
/// no two wait for each other in a circle.
fn announce(conn: &mut DbConnection, ids: &[SessionId]) -> QueryResult<()> {
    let counter = revocation_counter::table.find(1);
    diesel::update(counter)
        .set(revocation_counter::last.eq(revocation_counter::last + 1))
        .execute(conn)?;
    let number: i64 = counter.select(revocation_counter::last).first(conn)?;
    diesel::update(sessions::table.filter(sessions::id.eq_any(ids)))
        .set(sessions::revocation_seq.eq(Some(number)))
        .execute(conn)?;
    super::notify::announce_revoked(conn, ids)
}

/// Revocations numbered above `after`, what a poll reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    /// Sessions revoked at or after the horizon, with when.
    pub sessions: Vec<(SessionId, NaiveDateTime)>,
    /// The highest number read: the next poll starts above it.
    pub through: i64,
}

/// Sessions whose revocation is numbered above `after` and was stamped at or
/// after `horizon` (older ones have no live token left), those of deleted
/// accounts likewise (see [`keep_revocations`]), and sessions revoked
/// without a number (by hand, in SQL) stamped at or after `unnumbered_since`.
/// The counter is read first: every revocation numbered up to it has
/// committed, so the sessions read next include all of them, and the next
/// poll starts above it.
pub fn revocations_after(
    conn: &mut DbConnection,
    after: i64,
    unnumbered_since: NaiveDateTime,
    horizon: NaiveDateTime,
) -> QueryResult<Revocations> {
    let through: i64 = revocation_counter::table
        .find(1)
        .select(revocation_counter::last)
        .first(conn)?;
    let numbered = sessions::revocation_seq
        .gt(after)
        .and(sessions::revocation_seq.le(through));
    let unnumbered = sessions::revocation_seq
        .is_null()
        .and(sessions::revoked_at.ge(unnumbered_since));
    let mut sessions: Vec<(SessionId, NaiveDateTime)> = sessions::table
        .filter(sessions::revoked_at.ge(horizon))
        .filter(numbered.or(unnumbered))
        .select((sessions::id, sessions::revoked_at.assume_not_null()))
        .load(conn)?;
    // Those of deleted accounts, whose rows are gone.
    sessions.extend(
        revoked_sessions::table
            .filter(revoked_sessions::revoked_at.ge(horizon))
            .filter(revoked_sessions::revocation_seq.gt(after))
            .filter(revoked_sessions::revocation_seq.le(through))
            .select((revoked_sessions::session_id, revoked_sessions::revoked_at))
            .load::<(SessionId, NaiveDateTime)>(conn)?,
    );
    Ok(Revocations {
        sessions,
        through: through.max(after),
    })
}

/// Live sessions of a user, newest first.
pub fn list_active(
    conn: &mut DbConnection,
    user_id: &UserId,
    now: NaiveDateTime,
) -> QueryResult<Vec<Session>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .order((sessions::created_at.desc(), sessions::id.desc()))
        .select(Session::as_select())
        .load(conn)
}

/// How many live sessions each user has.
pub fn live_counts(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<(UserId, i64)>> {
    sessions::table
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .group_by(sessions::user_id)
        .select((sessions::user_id, diesel::dsl::count_star()))
        .load(conn)
}

/// Deletes sessions that ended before `ended_before`: revoked then, past
/// their absolute end then, or idle since then. Returns how many.
pub fn delete_ended(
    conn: &mut DbConnection,
    ended_before: NaiveDateTime,
    idle_before: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        sessions::table.filter(
            sessions::revoked_at
                .lt(ended_before)
                .or(sessions::expires_at.lt(ended_before))
                .or(sessions::last_seen_at.lt(idle_before)),
        ),
    )
    .execute(conn)
}

/// Before `user_id`'s account is deleted, with its sessions, in the caller's
/// transaction: keeps the revocations numbered at or after `since` (the
/// sessions whose access tokens may still be alive) in `revoked_sessions`,
/// so that every instance's poll still reads them. Returns how many.
pub fn keep_revocations(
    conn: &mut DbConnection,
    user_id: &UserId,
    since: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::insert_into(revoked_sessions::table)
        .values(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::revocation_seq.is_not_null())
                .filter(sessions::revoked_at.ge(since))
                .select((
                    sessions::id,
                    sessions::revoked_at.assume_not_null(),
                    sessions::revocation_seq.assume_not_null(),
                )),
        )
        .into_columns((
            revoked_sessions::session_id,
            revoked_sessions::revoked_at,
            revoked_sessions::revocation_seq,
        ))
        .execute(conn)
}

/// Deletes the kept revocations of deleted accounts stamped before
/// `revoked_before`. Returns how many.
pub fn delete_kept_revocations(
    conn: &mut DbConnection,
    revoked_before: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(revoked_sessions::table.filter(revoked_sessions::revoked_at.lt(revoked_before)))
        .execute(conn)
}
