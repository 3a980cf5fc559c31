//! Two-factor sign-in through the domain: enrolment, challenges, codes that
//! work once, recovery codes, trusted devices, step-up and turning it off.

use std::time::Duration;

use diesel::prelude::*;

use super::tests::{
    Fixture, NEW_PASSWORD, PASSWORD, conn, credentials, fixture, link_for, register, who,
};
use super::*;
use crate::auth::sealed::SealingKey;
use crate::auth::totp::{STEP_SECS, TotpSecret};
use crate::db::schema::{sessions as session_rows, users as user_rows};
use crate::ids::Email;

const ADA: &str = "ada@example.com";
const ONE_STEP: Duration = Duration::from_secs(STEP_SECS as u64);

fn key() -> SealingKey {
    SealingKey::new(&[42; 32])
}

/// The domain fixture, with a key to seal TOTP secrets.
fn two_factor_fixture() -> Fixture {
    let mut f = fixture(Duration::from_secs(10));
    f.accounts = f.accounts.with_two_factor(TwoFactorPolicy {
        key: Some(key()),
        ..Default::default()
    });
    f
}

/// Ada with two-factor on: her first session, her authenticator's secret and
/// her recovery codes.
struct Enrolled {
    ada: SignedIn,
    secret: TotpSecret,
    recovery_codes: Vec<String>,
}

async fn enrolled(f: &Fixture) -> Enrolled {
    let ada = register(f, ADA).await;
    let secret = begin(f, &ada).await;
    let (recovery_codes, _) = f
        .accounts
        .enable_two_factor(&ada.user, &code(f, &secret, 0), &who())
        .await
        .unwrap();
    // To the next step: the code that turned it on is used.
    f.clock.advance(ONE_STEP);
    Enrolled {
        ada,
        secret,
        recovery_codes,
    }
}

/// Starts an enrolment; the secret as an authenticator app reads it.
async fn begin(f: &Fixture, ada: &SignedIn) -> TotpSecret {
    let enrolment = f
        .accounts
        .begin_two_factor(&ada.user.user_id, &Email::new(ADA))
        .await
        .unwrap();
    secret_of(&enrolment)
}

fn secret_of(enrolment: &Enrolment) -> TotpSecret {
    let bytes = totp_rs::Secret::Encoded(enrolment.secret_base32.clone())
        .to_bytes()
        .unwrap();
    TotpSecret::from_bytes(bytes)
}

/// The code of the step `offset` steps from now (by the domain's clock).
fn code(f: &Fixture, secret: &TotpSecret, offset: i64) -> String {
    let step = f.accounts.clock.timestamp().div_euclid(STEP_SECS) + offset;
    secret.code_at_step(6, step)
}

/// Six digits that are no code of the steps around now.
fn wrong_code(f: &Fixture, secret: &TotpSecret) -> String {
    let near: Vec<String> = (-2..=2).map(|offset| code(f, secret, offset)).collect();
    (0..10)
        .map(|digit| digit.to_string().repeat(6))
        .find(|candidate| !near.contains(candidate))
        .unwrap()
}

async fn sign_in(f: &Fixture, credentials: Credentials) -> Entry {
    f.accounts
        .sign_in(&f.sessions, credentials, None, &who())
        .await
        .unwrap()
        .0
}

/// Signs in to `email` with the right password; the challenge it opens.
async fn challenge(f: &Fixture, email: &str) -> Challenge {
    match sign_in(f, credentials(email, PASSWORD)).await {
        Entry::SecondFactor(challenge) => challenge,
        Entry::SignedIn(_) => panic!("signed in without a second factor"),
    }
}

/// Signs in to Ada's account with `password` from a browser `trust` names.
async fn sign_in_on(f: &Fixture, password: &str, trust: &DeviceTrust) -> Entry {
    let on_device = Credentials {
        trusted_device: Some(trust.token.clone()),
        ..credentials(ADA, password)
    };
    sign_in(f, on_device).await
}

async fn finish(
    f: &Fixture,
    challenge: &Challenge,
    code: &str,
) -> Result<SecondFactorDone, SecondFactorError> {
    f.accounts
        .finish_sign_in(&f.sessions, &challenge.token, code, false, None, &who())
        .await
}

/// Ada signs in with a code and has this browser trusted.
async fn trust_this_device(f: &Fixture, ada: &Enrolled) -> DeviceTrust {
    let challenge = challenge(f, ADA).await;
    let code = code(f, &ada.secret, 0);
    let done = f
        .accounts
        .finish_sign_in(&f.sessions, &challenge.token, &code, true, None, &who())
        .await
        .unwrap();
    done.trusted.expect("a trusted device")
}

fn session_rows_of(f: &Fixture, user: &SessionUser) -> i64 {
    session_rows::table
        .filter(session_rows::user_id.eq(&user.user_id))
        .count()
        .get_result(&mut conn(&f.accounts))
        .unwrap()
}

#[tokio::test]
async fn enrolment_shows_the_same_secret_until_it_is_enabled() {
    let f = two_factor_fixture();
    let ada = register(&f, ADA).await;
    let email = Email::new(ADA);

    let first = f
        .accounts
        .begin_two_factor(&ada.user.user_id, &email)
        .await
        .unwrap();
    let second = f
        .accounts
        .begin_two_factor(&ada.user.user_id, &email)
        .await
        .unwrap();

    assert_eq!(first.secret_base32, second.secret_base32);
    assert!(first.otpauth_url.contains(&first.secret_base32));
}

#[tokio::test]
async fn enabling_needs_a_right_code_and_gives_ten_recovery_codes() {
    let f = two_factor_fixture();
    let ada = register(&f, ADA).await;
    let secret = begin(&f, &ada).await;

    let wrong = f
        .accounts
        .enable_two_factor(&ada.user, &wrong_code(&f, &secret), &who())
        .await;
    assert!(matches!(wrong, Err(TwoFactorError::WrongCode)), "{wrong:?}");
    assert!(!f.accounts.has_two_factor(&ada.user.user_id).await.unwrap());

    let (codes, _) = f
        .accounts
        .enable_two_factor(&ada.user, &code(&f, &secret, 0), &who())
        .await
        .unwrap();

    assert_eq!(codes.len(), 10);
    let status = f
        .accounts
        .two_factor_status(&ada.user.user_id)
        .await
        .unwrap();
    assert!(status.enabled);
    assert_eq!(status.codes_left, 10);
}

#[tokio::test]
async fn the_stored_secret_is_sealed_to_its_account() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let bob = register(&f, "bob@example.com").await;

    let stored: String = user_rows::table
        .find(&ada.ada.user.user_id)
        .select(user_rows::totp_secret)
        .first::<Option<String>>(&mut conn(&f.accounts))
        .unwrap()
        .unwrap();

    let raw = ada.secret.expose();
    assert!(!stored.contains(&ada.secret.base32()));
    assert!(!stored.as_bytes().windows(raw.len()).any(|w| w == raw));
    assert_eq!(
        key().open(ada.ada.user.user_id.as_str(), &stored).unwrap(),
        raw
    );
    assert!(key().open(bob.user.user_id.as_str(), &stored).is_err());
    // Copied into Bob's row, with two-factor on: Ada's codes do not open it.
    diesel::update(user_rows::table.find(&bob.user.user_id))
        .set((
            user_rows::totp_secret.eq(&stored),
            user_rows::two_factor_enabled_at.eq(Some(f.accounts.clock.now())),
        ))
        .execute(&mut conn(&f.accounts))
        .unwrap();
    let bobs = challenge(&f, "bob@example.com").await;
    let read = finish(&f, &bobs, &code(&f, &ada.secret, 0)).await;
    assert!(
        matches!(read, Err(SecondFactorError::Failed(_))),
        "{read:?}"
    );
}

#[tokio::test]
async fn the_right_password_opens_a_challenge_and_no_session() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let before = session_rows_of(&f, &ada.ada.user);

    let entry = sign_in(&f, credentials(ADA, PASSWORD)).await;

    assert!(matches!(entry, Entry::SecondFactor(_)), "{entry:?}");
    assert_eq!(session_rows_of(&f, &ada.ada.user), before);
}

#[tokio::test]
async fn the_right_code_finishes_the_sign_in_with_a_session() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let before = session_rows_of(&f, &ada.ada.user);
    let challenge = challenge(&f, ADA).await;

    let done = finish(&f, &challenge, &code(&f, &ada.secret, 0))
        .await
        .unwrap();

    assert_eq!(done.signed_in.user.user_id, ada.ada.user.user_id);
    let access = &done.signed_in.session.access_token;
    assert!(f.sessions.verify_access(access).is_some());
    assert!(done.trusted.is_none());
    assert_eq!(session_rows_of(&f, &ada.ada.user), before + 1);
}

#[tokio::test]
async fn a_used_code_is_refused_on_a_new_challenge() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let code = code(&f, &ada.secret, 0);
    finish(&f, &challenge(&f, ADA).await, &code).await.unwrap();

    let replayed = finish(&f, &challenge(&f, ADA).await, &code).await;

    assert!(
        matches!(replayed, Err(SecondFactorError::WrongCode)),
        "{replayed:?}"
    );
}

#[tokio::test]
async fn an_older_code_is_refused_after_a_newer_one() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let (older, newer) = (code(&f, &ada.secret, 0), code(&f, &ada.secret, 1));
    finish(&f, &challenge(&f, ADA).await, &newer).await.unwrap();

    let refused = finish(&f, &challenge(&f, ADA).await, &older).await;

    assert!(
        matches!(refused, Err(SecondFactorError::WrongCode)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_challenge_expires_after_five_minutes() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let challenge = challenge(&f, ADA).await;

    f.clock.advance(CHALLENGE_TTL + Duration::from_secs(1));
    let late = finish(&f, &challenge, &code(&f, &ada.secret, 0)).await;

    assert!(matches!(late, Err(SecondFactorError::Expired)), "{late:?}");
}

#[tokio::test]
async fn the_fifth_wrong_code_ends_the_challenge() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let challenge = challenge(&f, ADA).await;
    let wrong = wrong_code(&f, &ada.secret);
    // From five addresses, so that no (address, IP) pair locks first: the
    // challenge's own count is what stops them.
    let mut answers = Vec::new();
    for n in 1..=5 {
        let from = Requester {
            ip: format!("198.51.100.{n}"),
            ..who()
        };
        let answer = f
            .accounts
            .finish_sign_in(&f.sessions, &challenge.token, &wrong, false, None, &from)
            .await;
        answers.push(answer);
    }

    for answer in &answers[..4] {
        assert!(
            matches!(answer, Err(SecondFactorError::WrongCode)),
            "{answer:?}"
        );
    }
    assert!(
        matches!(answers[4], Err(SecondFactorError::Expired)),
        "{:?}",
        answers[4]
    );
    let right = finish(&f, &challenge, &code(&f, &ada.secret, 0)).await;
    assert!(
        matches!(right, Err(SecondFactorError::Expired)),
        "{right:?}"
    );
}

#[tokio::test]
async fn a_recovery_code_signs_in_once_only() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let recovery = &ada.recovery_codes[0];

    let first = finish(&f, &challenge(&f, ADA).await, recovery).await;
    let again = finish(&f, &challenge(&f, ADA).await, recovery).await;

    assert!(first.is_ok(), "{first:?}");
    assert!(
        matches!(again, Err(SecondFactorError::WrongCode)),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_recovery_code_ends_the_trusted_devices() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let trust = trust_this_device(&f, &ada).await;
    let entry = sign_in_on(&f, PASSWORD, &trust).await;
    assert!(matches!(entry, Entry::SignedIn(_)), "{entry:?}");

    let challenge = challenge(&f, ADA).await;
    finish(&f, &challenge, &ada.recovery_codes[0])
        .await
        .unwrap();

    let entry = sign_in_on(&f, PASSWORD, &trust).await;
    assert!(matches!(entry, Entry::SecondFactor(_)), "{entry:?}");
}

#[tokio::test]
async fn regenerating_recovery_codes_voids_the_old_set() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;

    let (new_codes, _) = f
        .accounts
        .regenerate_recovery_codes(&ada.ada.user, &who())
        .await
        .unwrap();

    let challenge = challenge(&f, ADA).await;
    let old = finish(&f, &challenge, &ada.recovery_codes[0]).await;
    assert!(matches!(old, Err(SecondFactorError::WrongCode)), "{old:?}");
    let new = finish(&f, &challenge, &new_codes[0]).await;
    assert!(new.is_ok(), "{new:?}");
}

#[tokio::test]
async fn a_trusted_device_signs_in_without_a_second_factor() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;

    let trust = trust_this_device(&f, &ada).await;
    let entry = sign_in_on(&f, PASSWORD, &trust).await;

    assert_eq!(trust.max_age, TRUSTED_DEVICE_TTL);
    assert!(matches!(entry, Entry::SignedIn(_)), "{entry:?}");
}

#[tokio::test]
async fn a_password_change_ends_the_trusted_devices() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let trust = trust_this_device(&f, &ada).await;

    f.accounts
        .change_password(
            &f.sessions,
            &ada.ada.user,
            PASSWORD.into(),
            NEW_PASSWORD.into(),
            &who(),
        )
        .await
        .unwrap();

    let entry = sign_in_on(&f, NEW_PASSWORD, &trust).await;
    assert!(matches!(entry, Entry::SecondFactor(_)), "{entry:?}");
}

#[tokio::test]
async fn a_password_reset_ends_the_trusted_devices() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let trust = trust_this_device(&f, &ada).await;
    let link = link_for(&f.accounts, ADA).await.unwrap();

    f.accounts
        .reset_password(&f.sessions, link.token, NEW_PASSWORD.into(), &who())
        .await
        .unwrap();

    let entry = sign_in_on(&f, NEW_PASSWORD, &trust).await;
    assert!(matches!(entry, Entry::SecondFactor(_)), "{entry:?}");
}

#[tokio::test]
async fn turning_two_factor_off_ends_the_trusted_devices() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let trust = trust_this_device(&f, &ada).await;

    f.accounts
        .disable_two_factor(&ada.ada.user, &code(&f, &ada.secret, 1), &who())
        .await
        .unwrap();

    // On again, with a new secret: the old device is not trusted.
    let secret = begin(&f, &ada.ada).await;
    f.accounts
        .enable_two_factor(&ada.ada.user, &code(&f, &secret, 0), &who())
        .await
        .unwrap();
    let entry = sign_in_on(&f, PASSWORD, &trust).await;
    assert!(matches!(entry, Entry::SecondFactor(_)), "{entry:?}");
}

#[tokio::test]
async fn a_password_reset_leads_to_the_second_factor() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let before = session_rows_of(&f, &ada.ada.user);
    let link = link_for(&f.accounts, ADA).await.unwrap();

    let (entry, _) = f
        .accounts
        .reset_password(&f.sessions, link.token, NEW_PASSWORD.into(), &who())
        .await
        .unwrap();

    let Entry::SecondFactor(challenge) = entry else {
        panic!("a reset signed in without a second factor: {entry:?}");
    };
    assert_eq!(session_rows_of(&f, &ada.ada.user), before);
    let done = finish(&f, &challenge, &code(&f, &ada.secret, 0)).await;
    assert!(done.is_ok(), "{done:?}");
}

#[tokio::test]
async fn step_up_is_needed_five_minutes_after_signing_in() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let challenge = challenge(&f, ADA).await;
    let done = finish(&f, &challenge, &code(&f, &ada.secret, 0))
        .await
        .unwrap();
    let user = &done.signed_in.user;

    assert!(!f.accounts.needs_step_up(user));
    f.clock.advance(Duration::from_secs(5 * 60 + 1));
    assert!(f.accounts.needs_step_up(user));
}

#[tokio::test]
async fn step_up_with_the_password_and_a_code_renews_the_sign_in_time() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    f.clock.advance(Duration::from_secs(5 * 60 + 1));
    let user = &ada.ada.user;
    assert!(f.accounts.needs_step_up(user));

    let renewed = f
        .accounts
        .step_up(
            &f.sessions,
            user,
            PASSWORD.into(),
            &code(&f, &ada.secret, 0),
            &who(),
        )
        .await
        .unwrap();

    assert_eq!(renewed.user.session_id, user.session_id);
    assert!((f.accounts.clock.timestamp() - renewed.user.auth_time).abs() <= 1);
    assert!(!f.accounts.needs_step_up(&renewed.user));
}

#[tokio::test]
async fn step_up_with_a_wrong_password_is_refused() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;

    let refused = f
        .accounts
        .step_up(
            &f.sessions,
            &ada.ada.user,
            "not the password".into(),
            &code(&f, &ada.secret, 0),
            &who(),
        )
        .await;

    assert!(
        matches!(refused, Err(StepUpError::WrongPassword)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn two_factor_turns_off_with_a_right_code_only() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    let user = &ada.ada.user;

    let wrong = wrong_code(&f, &ada.secret);
    let refused = f.accounts.disable_two_factor(user, &wrong, &who()).await;
    assert!(
        matches!(refused, Err(TwoFactorError::WrongCode)),
        "{refused:?}"
    );
    assert!(f.accounts.has_two_factor(&user.user_id).await.unwrap());
    let right = code(&f, &ada.secret, 0);
    f.accounts
        .disable_two_factor(user, &right, &who())
        .await
        .unwrap();

    let entry = sign_in(&f, credentials(ADA, PASSWORD)).await;
    assert!(matches!(entry, Entry::SignedIn(_)), "{entry:?}");
}

#[tokio::test]
async fn one_code_on_two_challenges_at_once_signs_in_exactly_once() {
    let f = two_factor_fixture();
    let ada = enrolled(&f).await;
    for round in 0..20 {
        // A new step, and a new hour: the losers' codes stay below the
        // account's hourly limit of codes.
        f.clock.advance(Duration::from_secs(3600));
        let (a, b) = (challenge(&f, ADA).await, challenge(&f, ADA).await);
        let code = code(&f, &ada.secret, 0);

        let (one, two) = tokio::join!(finish(&f, &a, &code), finish(&f, &b, &code));

        let won = [&one, &two].iter().filter(|r| r.is_ok()).count();
        let lost = [&one, &two]
            .iter()
            .filter(|r| matches!(r, Err(SecondFactorError::WrongCode)))
            .count();
        assert_eq!((won, lost), (1, 1), "round {round}: {one:?} / {two:?}");
    }
}
