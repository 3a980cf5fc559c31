//! Queries on `users`.

use diesel::prelude::*;

use super::DbConnection;
use super::models::{NewUser, User};
use super::schema::users;
use crate::ids::{Email, UserId};

/// Inserts a user. A taken e-mail surfaces as the database's unique violation,
/// so two concurrent registrations cannot both succeed.
pub fn insert(conn: &mut DbConnection, user: &NewUser<'_>) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)
        .map(|_| ())
}

pub fn find_by_email(conn: &mut DbConnection, email: &Email) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The enabled account at `email` as a mail's recipient: its id, address and
/// name, and nothing else to read back (what a request that must cost the
/// same for an unknown address needs).
pub fn find_enabled_recipient(
    conn: &mut DbConnection,
    email: &Email,
) -> QueryResult<Option<(UserId, Email, String)>> {
    users::table
        .filter(users::email.eq(email))
        .filter(users::disabled_at.is_null())
        .select((users::id, users::email, users::name))
        .first(conn)
        .optional()
}

pub fn find(conn: &mut DbConnection, id: &UserId) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Inside a transaction that is about to start a session for `id`: locks the
/// account's row until the transaction ends and answers whether it is still
/// enabled and still at `verified_version`, the password version that was
/// checked. A reset, a password change or a disable committing meanwhile
/// makes it `false`; one that comes later waits for this transaction, and
/// then ends the session it made. `rehashed`: the same password hashed at a
/// raised cost, to store.
pub fn still_signs_in_with(
    conn: &mut DbConnection,
    id: &UserId,
    verified_version: i32,
    rehashed: Option<&str>,
) -> QueryResult<bool> {
    let current = users::table
        .find(id)
        .filter(users::password_version.eq(verified_version))
        .filter(users::disabled_at.is_null());
    // A re-hash at a raised cost is stored as the row is locked; otherwise
    // the update writes nothing new and only takes the lock.
    let updated = match rehashed {
        Some(hash) => diesel::update(current)
            .set(users::password_hash.eq(hash))
            .execute(conn)?,
        None => diesel::update(current)
            .set(users::password_version.eq(users::password_version))
            .execute(conn)?,
    };
    Ok(updated == 1)
}

/// Locks the account's row until the transaction ends.
pub fn lock(conn: &mut DbConnection, id: &UserId) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::password_version.eq(users::password_version))
        .execute(conn)
        .map(|_| ())
}

/// Sets a new password (a new version) while the account is enabled and,
/// when `verified_version` is given, still at that version; returns whether
/// it did.
pub fn replace_password(
    conn: &mut DbConnection,
    id: &UserId,
    verified_version: Option<i32>,
    new_hash: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    let enabled = users::table.find(id).filter(users::disabled_at.is_null());
    let changes = (
        users::password_hash.eq(new_hash),
        users::password_version.eq(users::password_version + 1),
        users::updated_at.eq(now),
    );
    let updated = match verified_version {
        Some(version) => diesel::update(enabled.filter(users::password_version.eq(version)))
            .set(changes)
            .execute(conn)?,
        None => diesel::update(enabled).set(changes).execute(conn)?,
    };
    Ok(updated == 1)
}

/// Makes `email` the account's confirmed address (its own: `current` is
/// `email`; or a new one) while the account is enabled, its password still
/// at `verified_version` and its address still `current` (so a registration
/// link confirms the address it was sent to and never brings back an old
/// one). Returns whether it did. A new address another account took
/// meanwhile is the database's unique violation.
pub fn confirm_email(
    conn: &mut DbConnection,
    id: &UserId,
    verified_version: i32,
    current: &Email,
    email: &Email,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::disabled_at.is_null())
            .filter(users::password_version.eq(verified_version))
            .filter(users::email.eq(current)),
    )
    .set((
        users::email.eq(email),
        users::email_verified_at.eq(Some(now)),
        users::updated_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Marks the address of the account with this e-mail confirmed (an
/// operator vouches); returns whether it was unconfirmed.
pub fn mark_verified(
    conn: &mut DbConnection,
    email: &Email,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        users::table
            .filter(users::email.eq(email))
            .filter(users::email_verified_at.is_null()),
    )
    .set(users::email_verified_at.eq(Some(now)))
    .execute(conn)
    .map(|n| n == 1)
}

/// How many accounts registered from `ip` since `since`, and the oldest of
/// them. Accounts an operator created carry no address and never count.
pub fn registered_from_ip_since(
    conn: &mut DbConnection,
    ip: &str,
    since: chrono::NaiveDateTime,
) -> QueryResult<(i64, Option<chrono::NaiveDateTime>)> {
    users::table
        .filter(users::registration_ip.eq(ip))
        .filter(users::created_at.ge(since))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(users::created_at),
        ))
        .first(conn)
}

/// Every user, oldest first.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<User>> {
    users::table
        .order((users::created_at.asc(), users::id.asc()))
        .select(User::as_select())
        .load(conn)
}

/// Disables (`Some(at)`) or enables (`None`) an account; returns whether one changed.
pub fn set_disabled(
    conn: &mut DbConnection,
    id: &UserId,
    disabled_at: Option<chrono::NaiveDateTime>,
) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set(users::disabled_at.eq(disabled_at))
        .execute(conn)
        .map(|n| n == 1)
}

/// Deletes the account while its password is still at `verified_version`;
/// its sessions, events and reset links go with it (`ON DELETE CASCADE`).
/// Returns whether it did.
pub fn delete(conn: &mut DbConnection, id: &UserId, verified_version: i32) -> QueryResult<bool> {
    diesel::delete(
        users::table
            .find(id)
            .filter(users::password_version.eq(verified_version)),
    )
    .execute(conn)
    .map(|n| n == 1)
}

/// How many accounts have two-factor sign-in on.
pub fn count_two_factor(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table
        .filter(users::two_factor_enabled_at.is_not_null())
        .count()
        .get_result(conn)
}
