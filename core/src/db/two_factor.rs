//! Queries for two-factor sign-in: the TOTP columns of `users`, and the
//! `recovery_codes`, `sign_in_challenges` and `trusted_devices` tables.
//!
//! Every use of a code is one conditional statement that exactly one
//! request can win: [`accept_step`] raises `totp_last_step` only past the
//! last step used, [`burn_code`] sets `used_at` only while it is unset, and
//! [`take_challenge`] deletes the challenge it uses. A second use of the
//! same code, or the loser of two at once, changes no row — on SQLite and
//! PostgreSQL alike, on any number of instances.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{recovery_codes, sign_in_challenges, trusted_devices, users};
use crate::ids::{ChallengeId, TrustedDeviceId, UserId};

/// Failed codes a challenge survives; the next ends it.
pub const MAX_CHALLENGE_FAILURES: i32 = 5;

/// Stores a new, not yet enabled secret (enrolment started), replacing one
/// an unfinished enrolment left; never while two-factor is on.
pub fn set_enrolling_secret(
    conn: &mut DbConnection,
    id: &UserId,
    sealed: &str,
) -> QueryResult<bool> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::two_factor_enabled_at.is_null()),
    )
    .set(users::totp_secret.eq(sealed))
    .execute(conn)
    .map(|n| n == 1)
}

/// Turns two-factor on with the secret `sealed` (the one the code was
/// checked against), marking `step` used; `false` when it is on already, or
/// the secret is no longer the one checked.
pub fn enable(
    conn: &mut DbConnection,
    id: &UserId,
    sealed: &str,
    step: i64,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::two_factor_enabled_at.is_null())
            .filter(users::totp_secret.eq(sealed)),
    )
    .set((
        users::two_factor_enabled_at.eq(Some(now)),
        users::totp_last_step.eq(Some(step)),
        users::updated_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Accepts a code of time step `step` for an account with two-factor on:
/// the one `UPDATE` that raises `totp_last_step` past every step used
/// before. `false` for a replayed code, an older step, or the loser of two
/// uses at once (PostgreSQL re-checks the condition once the winner
/// commits; SQLite runs one writer at a time).
pub fn accept_step(conn: &mut DbConnection, id: &UserId, step: i64) -> QueryResult<bool> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::two_factor_enabled_at.is_not_null())
            .filter(
                users::totp_last_step
                    .is_null()
                    .or(users::totp_last_step.lt(step)),
            ),
    )
    .set(users::totp_last_step.eq(Some(step)))
    .execute(conn)
    .map(|n| n == 1)
}

/// Turns two-factor off: the secret, the recovery codes, the trusted
/// devices and any waiting challenge go. Returns whether it was on.
pub fn disable(conn: &mut DbConnection, id: &UserId, now: NaiveDateTime) -> QueryResult<bool> {
    let was_on = diesel::update(
        users::table
            .find(id)
            .filter(users::two_factor_enabled_at.is_not_null()),
    )
    .set((
        users::totp_secret.eq(None::<String>),
        users::two_factor_enabled_at.eq(None::<NaiveDateTime>),
        users::totp_last_step.eq(None::<i64>),
        users::updated_at.eq(now),
    ))
    .execute(conn)?
        == 1;
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(id))).execute(conn)?;
    revoke_all_devices(conn, id)?;
    diesel::delete(sign_in_challenges::table.filter(sign_in_challenges::user_id.eq(id)))
        .execute(conn)?;
    Ok(was_on)
}

#[derive(Debug, Insertable)]
#[diesel(table_name = recovery_codes)]
struct NewCode<'a> {
    id: String,
    user_id: &'a UserId,
    code_hash: &'a str,
    created_at: NaiveDateTime,
}

/// Replaces the account's recovery codes with `hashes`: the old set is void.
pub fn replace_codes(
    conn: &mut DbConnection,
    id: &UserId,
    hashes: &[String],
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(id))).execute(conn)?;
    // One row at a time: a batch insert is not a statement both backends
    // share through the one connection type.
    for hash in hashes {
        diesel::insert_into(recovery_codes::table)
            .values(NewCode {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: id,
                code_hash: hash,
                created_at: now,
            })
            .execute(conn)?;
    }
    Ok(())
}

/// Burns an unused recovery code: `true` for exactly one use of it.
pub fn burn_code(
    conn: &mut DbConnection,
    id: &UserId,
    hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(id))
            .filter(recovery_codes::code_hash.eq(hash))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(Some(now)))
    .execute(conn)
    .map(|n| n == 1)
}

/// How many of the account's recovery codes are unused.
pub fn codes_left(conn: &mut DbConnection, id: &UserId) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sign_in_challenges)]
pub struct NewChallenge<'a> {
    pub id: &'a ChallengeId,
    pub token_hash: &'a str,
    pub user_id: &'a UserId,
    pub password_version: i32,
    pub remember: bool,
    pub failures: i32,
    pub ip: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A sign-in waiting for its second factor.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sign_in_challenges)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Challenge {
    pub id: ChallengeId,
    pub user_id: UserId,
    pub password_version: i32,
    pub remember: bool,
}

pub fn insert_challenge(conn: &mut DbConnection, challenge: &NewChallenge<'_>) -> QueryResult<()> {
    diesel::insert_into(sign_in_challenges::table)
        .values(challenge)
        .execute(conn)
        .map(|_| ())
}

/// The live challenge with this token hash: not expired, not failed out.
pub fn live_challenge(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<Challenge>> {
    sign_in_challenges::table
        .filter(sign_in_challenges::token_hash.eq(token_hash))
        .filter(sign_in_challenges::expires_at.gt(now))
        .filter(sign_in_challenges::failures.lt(MAX_CHALLENGE_FAILURES))
        .select(Challenge::as_select())
        .first(conn)
        .optional()
}

/// Counts one code tried against a live challenge, before it is judged, in
/// one statement: `false` once [`MAX_CHALLENGE_FAILURES`] tries were
/// counted (codes sent together from many places included) or it expired.
/// A right code then deletes the challenge; a wrong one leaves the try
/// counted.
pub fn count_try(
    conn: &mut DbConnection,
    id: &ChallengeId,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        sign_in_challenges::table
            .find(id)
            .filter(sign_in_challenges::expires_at.gt(now))
            .filter(sign_in_challenges::failures.lt(MAX_CHALLENGE_FAILURES)),
    )
    .set(sign_in_challenges::failures.eq(sign_in_challenges::failures + 1))
    .execute(conn)
    .map(|n| n == 1)
}

/// Uses a challenge up: `true` for exactly one use while it is live (its
/// try already counted by [`count_try`]).
pub fn take_challenge(
    conn: &mut DbConnection,
    id: &ChallengeId,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::delete(
        sign_in_challenges::table
            .find(id)
            .filter(sign_in_challenges::expires_at.gt(now)),
    )
    .execute(conn)
    .map(|n| n == 1)
}

/// After a wrong code: ends the challenge once its tries are spent.
/// Returns whether it is still live.
pub fn end_if_spent(conn: &mut DbConnection, id: &ChallengeId) -> QueryResult<bool> {
    let ended = diesel::delete(
        sign_in_challenges::table
            .find(id)
            .filter(sign_in_challenges::failures.ge(MAX_CHALLENGE_FAILURES)),
    )
    .execute(conn)?;
    Ok(ended == 0)
}

#[derive(Debug, Insertable)]
#[diesel(table_name = trusted_devices)]
pub struct NewDevice<'a> {
    pub id: &'a TrustedDeviceId,
    pub token_hash: &'a str,
    pub user_id: &'a UserId,
    pub user_agent: &'a str,
    pub ip: &'a str,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A trusted browser, as the account page lists it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = trusted_devices)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Device {
    pub id: TrustedDeviceId,
    pub user_agent: String,
    pub ip: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub fn insert_device(conn: &mut DbConnection, device: &NewDevice<'_>) -> QueryResult<()> {
    diesel::insert_into(trusted_devices::table)
        .values(device)
        .execute(conn)
        .map(|_| ())
}

/// Whether `token_hash` is a live trusted device of `user_id`, marking it
/// used when it is.
pub fn use_device(
    conn: &mut DbConnection,
    user_id: &UserId,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        trusted_devices::table
            .filter(trusted_devices::token_hash.eq(token_hash))
            .filter(trusted_devices::user_id.eq(user_id))
            .filter(trusted_devices::expires_at.gt(now)),
    )
    .set(trusted_devices::last_used_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// The account's live trusted devices, newest first.
pub fn devices(
    conn: &mut DbConnection,
    user_id: &UserId,
    now: NaiveDateTime,
) -> QueryResult<Vec<Device>> {
    trusted_devices::table
        .filter(trusted_devices::user_id.eq(user_id))
        .filter(trusted_devices::expires_at.gt(now))
        .order((trusted_devices::created_at.desc(), trusted_devices::id))
        .select(Device::as_select())
        .load(conn)
}

/// Ends one of the account's trusted devices; whether there was one.
pub fn revoke_device(
    conn: &mut DbConnection,
    user_id: &UserId,
    id: &TrustedDeviceId,
) -> QueryResult<bool> {
    diesel::delete(
        trusted_devices::table
            .find(id)
            .filter(trusted_devices::user_id.eq(user_id)),
    )
    .execute(conn)
    .map(|n| n == 1)
}

/// Ends every trusted device of the account; returns how many.
pub fn revoke_all_devices(conn: &mut DbConnection, user_id: &UserId) -> QueryResult<usize> {
    diesel::delete(trusted_devices::table.filter(trusted_devices::user_id.eq(user_id)))
        .execute(conn)
}

/// Deletes expired challenges and trusted devices; returns how many of each.
pub fn prune(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<(usize, usize)> {
    let challenges =
        diesel::delete(sign_in_challenges::table.filter(sign_in_challenges::expires_at.le(now)))
            .execute(conn)?;
    let devices =
        diesel::delete(trusted_devices::table.filter(trusted_devices::expires_at.le(now)))
            .execute(conn)?;
    Ok((challenges, devices))
}
