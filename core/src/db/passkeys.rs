//! Queries for passkeys: the `passkeys` table (an account's WebAuthn
//! credentials) and `passkey_ceremonies` (a registration or sign-in under
//! way, so any instance can finish what another started).
//!
//! A ceremony is used by the one `DELETE` that removes it ([`take_ceremony`]):
//! a replayed or concurrent second finish finds nothing. A credential's use
//! is recorded by one conditional `UPDATE` ([`record_use`]) that refuses a
//! signature counter going backwards.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{passkey_ceremonies, passkeys};
use crate::ids::{PasskeyId, UserId};

/// A passkey to store.
#[derive(Debug)]
pub struct NewPasskey<'a> {
    pub id: &'a PasskeyId,
    pub user_id: &'a UserId,
    pub credential_id: &'a str,
    pub passkey: &'a str,
    pub name: &'a str,
    pub sign_count: i64,
    pub created_at: NaiveDateTime,
}

/// A stored passkey.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = passkeys)]
pub struct StoredPasskey {
    pub id: PasskeyId,
    pub user_id: UserId,
    pub credential_id: String,
    pub passkey: String,
    pub name: String,
    pub sign_count: i64,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

/// Stores a new passkey; `false` when its credential id is registered
/// already (to this account or another).
pub fn insert(conn: &mut DbConnection, passkey: &NewPasskey<'_>) -> QueryResult<bool> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    // The unique index decides, also between two registrations at once,
    // without an error that would end a PostgreSQL transaction.
    diesel::sql_query(
        "INSERT INTO passkeys (id, user_id, credential_id, passkey, name, sign_count, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(passkey.id.as_str())
    .bind::<Text, _>(passkey.user_id.as_str())
    .bind::<Text, _>(passkey.credential_id)
    .bind::<Text, _>(passkey.passkey)
    .bind::<Text, _>(passkey.name)
    .bind::<BigInt, _>(passkey.sign_count)
    .bind::<Timestamp, _>(passkey.created_at)
    .execute(conn)
    .map(|n| n == 1)
}

/// `user_id`'s passkeys, oldest first.
pub fn of_user(conn: &mut DbConnection, user_id: &UserId) -> QueryResult<Vec<StoredPasskey>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order((passkeys::created_at.asc(), passkeys::id.asc()))
        .select(StoredPasskey::as_select())
        .load(conn)
}

/// The passkey with this credential id (base64url), whoever's it is.
pub fn by_credential(
    conn: &mut DbConnection,
    credential_id: &str,
) -> QueryResult<Option<StoredPasskey>> {
    passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(StoredPasskey::as_select())
        .first(conn)
        .optional()
}

/// How many passkeys `user_id` has.
pub fn count(conn: &mut DbConnection, user_id: &UserId) -> QueryResult<i64> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .count()
        .get_result(conn)
}

/// Records a use of passkey `id`: its credential as updated (counter,
/// backup flags) and when. With a counter (`sign_count > 0`), only while
/// the stored one is lower: `false` for a counter that did not move
/// forward, a replay, or the loser of two uses at once.
pub fn record_use(
    conn: &mut DbConnection,
    id: &PasskeyId,
    passkey: &str,
    sign_count: i64,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let row = passkeys::table.find(id);
    let set = (
        passkeys::passkey.eq(passkey),
        passkeys::sign_count.eq(sign_count),
        passkeys::last_used_at.eq(Some(now)),
    );
    let changed = if sign_count > 0 {
        diesel::update(row.filter(passkeys::sign_count.lt(sign_count)))
            .set(set)
            .execute(conn)?
    } else {
        diesel::update(row.filter(passkeys::sign_count.eq(0)))
            .set(set)
            .execute(conn)?
    };
    Ok(changed == 1)
}

/// How many passkeys each account that has any has.
pub fn counts(conn: &mut DbConnection) -> QueryResult<Vec<(UserId, i64)>> {
    passkeys::table
        .group_by(passkeys::user_id)
        .select((passkeys::user_id, diesel::dsl::count_star()))
        .load(conn)
}

/// Renames one of `user_id`'s passkeys; whether it was theirs.
pub fn rename(
    conn: &mut DbConnection,
    user_id: &UserId,
    id: &PasskeyId,
    name: &str,
) -> QueryResult<bool> {
    diesel::update(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(user_id)),
    )
    .set(passkeys::name.eq(name))
    .execute(conn)
    .map(|n| n == 1)
}

/// Deletes one of `user_id`'s passkeys; whether it was theirs.
pub fn delete(conn: &mut DbConnection, user_id: &UserId, id: &PasskeyId) -> QueryResult<bool> {
    diesel::delete(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(user_id)),
    )
    .execute(conn)
    .map(|n| n == 1)
}

/// Deletes all of `user_id`'s passkeys; how many there were.
pub fn delete_all(conn: &mut DbConnection, user_id: &UserId) -> QueryResult<usize> {
    diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id))).execute(conn)
}

#[derive(Debug, Insertable)]
#[diesel(table_name = passkey_ceremonies)]
pub struct NewCeremony<'a> {
    pub id: &'a str,
    pub token_hash: &'a str,
    pub purpose: &'a str,
    pub user_id: Option<&'a UserId>,
    pub state: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A ceremony as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = passkey_ceremonies)]
pub struct Ceremony {
    pub id: String,
    pub purpose: String,
    pub user_id: Option<UserId>,
    pub state: String,
}

pub fn insert_ceremony(conn: &mut DbConnection, ceremony: &NewCeremony<'_>) -> QueryResult<()> {
    diesel::insert_into(passkey_ceremonies::table)
        .values(ceremony)
        .execute(conn)
        .map(|_| ())
}

/// Takes the live ceremony with this token hash: reads it and deletes it in
/// one transaction's two statements, the delete deciding. `None` when it
/// expired, was never started, or another request took it first.
pub fn take_ceremony(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<Ceremony>> {
    let Some(ceremony) = passkey_ceremonies::table
        .filter(passkey_ceremonies::token_hash.eq(token_hash))
        .filter(passkey_ceremonies::expires_at.gt(now))
        .select(Ceremony::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let taken = diesel::delete(passkey_ceremonies::table.find(&ceremony.id)).execute(conn)?;
    Ok((taken == 1).then_some(ceremony))
}

/// Deletes expired ceremonies; how many.
pub fn prune(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(passkey_ceremonies::table.filter(passkey_ceremonies::expires_at.le(now)))
        .execute(conn)
}
