//! Throttling counts in the database (the rules are in `auth::throttle`).
//!
//! A request is **admitted** before any password is checked or any link is
//! made: one statement per limit counts it and answers whether it is within
//! the limit, so requests sent together — to one instance or to many — are
//! counted one after the other and no more than the limit get through. The
//! admission runs in a transaction of its own that is rolled back when any
//! limit refuses: a refused request counts nowhere and writes nothing.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::NaiveDateTime;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

use crate::auth::throttle::{
    DAY_WINDOW, IP_WINDOW, PAIR_WINDOW, ThrottlePolicy, lock_for, remaining,
};
use crate::db::{self, DbConnection, throttle};

/// The counter of sign-in attempts per client IP.
const SIGN_IN_PER_IP: &str = "sign_in_ip";
/// The counters of reset requests per normalised address (registered or not)
/// and per client IP.
const RESET_PER_ADDRESS: &str = "reset_address";
const RESET_PER_IP: &str = "reset_ip";
/// The counters of confirmation mails per normalised address: those a
/// registration sends (a link, or "you already have an account"), and the
/// fresh links a resend or a sign-in to an unconfirmed address sends, per
/// minute and per day.
const REGISTRATION_MAIL_PER_ADDRESS: &str = "registration_mail_address";
/// The counter of registrations per client IP while addresses must be
/// confirmed: every valid one, whatever the address.
const REGISTRATION_PER_IP: &str = "registration_ip";
const LINK_PER_MINUTE: &str = "confirm_link_minute";
const LINK_PER_DAY: &str = "confirm_link_day";
const MINUTE: chrono::TimeDelta = chrono::TimeDelta::minutes(1);
/// The counter of second-factor codes tried per account, whatever the IP: a
/// right password clears the (address, IP) pair's streak, so this is what
/// bounds guessing a code with the password known.
const CODES_PER_ACCOUNT: &str = "second_factor_account";
/// Codes an account may have tried in an hour (right ones are taken back
/// out): with three steps accepted, one chance in 33,000 an hour to guess.
pub(super) const MAX_CODES_PER_ACCOUNT_PER_HOUR: u32 = 10;

/// Why an admission did not go through.
pub(super) enum Refusal {
    /// Over a limit: come back after this long.
    Limited(Duration),
    /// A sign-in pair's limit is taken by attempts in flight.
    Full,
    Failed(diesel::result::Error),
}

impl From<diesel::result::Error> for Refusal {
    fn from(e: diesel::result::Error) -> Self {
        Self::Failed(e)
    }
}

/// Runs `admit` (counts, then whatever the admitted request writes) in a
/// write transaction that is rolled back when it refuses. `Ok(Err(wait))`:
/// refused, come back after `wait`; `Ok(Ok(None))`: no room yet (a sign-in
/// pair full of attempts in flight).
pub(super) fn admitting<T>(
    conn: &mut DbConnection,
    admit: impl FnOnce(&mut DbConnection) -> Result<T, Refusal>,
) -> diesel::QueryResult<Result<Option<T>, Duration>> {
    match db::write_transaction(conn, admit) {
        Ok(admitted) => Ok(Ok(Some(admitted))),
        Err(Refusal::Full) => Ok(Ok(None)),
        Err(Refusal::Limited(wait)) => Ok(Err(wait)),
        Err(Refusal::Failed(e)) => Err(e),
    }
}

/// Counts a hit of `key` against `limit` per hour; returns the start of the
/// window it was counted in.
fn hit(
    conn: &mut DbConnection,
    bucket: &str,
    key: &str,
    limit: u32,
    now: NaiveDateTime,
) -> Result<NaiveDateTime, Refusal> {
    hit_in(conn, bucket, key, (limit, IP_WINDOW), now)
}

/// Counts a hit of `key` against `limit` per `window`, in one statement;
/// returns the start of the window it was counted in.
fn hit_in(
    conn: &mut DbConnection,
    bucket: &str,
    key: &str,
    (limit, window): (u32, chrono::TimeDelta),
    now: NaiveDateTime,
) -> Result<NaiveDateTime, Refusal> {
    let counted = throttle::count_hit(conn, bucket, key, now, now - window)?;
    if i64::from(counted.hits) > i64::from(limit) {
        return Err(Refusal::Limited(remaining(
            counted.window_start + window - now,
        )));
    }
    Ok(counted.window_start)
}

/// An admitted sign-in attempt, to be taken back out of the per-IP count if
/// it succeeds.
#[derive(Debug, Clone, Copy)]
pub(super) struct SignInAdmission {
    ip_window: NaiveDateTime,
}

/// Attempts in flight whose pair saw no new attempt for this long are taken
/// as lost (their process stopped before judging them); a sign-in, bcrypt
/// queue included, takes seconds at most.
const IN_FLIGHT_LOST_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Admits one sign-in attempt for `email` from `ip`: counted against the
/// IP's hourly cap, then against the pair's limit, which counts the failures
/// judged in its streak and the attempts in flight together (after a lock
/// has run out, one attempt at a time). So guesses sent together are never
/// judged more often than the limit allows: those beyond it are told to wait
/// ([`Refusal::Full`]) until the ones before them are judged, and then find
/// the pair locked — or, after a success, cleared. An attempt whose outcome
/// is never recorded (its client left while it waited for bcrypt, or the
/// process stopped) counts as a failure until the pair has been quiet for a
/// minute.
pub(super) fn admit_sign_in(
    conn: &mut DbConnection,
    policy: &ThrottlePolicy,
    email: &str,
    ip: &str,
    now: NaiveDateTime,
) -> Result<SignInAdmission, Refusal> {
    let ip_window = hit(conn, SIGN_IN_PER_IP, ip, policy.max_failures_per_ip, now)?;
    let streak = throttle::count_attempt(
        conn,
        email,
        ip,
        now,
        now - PAIR_WINDOW,
        now - IN_FLIGHT_LOST_AFTER,
    )?;
    if let Some(until) = streak.locked_until
        && until > now
    {
        return Err(Refusal::Limited(remaining(until - now)));
    }
    let max = i64::from(policy.max_failures);
    let room = (max - i64::from(streak.failures)).max(1);
    if i64::from(streak.in_flight) > room {
        // Rolled back like a refusal: nothing of it is counted.
        return Err(Refusal::Full);
    }
    Ok(SignInAdmission { ip_window })
}

/// A judged failure: counted in the pair's streak (locking it at the limit).
/// It stays counted against the IP.
pub(super) fn record_sign_in_failure(
    conn: &mut DbConnection,
    policy: &ThrottlePolicy,
    email: &str,
    ip: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    let failures = throttle::count_failure(conn, email, ip, now)?;
    if let Some(lock) = lock_for(failures, policy.max_failures) {
        throttle::lock_pair(conn, email, ip, now + lock)?;
    }
    Ok(())
}

/// A success forgets the pair's streak (failures and lock; the attempts
/// still in flight stay counted) and takes its own admission back out
/// of the per-IP count, which so counts failures only (an office behind one
/// address is not locked out by its own sign-ins). The IP's row first, as in
/// the admission, so the two never wait for each other.
pub(super) fn record_sign_in_success(
    conn: &mut DbConnection,
    admission: SignInAdmission,
    email: &str,
    ip: &str,
) -> diesel::QueryResult<()> {
    throttle::take_back_hit(conn, SIGN_IN_PER_IP, ip, admission.ip_window)?;
    throttle::clear_pair(conn, email, ip)
}

/// Admits one second-factor code for the account `user_id` (after its
/// pair's and IP's admission): counted per account per hour.
pub(super) fn admit_code(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<CodeAdmission, Refusal> {
    let window = hit(
        conn,
        CODES_PER_ACCOUNT,
        user_id,
        MAX_CODES_PER_ACCOUNT_PER_HOUR,
        now,
    )?;
    Ok(CodeAdmission { window })
}

/// An admitted code, to be taken back out of the account's count if right.
#[derive(Debug, Clone, Copy)]
pub(super) struct CodeAdmission {
    window: NaiveDateTime,
}

/// A right code leaves the account's count.
pub(super) fn record_code_success(
    conn: &mut DbConnection,
    admission: CodeAdmission,
    user_id: &str,
) -> diesel::QueryResult<()> {
    throttle::take_back_hit(conn, CODES_PER_ACCOUNT, user_id, admission.window)
}

/// Admits one passkey assertion from `ip`: counted against the IP's hourly
/// cap of sign-in attempts, as a password is; a success takes it back out.
pub(super) fn admit_passkey(
    conn: &mut DbConnection,
    policy: &ThrottlePolicy,
    ip: &str,
    now: NaiveDateTime,
) -> Result<SignInAdmission, Refusal> {
    let ip_window = hit(conn, SIGN_IN_PER_IP, ip, policy.max_failures_per_ip, now)?;
    Ok(SignInAdmission { ip_window })
}

/// A passkey that signed in (or an answer never judged) leaves the IP's
/// count.
pub(super) fn take_back_passkey(
    conn: &mut DbConnection,
    admission: SignInAdmission,
    ip: &str,
) -> diesel::QueryResult<()> {
    throttle::take_back_hit(conn, SIGN_IN_PER_IP, ip, admission.ip_window)
}

/// Whether `ip` may start a passkey ceremony: not while its count of
/// sign-in attempts is at the cap (`Err`: for how long). Counts nothing: the
/// assertion that finishes the ceremony is what is counted.
pub(super) fn passkey_ceremony_allowed(
    conn: &mut DbConnection,
    policy: &ThrottlePolicy,
    ip: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<Result<(), Duration>> {
    let current = throttle::current_hits(conn, SIGN_IN_PER_IP, ip, now - IP_WINDOW)?;
    Ok(match current {
        Some(c) if i64::from(c.hits) >= i64::from(policy.max_failures_per_ip) => {
            Err(remaining(c.window_start + IP_WINDOW - now))
        }
        _ => Ok(()),
    })
}

/// An admitted attempt that was never judged (our failure, not the user's)
/// leaves the pair's count of attempts in flight.
pub(super) fn release_sign_in(
    conn: &mut DbConnection,
    email: &str,
    ip: &str,
) -> diesel::QueryResult<()> {
    throttle::release_attempt(conn, email, ip)
}

/// Sign-in attempts of this instance waiting for room in their pair's limit,
/// woken one at a time, in the order they started waiting, as attempts of the
/// pair are judged here. Attempts judged on other instances are noticed by
/// asking again every [`WAIT_POLL`].
#[derive(Default)]
pub(super) struct PairWaiters {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

/// How often a waiting attempt asks again when nothing here wakes it.
const WAIT_POLL: Duration = Duration::from_millis(500);
/// How long an attempt waits for room before it is told to come back.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(10);

fn pair_key(email: &str, ip: &str) -> String {
    format!("{ip} {email}")
}

impl PairWaiters {
    /// A place in the pair's queue, kept until it is dropped.
    pub(super) fn queue<'a>(&'a self, email: &str, ip: &str) -> PairTurn<'a> {
        let key = pair_key(email, ip);
        let notify = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        PairTurn {
            waiters: self,
            key,
            turn: Some(Box::pin(notify.clone().notified_owned())),
            notify,
        }
    }

    /// A place in the pair's queue if other attempts of the pair wait in it.
    pub(super) fn queue_behind_others<'a>(&'a self, email: &str, ip: &str) -> Option<PairTurn<'a>> {
        let others = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&pair_key(email, ip));
        others.then(|| self.queue(email, ip))
    }

    /// An attempt of the pair was judged: the attempt waiting longest may go on.
    pub(super) fn judged(&self, email: &str, ip: &str) {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = waiting.get(&pair_key(email, ip)) {
            notify.notify_one();
        }
    }
}

/// One attempt's place in its pair's queue.
pub(super) struct PairTurn<'a> {
    waiters: &'a PairWaiters,
    key: String,
    notify: Arc<Notify>,
    turn: Option<Pin<Box<OwnedNotified>>>,
}

impl PairTurn<'_> {
    /// Waits until this attempt's turn comes or [`WAIT_POLL`] has passed;
    /// a wait that times out keeps its place.
    pub(super) async fn wait(&mut self) {
        let turn = self
            .turn
            .get_or_insert_with(|| Box::pin(self.notify.clone().notified_owned()));
        if tokio::time::timeout(WAIT_POLL, turn.as_mut()).await.is_ok() {
            self.turn = None;
        }
    }
}

impl Drop for PairTurn<'_> {
    fn drop(&mut self) {
        self.turn = None;
        let mut waiting = self
            .waiters
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's reference and this one: nobody else waits on the pair.
        if Arc::strong_count(&self.notify) == 2 {
            waiting.remove(&self.key);
        }
    }
}

/// Admits one request for a reset link for `email` (normalised) from `ip`:
/// counted per IP and per address, whether or not it has an account, so the
/// work and the answer do not depend on it.
pub(super) fn admit_reset_request(
    conn: &mut DbConnection,
    (max_per_ip, max_per_address): (u32, u32),
    email: &str,
    ip: &str,
    now: NaiveDateTime,
) -> Result<(), Refusal> {
    hit(conn, RESET_PER_IP, ip, max_per_ip, now)?;
    hit(conn, RESET_PER_ADDRESS, email, max_per_address, now)?;
    Ok(())
}

/// Admits a valid registration from `ip` while addresses must be confirmed,
/// within `max_per_hour`: counted alike for a new address and a registered
/// one, so reaching the limit tells nothing about either.
pub(super) fn admit_registration(
    conn: &mut DbConnection,
    max_per_hour: u32,
    ip: &str,
    now: NaiveDateTime,
) -> Result<(), Refusal> {
    hit(conn, REGISTRATION_PER_IP, ip, max_per_hour, now).map(|_| ())
}

/// Admits the one mail a registration of `email` sends, within
/// `max_per_day` such mails per address.
pub(super) fn admit_registration_mail(
    conn: &mut DbConnection,
    max_per_day: u32,
    email: &str,
    now: NaiveDateTime,
) -> Result<(), Refusal> {
    hit_in(
        conn,
        REGISTRATION_MAIL_PER_ADDRESS,
        email,
        (max_per_day, DAY_WINDOW),
        now,
    )
    .map(|_| ())
}

/// Admits a fresh confirmation link for `email` (a resend, or a sign-in to
/// an unconfirmed address): within `per_minute` a minute and `per_day` a
/// day, each counted in one statement.
pub(super) fn admit_fresh_link(
    conn: &mut DbConnection,
    (per_minute, per_day): (u32, u32),
    email: &str,
    now: NaiveDateTime,
) -> Result<(), Refusal> {
    hit_in(conn, LINK_PER_MINUTE, email, (per_minute, MINUTE), now)?;
    hit_in(conn, LINK_PER_DAY, email, (per_day, DAY_WINDOW), now)?;
    Ok(())
}

/// Forgets the throttling of `email`, whose account is being deleted (its
/// failed sign-ins, its reset requests and its confirmation mails).
pub(super) fn forget_address(conn: &mut DbConnection, email: &str) -> diesel::QueryResult<()> {
    throttle::forget_address(
        conn,
        email,
        &[
            RESET_PER_ADDRESS,
            REGISTRATION_MAIL_PER_ADDRESS,
            LINK_PER_MINUTE,
            LINK_PER_DAY,
        ],
    )
}

/// When `ip` may register again, if it has reached the hourly limit.
pub(super) fn registration_blocked_for(
    conn: &mut DbConnection,
    policy: &ThrottlePolicy,
    ip: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<Option<Duration>> {
    let (count, oldest) = crate::db::users::registered_from_ip_since(conn, ip, now - IP_WINDOW)?;
    if count >= i64::from(policy.register_max_per_hour) {
        let until = oldest.unwrap_or(now) + IP_WINDOW;
        return Ok(Some(remaining(until - now)));
    }
    Ok(None)
}
