//! The domain without HTTP: a real SQLite file, real bcrypt (at cost 4).

use std::time::Duration;

use chrono::TimeDelta;
use diesel::prelude::*;

use super::*;
use crate::auth::jwt::JwtKeys;
use crate::auth::password::PasswordHasher;
use crate::auth::throttle::ThrottlePolicy;
use crate::auth::token::hash_token;
use crate::clock::{Clock, ClockControl};
use crate::db::schema::{sessions as session_rows, users as user_rows};
use crate::db::{self, sessions, throttle as throttle_rows};
use crate::ids::{Email, SessionId, UserId};
use crate::secret::Secret;

pub(super) const PASSWORD: &str = "correct horse battery staple";

pub(super) struct Fixture {
    pub(super) accounts: Accounts,
    pub(super) sessions: Sessions,
    /// Moves the time of both forward.
    pub(super) clock: ClockControl,
    _dir: tempfile::TempDir,
}

fn policy(grace: Duration) -> SessionPolicy {
    SessionPolicy {
        refresh_reuse_grace: grace,
        max_age: Duration::from_secs(12 * 3600),
        max_age_remember: Duration::from_secs(30 * 24 * 3600),
        idle_timeout: Duration::from_secs(7 * 24 * 3600),
        access_token_ttl: Duration::from_secs(600),
    }
}

pub(super) fn fixture(grace: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pool = db::build_pool(
        dir.path().join("domain.db").to_str().unwrap(),
        db::PoolOptions::default(),
    )
    .unwrap();
    db::run_migrations(&pool).unwrap();
    let keys = JwtKeys::new(
        &Secret::new("a-domain-test-secret-of-at-least-32-bytes"),
        &[],
        Duration::from_secs(600),
    );
    let throttle = ThrottlePolicy {
        max_failures: 3,
        max_failures_per_ip: 100,
        register_max_per_hour: 10,
    };
    let resets = ResetPolicy {
        ttl: Duration::from_secs(1800),
        max_per_account_per_hour: 3,
        max_per_ip_per_hour: 20,
    };
    let (clock, control) = Clock::adjustable();
    let sessions = Sessions::new(pool.clone(), keys, policy(grace), clock.clone());
    let accounts = Accounts::new(
        pool,
        PasswordHasher::new(4).unwrap(),
        policy(grace),
        throttle,
        resets,
        crate::accounts::VerifyPolicy::new(
            crate::accounts::VerifyMode::Off,
            std::time::Duration::from_secs(86_400),
        ),
        clock,
    );
    Fixture {
        accounts,
        sessions,
        clock: control,
        _dir: dir,
    }
}

pub(super) fn who() -> Requester {
    Requester {
        ip: "203.0.113.5".into(),
        user_agent: "domain test".into(),
    }
}

pub(super) async fn register(f: &Fixture, email: &str) -> SignedIn {
    let account = NewAccount {
        name: "Ada Lovelace".into(),
        email: email.into(),
        password: PASSWORD.into(),
    };
    f.accounts
        .register(&f.sessions, account, &who())
        .await
        .unwrap()
}

pub(super) fn credentials(email: &str, password: &str) -> Credentials {
    Credentials {
        email: email.into(),
        password: password.into(),
        remember: false,
        trusted_device: None,
    }
}

/// Ada signs in again (another device), with the right password.
async fn sign_in_ada(f: &Fixture) -> SignedIn {
    f.accounts
        .sign_in(
            &f.sessions,
            credentials("ada@example.com", PASSWORD),
            None,
            &who(),
        )
        .await
        .unwrap()
        .0
        .signed_in()
        .unwrap()
}

pub(super) fn conn(accounts: &Accounts) -> crate::db::PooledConn {
    accounts.pool().get_blocking().unwrap()
}

fn session_row(accounts: &Accounts, id: &SessionId) -> crate::db::models::Session {
    sessions::find(&mut conn(accounts), id).unwrap().unwrap()
}

#[tokio::test]
async fn a_wrong_password_records_a_failure() {
    let f = fixture(Duration::from_secs(10));
    register(&f, "ada@example.com").await;

    let result = f
        .accounts
        .sign_in(
            &f.sessions,
            credentials("ADA@example.com ", "not the password"),
            None,
            &who(),
        )
        .await;

    assert!(matches!(result, Err(SignInError::InvalidCredentials)));
    let mut conn = conn(&f.accounts);
    use crate::db::schema::{login_throttles, rate_limits};
    let pair: i32 = login_throttles::table
        .find(("ada@example.com", &who().ip))
        .select(login_throttles::failures)
        .first(&mut conn)
        .unwrap();
    assert_eq!(pair, 1);
    let count: i32 = rate_limits::table
        .find(("sign_in_ip", &who().ip))
        .select(rate_limits::hits)
        .first(&mut conn)
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_locked_pair_answers_throttled_without_hashing() {
    let f = fixture(Duration::from_secs(10));
    register(&f, "ada@example.com").await;
    for _ in 0..3 {
        let wrong = credentials("ada@example.com", "not the password");
        let _ = f.accounts.sign_in(&f.sessions, wrong, None, &who()).await;
    }
    let hashed_before = f.accounts.hasher.verifications();

    let right = credentials("ada@example.com", PASSWORD);
    let result = f.accounts.sign_in(&f.sessions, right, None, &who()).await;

    assert!(
        matches!(result, Err(SignInError::Throttled { retry_after }) if retry_after >= Duration::from_secs(1)),
        "{result:?}"
    );
    assert_eq!(f.accounts.hasher.verifications(), hashed_before);
}

#[tokio::test]
async fn a_rotated_refresh_token_replayed_after_the_grace_window_revokes_the_session() {
    let f = fixture(Duration::ZERO);
    let first = register(&f, "ada@example.com").await;
    let token = first.session.refresh_token.clone().unwrap();

    let renewed = f.sessions.refresh(token.clone(), &who()).await.unwrap();
    assert!(renewed.is_some());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let replayed = f.sessions.refresh(token, &who()).await.unwrap();

    assert!(replayed.is_none());
    let row = session_row(&f.accounts, &first.session.session_id);
    assert!(row.revoked_at.is_some());
    assert_eq!(
        row.revoke_reason.as_deref(),
        Some(EventKind::RefreshReuse.as_str())
    );
    let access = renewed.unwrap().session.access_token;
    assert!(f.sessions.verify_access(&access).is_none());
}

#[tokio::test]
async fn a_refresh_token_swaps_exactly_once() {
    let f = fixture(Duration::from_secs(10));
    let first = register(&f, "ada@example.com").await;
    let id = first.session.session_id.clone();
    let old = hash_token(first.session.refresh_token.as_deref().unwrap());
    let now = chrono::Utc::now().naive_utc();

    let mut conn = conn(&f.accounts);
    let one = sessions::rotate_refresh(&mut conn, &id, &old, &hash_token("one"), now).unwrap();
    let two = sessions::rotate_refresh(&mut conn, &id, &old, &hash_token("two"), now).unwrap();

    assert!(one);
    assert!(!two);
    assert_eq!(
        session_row(&f.accounts, &id).refresh_hash,
        hash_token("one")
    );
}

#[tokio::test]
async fn two_refreshes_from_one_token_both_succeed_and_one_rotates() {
    let f = fixture(Duration::from_secs(10));
    let first = register(&f, "ada@example.com").await;
    let token = first.session.refresh_token.clone().unwrap();

    let who = who();
    let (a, b) = tokio::join!(
        f.sessions.refresh(token.clone(), &who),
        f.sessions.refresh(token, &who)
    );

    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    let rotated = [&a, &b]
        .iter()
        .filter(|s| s.session.refresh_token.is_some())
        .count();
    assert_eq!(
        rotated, 1,
        "exactly one refresh rotates; the other takes the grace path"
    );
    let row = session_row(&f.accounts, &first.session.session_id);
    assert!(row.revoked_at.is_none());
}

#[tokio::test]
async fn a_password_change_revokes_every_other_session_in_one_transaction() {
    let f = fixture(Duration::from_secs(10));
    let current = register(&f, "ada@example.com").await;
    let other_a = sign_in_ada(&f).await;
    let other_b = sign_in_ada(&f).await;
    let new_password = "an entirely different passphrase".to_owned();

    let changed = f
        .accounts
        .change_password(
            &f.sessions,
            &current.user,
            PASSWORD.into(),
            new_password.clone().into(),
            &who(),
        )
        .await
        .unwrap();

    let updated_at: chrono::NaiveDateTime = user_rows::table
        .find(&current.user.user_id)
        .select(user_rows::updated_at)
        .first(&mut conn(&f.accounts))
        .unwrap();
    for other in [&other_a, &other_b] {
        let row = session_row(&f.accounts, &other.session.session_id);
        assert_eq!(
            row.revoked_at,
            Some(updated_at),
            "same transaction, same instant"
        );
        assert_eq!(
            row.revoke_reason.as_deref(),
            Some(EventKind::PasswordChanged.as_str())
        );
        assert!(
            f.sessions
                .verify_access(&other.session.access_token)
                .is_none()
        );
    }
    let kept = session_row(&f.accounts, &current.session.session_id);
    assert!(kept.revoked_at.is_none());
    assert_eq!(kept.rotated_at, Some(updated_at));
    let new_refresh = changed.session.refresh_token.as_deref().unwrap();
    assert_eq!(kept.refresh_hash, hash_token(new_refresh));
    let again = credentials("ada@example.com", &new_password);
    assert!(
        f.accounts
            .sign_in(&f.sessions, again, None, &who())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_failed_password_change_changes_nothing() {
    let f = fixture(Duration::from_secs(10));
    let current = register(&f, "ada@example.com").await;
    let other = sign_in_ada(&f).await;
    // The current session ends (elsewhere) while the change is on its way.
    diesel::update(session_rows::table.find(&current.session.session_id))
        .set(session_rows::revoked_at.eq(Some(chrono::Utc::now().naive_utc())))
        .execute(&mut conn(&f.accounts))
        .unwrap();

    let changed = f
        .accounts
        .change_password(
            &f.sessions,
            &current.user,
            PASSWORD.into(),
            "an entirely different passphrase".into(),
            &who(),
        )
        .await;

    assert!(
        matches!(changed, Err(PasswordChangeError::SessionEnded)),
        "{changed:?}"
    );
    assert!(
        session_row(&f.accounts, &other.session.session_id)
            .revoked_at
            .is_none()
    );
    let old = credentials("ada@example.com", PASSWORD);
    assert!(
        f.accounts
            .sign_in(&f.sessions, old, None, &who())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn revoke_all_keeps_no_session() {
    let f = fixture(Duration::from_secs(10));
    let first = register(&f, "ada@example.com").await;
    let second = sign_in_ada(&f).await;

    let ended = f
        .sessions
        .revoke_all(&first.user.user_id, EventKind::SessionRevoked, &who())
        .await
        .unwrap();

    assert_eq!(ended.len(), 2);
    for signed_in in [&first, &second] {
        assert!(
            f.sessions
                .verify_access(&signed_in.session.access_token)
                .is_none()
        );
        let refresh = signed_in.session.refresh_token.clone().unwrap();
        assert!(f.sessions.refresh(refresh, &who()).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn failures_count_atomically_and_stale_streaks_start_again() {
    let f = fixture(Duration::from_secs(10));
    let mut conn = conn(&f.accounts);
    let now = chrono::Utc::now().naive_utc();
    let stale_before = now - TimeDelta::minutes(15);
    let count = |conn: &mut crate::db::DbConnection, at| {
        throttle_rows::count_failure(conn, "a@example.com", "192.0.2.1", at).unwrap()
    };

    assert_eq!(count(&mut conn, now), 1);
    assert_eq!(count(&mut conn, now), 2);
    // A streak whose last attempt is older than the window starts again at
    // the next admission.
    diesel::update(crate::db::schema::login_throttles::table)
        .set(crate::db::schema::login_throttles::last_failure_at.eq(now - TimeDelta::hours(1)))
        .execute(&mut conn)
        .unwrap();
    let lost_before = now - TimeDelta::minutes(1);
    let streak = throttle_rows::count_attempt(
        &mut conn,
        "a@example.com",
        "192.0.2.1",
        now,
        stale_before,
        lost_before,
    )
    .unwrap();
    assert_eq!((streak.failures, streak.in_flight), (0, 1));
    assert_eq!(count(&mut conn, now), 1);
}

#[tokio::test]
async fn the_registration_limit_counts_registrations_not_audit_rows_or_operator_accounts() {
    let f = fixture(Duration::from_secs(10));
    let mut conn = conn(&f.accounts);
    let now = chrono::Utc::now().naive_utc();
    let limits = f.accounts.throttle;
    for n in 0..20 {
        // Operator-made accounts and audit rows from the same address.
        let id = UserId::from_stored(format!("operator-made-{n}"));
        crate::db::users::insert(
            &mut conn,
            &crate::db::models::NewUser {
                id: &id,
                email: &Email::new(&format!("op{n}@example.com")),
                name: "Made by an operator",
                password_hash: "x",
                created_at: now,
                updated_at: now,
                registration_ip: None,
                email_verified_at: Some(now),
            },
        )
        .unwrap();
        events::record(
            &mut conn,
            Some(&id),
            None,
            EventKind::Registered,
            &who(),
            now,
        )
        .unwrap();
    }
    assert_eq!(
        throttle::registration_blocked_for(&mut conn, &limits, &who().ip, now).unwrap(),
        None
    );
    drop(conn);

    for n in 0..10 {
        register(&f, &format!("self{n}@example.com")).await;
    }
    let account = NewAccount {
        name: "One Too Many".into(),
        email: "eleven@example.com".into(),
        password: PASSWORD.into(),
    };
    let result = f.accounts.register(&f.sessions, account, &who()).await;
    assert!(
        matches!(result, Err(RegisterError::Throttled { .. })),
        "{result:?}"
    );
}

pub(super) async fn link_for(accounts: &Accounts, email: &str) -> Option<ResetLink> {
    accounts
        .request_password_reset(&Email::new(email), &who())
        .await
        .unwrap()
}

pub(super) const NEW_PASSWORD: &str = "an entirely different passphrase";

#[tokio::test]
async fn a_reset_link_works_once_and_ends_every_session() {
    let f = fixture(Duration::from_secs(10));
    let first = register(&f, "ada@example.com").await;
    let link = link_for(&f.accounts, "ADA@example.com").await.unwrap();
    assert_eq!(link.email.as_str(), "ada@example.com");

    let (entry, notice) = f
        .accounts
        .reset_password(&f.sessions, link.token.clone(), NEW_PASSWORD.into(), &who())
        .await
        .unwrap();
    let signed_in = entry.signed_in().unwrap();
    let again = f
        .accounts
        .reset_password(
            &f.sessions,
            link.token,
            "yet another long passphrase".into(),
            &who(),
        )
        .await;

    assert_eq!(notice.email.as_str(), "ada@example.com");
    assert!(matches!(again, Err(ResetError::InvalidLink)));
    assert!(
        f.sessions
            .verify_access(&first.session.access_token)
            .is_none()
    );
    assert!(
        f.sessions
            .verify_access(&signed_in.session.access_token)
            .is_some()
    );
    let old = f
        .accounts
        .sign_in(
            &f.sessions,
            credentials("ada@example.com", PASSWORD),
            None,
            &who(),
        )
        .await;
    assert!(matches!(old, Err(SignInError::InvalidCredentials)));
}

#[tokio::test]
async fn an_unknown_address_gets_a_row_of_the_same_shape_that_is_never_a_link() {
    use crate::db::schema::password_resets as rows;
    let f = fixture(Duration::from_secs(10));
    register(&f, "ada@example.com").await;
    for email in [
        "nobody@example.com",
        "NOBODY@example.com",
        "ada@example.com",
    ] {
        link_for(&f.accounts, email).await;
    }

    // The address, the account, the token hash and whether it is used.
    type Row = (Option<String>, Option<String>, Option<String>, bool);
    let mut conn = conn(&f.accounts);
    let written: Vec<Row> = rows::table
        .order(rows::created_at)
        .select((
            rows::email,
            rows::user_id,
            rows::token_hash,
            rows::used_at.is_not_null(),
        ))
        .load(&mut conn)
        .unwrap();
    let shapes: Vec<_> = written
        .iter()
        .map(|(email, user, hash, used)| {
            let hash = hash.as_deref().map(str::len);
            (email.as_deref(), user.is_some(), hash, *used)
        })
        .collect();
    // Both requests for the unknown address wrote a token hash; the second
    // superseded the first, as it does for an account's address.
    assert_eq!(
        shapes,
        [
            (Some("nobody@example.com"), false, Some(64), true),
            (Some("nobody@example.com"), false, Some(64), false),
            (Some("ada@example.com"), true, Some(64), false),
        ]
    );
    let (_, _, hash, _) = &written[1];
    let now = chrono::Utc::now().naive_utc();
    let found = crate::db::resets::live_user(&mut conn, hash.as_deref().unwrap(), now).unwrap();
    assert_eq!(found, None, "a row without an account is never a link");
}

#[tokio::test]
async fn newer_links_expiry_and_password_changes_end_older_links() {
    let f = fixture(Duration::from_secs(10));
    let user = register(&f, "ada@example.com").await;
    let older = link_for(&f.accounts, "ada@example.com").await.unwrap();
    let newer = link_for(&f.accounts, "ada@example.com").await.unwrap();
    let superseded = f
        .accounts
        .reset_password(&f.sessions, older.token, NEW_PASSWORD.into(), &who())
        .await;
    assert!(matches!(superseded, Err(ResetError::InvalidLink)));

    f.accounts
        .change_password(
            &f.sessions,
            &user.user,
            PASSWORD.into(),
            NEW_PASSWORD.into(),
            &who(),
        )
        .await
        .unwrap();
    let after_change = f
        .accounts
        .reset_password(
            &f.sessions,
            newer.token,
            "yet another long passphrase".into(),
            &who(),
        )
        .await;
    assert!(matches!(after_change, Err(ResetError::InvalidLink)));

    let expiring = link_for(&f.accounts, "ada@example.com").await.unwrap();
    diesel::update(crate::db::schema::password_resets::table)
        .set(
            crate::db::schema::password_resets::expires_at
                .eq(chrono::Utc::now().naive_utc() - TimeDelta::seconds(1)),
        )
        .execute(&mut conn(&f.accounts))
        .unwrap();
    let expired = f
        .accounts
        .reset_password(
            &f.sessions,
            expiring.token,
            "yet another long passphrase".into(),
            &who(),
        )
        .await;
    assert!(matches!(expired, Err(ResetError::InvalidLink)));
}

#[tokio::test]
async fn unknown_disabled_and_throttled_addresses_get_no_link() {
    let f = fixture(Duration::from_secs(10));
    register(&f, "ada@example.com").await;
    register(&f, "off@example.com").await;
    f.accounts
        .disable_user(&Email::new("off@example.com"), &who())
        .await
        .unwrap();

    assert!(link_for(&f.accounts, "nobody@example.com").await.is_none());
    assert!(link_for(&f.accounts, "off@example.com").await.is_none());
    for _ in 0..3 {
        assert!(link_for(&f.accounts, "ada@example.com").await.is_some());
    }
    assert!(
        link_for(&f.accounts, "ada@example.com").await.is_none(),
        "3 per hour"
    );
}

#[tokio::test]
async fn a_weak_new_password_is_refused_and_the_link_still_works() {
    let f = fixture(Duration::from_secs(10));
    register(&f, "ada@example.com").await;
    let link = link_for(&f.accounts, "ada@example.com").await.unwrap();

    let weak = f
        .accounts
        .reset_password(
            &f.sessions,
            link.token.clone(),
            "password1234".into(),
            &who(),
        )
        .await;

    assert!(matches!(weak, Err(ResetError::Weak(_))));
    let account = f.accounts.reset_link_account(&link.token).await.unwrap();
    assert_eq!(
        account.as_ref().map(Email::as_str),
        Some("ada@example.com"),
        "still live"
    );
}

/// How many rows of each kind are keyed to `user_id` or `email`.
fn rows_of(accounts: &Accounts, user_id: &UserId, email: &str) -> [i64; 5] {
    use crate::db::schema::{auth_events, login_throttles, password_resets, rate_limits};
    let mut conn = conn(accounts);
    [
        user_rows::table
            .find(user_id)
            .count()
            .get_result(&mut conn)
            .unwrap(),
        session_rows::table
            .filter(session_rows::user_id.eq(user_id))
            .count()
            .get_result(&mut conn)
            .unwrap(),
        auth_events::table
            .filter(auth_events::user_id.eq(user_id))
            .count()
            .get_result(&mut conn)
            .unwrap(),
        password_resets::table
            .filter(password_resets::user_id.eq(user_id))
            .count()
            .get_result(&mut conn)
            .unwrap(),
        login_throttles::table
            .filter(login_throttles::email.eq(email))
            .count()
            .get_result::<i64>(&mut conn)
            .unwrap()
            + rate_limits::table
                .filter(rate_limits::key.eq(email))
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap(),
    ]
}

#[tokio::test]
async fn deleting_an_account_takes_its_password_and_every_row_keyed_to_it() {
    let f = fixture(Duration::from_secs(10));
    let current = register(&f, "ada@example.com").await;
    let other = sign_in_ada(&f).await;
    let wrong = credentials("ada@example.com", "not the password");
    assert!(
        f.accounts
            .sign_in(&f.sessions, wrong, None, &who())
            .await
            .is_err()
    );
    assert!(link_for(&f.accounts, "ada@example.com").await.is_some());
    // Another instance on the same database, which hears of revocations only
    // by polling.
    let elsewhere = Sessions::new(
        f.accounts.pool().clone(),
        JwtKeys::new(
            &Secret::new("a-domain-test-secret-of-at-least-32-bytes"),
            &[],
            Duration::from_secs(600),
        ),
        policy(Duration::from_secs(10)),
        Clock::system(),
    );
    elsewhere.poll_revocations().await.unwrap();
    let user_id = current.user.user_id.clone();
    let before = rows_of(&f.accounts, &user_id, "ada@example.com");
    assert!(before.iter().all(|n| *n > 0), "{before:?}");

    let refused = f
        .accounts
        .delete_account(
            &f.sessions,
            &current.user,
            "not the password".into(),
            &who(),
        )
        .await;
    assert!(matches!(refused, Err(DeleteAccountError::WrongPassword)));
    assert_eq!(rows_of(&f.accounts, &user_id, "ada@example.com"), before);

    let deleted = f
        .accounts
        .delete_account(&f.sessions, &current.user, PASSWORD.into(), &who())
        .await
        .unwrap();

    assert_eq!(deleted.email, Email::new("ada@example.com"));
    assert_eq!(deleted.sessions_ended, 2);
    assert_eq!(rows_of(&f.accounts, &user_id, "ada@example.com"), [0; 5]);
    for signed_in in [&current, &other] {
        let token = &signed_in.session.access_token;
        assert!(f.sessions.verify_access(token).is_none());
        assert!(elsewhere.verify_access(token).is_some(), "not polled yet");
    }
    assert_eq!(elsewhere.poll_revocations().await.unwrap(), 2);
    for signed_in in [&current, &other] {
        assert!(
            elsewhere
                .verify_access(&signed_in.session.access_token)
                .is_none()
        );
    }
    // The address is free again.
    register(&f, "ada@example.com").await;
}

#[tokio::test]
async fn an_operator_deletes_an_account_by_its_address() {
    let f = fixture(Duration::from_secs(10));
    let ada = register(&f, "ada@example.com").await;
    let operator = Requester {
        ip: "cli".into(),
        user_agent: "gatehouse user delete".into(),
    };

    let deleted = f
        .accounts
        .delete_user(&Email::new("ada@example.com"), &operator)
        .await
        .unwrap();
    let again = f
        .accounts
        .delete_user(&Email::new("ada@example.com"), &operator)
        .await;

    assert_eq!(deleted.sessions_ended, 1);
    // The command line runs elsewhere: the site hears of it by its poll.
    f.sessions.poll_revocations().await.unwrap();
    assert!(
        f.sessions
            .verify_access(&ada.session.access_token)
            .is_none()
    );
    assert!(matches!(again, Err(OperatorError::NoSuchUser(_))));
    assert_eq!(
        rows_of(&f.accounts, &ada.user.user_id, "ada@example.com"),
        [0; 5]
    );
}
