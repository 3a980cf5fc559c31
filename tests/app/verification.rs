//! Verified addresses (`REGISTRATION_VERIFY=required`), end to end over real
//! SMTP: a registration signs no one in until the mailed link is used with
//! the password of one of the address's registrations, so whoever registers
//! an address first does not claim it; every address gets the same answer
//! (by page, by header and by timing); a link works once, expires, gives way
//! to a newer one and is never stored in the clear; new links are mailed
//! within their limits.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use gatehouse::config::{Settings, VerifyMode};
use gatehouse_core::db::schema::{email_confirmations, pending_registrations};
use reqwest::{Response, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::helpers::*;

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";
const SQUATTER_PASSWORD: &str = "a squatter's own long passphrase";
const CONFIRM_SUBJECT: &str = "Subject: Confirm your Gatehouse e-mail address";
const EXISTING_SUBJECT: &str = "Subject: You already have a Gatehouse account";

async fn verify_app() -> (TestApp, Inbox) {
    verify_app_with(|_| {}).await
}

/// An app that requires confirmation and mails to a sink of its own, with
/// settings `customize` may change first.
async fn verify_app_with(customize: impl FnOnce(&mut Settings)) -> (TestApp, Inbox) {
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| {
        s.mail.mail_url = Some(mail_url);
        s.mail.registration_verify = Some(VerifyMode::Required);
        customize(s);
    })
    .await;
    (app, inbox)
}

/// Registers through the form in a browser of its own; the answer is always
/// the same redirect.
async fn register(app: &TestApp, name: &str, email: &str, password: &str) {
    let response = app
        .register_as(&Client::new("registrant"), name, email, password)
        .await;
    assert_redirects_to(&response, "/register/check-email");
}

/// Registers, then waits for the one mail that sends and returns it.
async fn register_for_mail(
    app: &TestApp,
    inbox: &Inbox,
    name: &str,
    email: &str,
    password: &str,
) -> String {
    let before = inbox.messages().len();
    register(app, name, email, password).await;
    mail(inbox, before + 1).await
}

/// Mail number `number` (from 1), once it has arrived.
async fn mail(inbox: &Inbox, number: usize) -> String {
    inbox.wait_for(number).await.remove(number - 1)
}

/// Waits for `count` mails and a little longer for any in flight, then
/// checks that exactly `count` came.
async fn assert_mail_count(inbox: &Inbox, count: usize) {
    if count > 0 {
        inbox.wait_for(count).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = inbox.messages();
    assert_eq!(messages.len(), count, "{messages:#?}");
}

/// The confirmation link in `mail`, which must be a confirmation mail.
#[track_caller]
fn link_in(mail: &str) -> String {
    assert!(mail.contains(CONFIRM_SUBJECT), "{mail}");
    confirm_link(mail).unwrap_or_else(|| panic!("no confirmation link: {mail}"))
}

fn token_of(link: &str) -> &str {
    link.rsplit('/').next().unwrap()
}

fn path_of<'a>(app: &TestApp, link: &'a str) -> &'a str {
    link.strip_prefix(&app.address)
        .unwrap_or_else(|| panic!("{link} is not on {}", app.address))
}

/// Opens `link` in `client` and posts `password` on the form it shows.
async fn confirm(app: &TestApp, client: &Client, link: &str, password: &str) -> Response {
    let path = path_of(app, link);
    client
        .submit(&app.address, path, path, &[("password", password)])
        .await
}

/// Posts `password` to `link` without opening it (its page may be an error),
/// with the token of the signed-out `client`'s sign-in form.
async fn post_to(app: &TestApp, client: &Client, link: &str, password: &str) -> Response {
    let csrf = app.csrf_token_as(client, "/login").await;
    app.post_form_as(
        client,
        path_of(app, link),
        &[("password", password), ("csrf_token", &csrf)],
    )
    .await
}

async fn open(client: &Client, link: &str) -> Response {
    client.http.get(link).send().await.unwrap()
}

async fn expect_expired(response: Response) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookie(&response, "gatehouse_access").is_none());
    let body = response.text().await.unwrap();
    assert!(body.contains("expired or was already used"), "{body}");
}

/// Checks that `response` signed `client` in and that the dashboard greets
/// `name`.
async fn assert_signed_in_as(app: &TestApp, client: &Client, response: &Response, name: &str) {
    assert_redirects_to(response, "/dashboard");
    assert!(
        set_cookie(response, "gatehouse_access").is_some(),
        "no session cookie"
    );
    let dashboard = app.get_as(client, "/dashboard").await;
    assert_eq!(dashboard.status(), StatusCode::OK);
    let body = dashboard.text().await.unwrap();
    assert!(body.contains(name), "{body}");
}

/// Signs in from a browser of its own.
async fn sign_in(app: &TestApp, email: &str, password: &str) -> Response {
    app.login_as(&app.new_client(), email, password).await
}

/// Asks for a new link from the "check your inbox" page; the answer is
/// always the same redirect.
async fn resend(app: &TestApp, email: &str) {
    let response = Client::new("forgetful")
        .submit(
            &app.address,
            "/register/check-email",
            "/register/resend",
            &[("email", email)],
        )
        .await;
    assert_redirects_to(&response, "/register/check-email");
}

/// Every stored confirmation link: id, token hash, purpose, address, account.
type StoredConfirmation = (String, String, String, String, Option<String>);

async fn stored_confirmations(app: &TestApp) -> Vec<StoredConfirmation> {
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        email_confirmations::table
            .select((
                email_confirmations::id,
                email_confirmations::token_hash,
                email_confirmations::purpose,
                email_confirmations::email,
                email_confirmations::user_id,
            ))
            .load(&mut pool.get_blocking().unwrap())
            .unwrap()
    })
    .await
    .unwrap()
}

/// Every kept registration of `email`: name and password hash.
async fn pending_of(app: &TestApp, email: &str) -> Vec<(String, String)> {
    let (pool, email) = (app.pool.clone(), email.to_owned());
    tokio::task::spawn_blocking(move || {
        pending_registrations::table
            .filter(pending_registrations::email.eq(email))
            .select((
                pending_registrations::name,
                pending_registrations::password_hash,
            ))
            .load(&mut pool.get_blocking().unwrap())
            .unwrap()
    })
    .await
    .unwrap()
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_registration_signs_no_one_in_and_mails_a_link_that_does() {
    let (app, inbox) = verify_app().await;
    let newcomer = Client::new("newcomer");

    let registered = app
        .register_as(&newcomer, "Ada Lovelace", EMAIL, PASSWORD)
        .await;

    assert_redirects_to(&registered, "/register/check-email");
    assert!(set_cookie(&registered, "gatehouse_access").is_none());
    assert_eq!(
        app.get_as(&newcomer, "/dashboard").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(accounts_with_email(&app.pool, EMAIL).await, 0);
    let message = mail(&inbox, 1).await;
    assert!(message.contains(EMAIL), "{message}");
    let link = link_in(&message);
    assert!(
        link.starts_with(&format!("{}/verify/", app.address)),
        "{link}"
    );
    let token = token_of(&link);
    assert_eq!(token.len(), 43, "{link}");
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{link}"
    );

    let confirmed = confirm(&app, &newcomer, &link, PASSWORD).await;

    assert_signed_in_as(&app, &newcomer, &confirmed, "Ada Lovelace").await;
    assert_eq!(accounts_with_email(&app.pool, EMAIL).await, 1);
    assert_mail_count(&inbox, 1).await;
}

#[tokio::test]
async fn the_check_email_page_offers_to_mail_the_link_again() {
    let (app, _inbox) = verify_app().await;

    let page = app
        .get_as(&Client::new("visitor"), "/register/check-email")
        .await;

    assert_eq!(page.status(), StatusCode::OK);
    let body = page.text().await.unwrap();
    assert!(body.contains(r#"action="/register/resend""#), "{body}");
    assert!(body.contains(r#"name="email""#), "{body}");
    csrf_of(&body);
}

#[tokio::test]
async fn opening_the_link_names_the_address_asks_for_the_password_and_changes_nothing() {
    let (app, inbox) = verify_app().await;
    let link = link_in(&register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await);
    let path = path_of(&app, &link);
    let owner = Client::new("owner");

    for _ in 0..2 {
        let page = open(&owner, &link).await;

        assert_eq!(page.status(), StatusCode::OK);
        assert!(set_cookie(&page, "gatehouse_access").is_none());
        let body = page.text().await.unwrap();
        assert!(body.contains(EMAIL), "{body}");
        assert!(body.contains(&format!(r#"action="{path}""#)), "{body}");
        assert!(body.contains(r#"name="password""#), "{body}");
        csrf_of(&body);
    }
    assert_eq!(accounts_with_email(&app.pool, EMAIL).await, 0);

    let confirmed = confirm(&app, &owner, &link, PASSWORD).await;
    assert_signed_in_as(&app, &owner, &confirmed, "Ada Lovelace").await;
}

#[tokio::test]
async fn a_wrong_password_on_the_link_confirms_nothing_and_the_link_still_works() {
    let (app, inbox) = verify_app().await;
    let link = link_in(&register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await);
    let owner = Client::new("owner");

    let wrong = confirm(&app, &owner, &link, "not the password at all").await;

    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&wrong, "gatehouse_access").is_none());
    let body = wrong.text().await.unwrap();
    assert!(body.contains(r#"name="password""#), "{body}");
    assert!(!body.contains("not the password at all"), "{body}");
    assert_eq!(accounts_with_email(&app.pool, EMAIL).await, 0);
    let right = confirm(&app, &owner, &link, PASSWORD).await;
    assert_signed_in_as(&app, &owner, &right, "Ada Lovelace").await;
}

#[tokio::test]
async fn the_link_works_once_in_any_browser_and_signs_that_browser_in() {
    let (app, inbox) = verify_app().await;
    let link = link_in(&register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await);
    let elsewhere = Client::new("a browser that never registered");

    let confirmed = confirm(&app, &elsewhere, &link, PASSWORD).await;

    assert_signed_in_as(&app, &elsewhere, &confirmed, "Ada Lovelace").await;
    let again = Client::new("again");
    expect_expired(open(&again, &link).await).await;
    expect_expired(post_to(&app, &again, &link, PASSWORD).await).await;
    assert_eq!(accounts_with_email(&app.pool, EMAIL).await, 1);
    assert!(pending_of(&app, EMAIL).await.is_empty());
    assert_redirects_to(&sign_in(&app, EMAIL, PASSWORD).await, "/dashboard");
}

#[tokio::test]
async fn the_link_expires_after_verify_ttl() {
    let ttl = Duration::from_secs(3600);
    let (app, inbox) = verify_app_with(move |s| s.mail.verify_ttl = ttl).await;
    let link = link_in(&register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await);
    let owner = Client::new("owner");

    app.clock.advance(ttl - Duration::from_secs(60));
    assert_eq!(open(&owner, &link).await.status(), StatusCode::OK);
    app.clock.advance(Duration::from_secs(120));

    expect_expired(open(&owner, &link).await).await;
    expect_expired(post_to(&app, &owner, &link, PASSWORD).await).await;
    assert_eq!(accounts_with_email(&app.pool, EMAIL).await, 0);
}

#[tokio::test]
async fn registering_again_supersedes_the_older_link() {
    let (app, inbox) = verify_app().await;
    let older = link_in(&register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await);
    let newer = link_in(&register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await);
    assert_ne!(older, newer);
    let owner = Client::new("owner");

    expect_expired(open(&owner, &older).await).await;
    expect_expired(post_to(&app, &owner, &older, PASSWORD).await).await;

    let confirmed = confirm(&app, &owner, &newer, PASSWORD).await;
    assert_signed_in_as(&app, &owner, &confirmed, "Ada Lovelace").await;
}

#[tokio::test]
async fn a_made_up_link_gets_the_expired_page() {
    let (app, inbox) = verify_app().await;
    register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await;
    let visitor = Client::new("guesser");

    for token in ["A".repeat(43), "not-one-of-ours".to_owned()] {
        let link = app.url(&format!("/verify/{token}"));
        expect_expired(open(&visitor, &link).await).await;
        expect_expired(post_to(&app, &visitor, &link, PASSWORD).await).await;
    }
    assert_eq!(accounts_with_email(&app.pool, EMAIL).await, 0);
}

#[tokio::test]
async fn the_database_keeps_only_hashes_of_the_link_and_of_the_password() {
    let (app, inbox) = verify_app().await;
    let link = link_in(&register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await);
    let token = token_of(&link);

    let confirmations = stored_confirmations(&app).await;
    let pending = pending_of(&app, EMAIL).await;

    assert_eq!(confirmations.len(), 1, "{confirmations:?}");
    let (id, token_hash, purpose, email, user_id) = &confirmations[0];
    for value in [id, token_hash, purpose, email] {
        assert!(!value.contains(token), "{confirmations:?}");
    }
    assert_eq!(*token_hash, sha256_hex(token));
    assert_eq!(email, EMAIL);
    assert_eq!(*user_id, None, "a new address has no account yet");
    assert_eq!(pending.len(), 1, "{pending:?}");
    let (name, password_hash) = &pending[0];
    assert_eq!(name, "Ada Lovelace");
    assert!(!password_hash.contains(PASSWORD), "{password_hash}");
    assert!(bcrypt::verify(PASSWORD, password_hash).unwrap());
}

#[tokio::test]
async fn an_owner_who_registers_after_a_squatter_confirms_with_their_own_password() {
    let (app, inbox) = verify_app().await;
    register_for_mail(&app, &inbox, "Squatter", EMAIL, SQUATTER_PASSWORD).await;
    let link = link_in(&register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await);

    owner_confirms(&app, &link).await;
}

#[tokio::test]
async fn an_owner_who_registered_before_a_squatter_confirms_with_their_own_password() {
    let (app, inbox) = verify_app().await;
    register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await;
    let link =
        link_in(&register_for_mail(&app, &inbox, "Squatter", EMAIL, SQUATTER_PASSWORD).await);

    owner_confirms(&app, &link).await;
}

/// The owner of the mailbox confirms with their own password from a browser
/// of their own: the account is theirs, by name and by password, and the
/// squatter's password never signs in.
async fn owner_confirms(app: &TestApp, link: &str) {
    let owner = Client::new("owner");

    let confirmed = confirm(app, &owner, link, PASSWORD).await;

    assert_signed_in_as(app, &owner, &confirmed, "Ada Lovelace").await;
    let dashboard = app.get_as(&owner, "/dashboard").await.text().await.unwrap();
    assert!(!dashboard.contains("Squatter"), "{dashboard}");
    assert_eq!(
        sign_in(app, EMAIL, SQUATTER_PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_redirects_to(&sign_in(app, EMAIL, PASSWORD).await, "/dashboard");
    assert_eq!(accounts_with_email(&app.pool, EMAIL).await, 1);
}

#[tokio::test]
async fn whoever_confirms_gets_the_account_with_the_password_they_typed() {
    let (app, inbox) = verify_app().await;
    register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await;
    let link =
        link_in(&register_for_mail(&app, &inbox, "Squatter", EMAIL, SQUATTER_PASSWORD).await);
    let squatter = Client::new("squatter");

    let confirmed = confirm(&app, &squatter, &link, SQUATTER_PASSWORD).await;

    assert_signed_in_as(&app, &squatter, &confirmed, "Squatter").await;
    assert_eq!(
        sign_in(&app, EMAIL, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_redirects_to(&sign_in(&app, EMAIL, SQUATTER_PASSWORD).await, "/dashboard");
}

#[tokio::test]
async fn only_the_three_latest_registrations_of_an_address_are_kept() {
    let (app, inbox) = verify_app().await;
    let registrations = [
        ("First", "the first of four long passphrases"),
        ("Second", "the second of four long passphrases"),
        ("Third", "the third of four long passphrases"),
        ("Fourth", "the fourth of four long passphrases"),
    ];
    let mut link = String::new();
    for (name, password) in registrations {
        link = link_in(&register_for_mail(&app, &inbox, name, EMAIL, password).await);
    }
    let owner = Client::new("owner");

    assert_eq!(pending_of(&app, EMAIL).await.len(), 3);
    let oldest = confirm(&app, &owner, &link, registrations[0].1).await;
    assert_eq!(oldest.status(), StatusCode::UNAUTHORIZED);

    let second = confirm(&app, &owner, &link, registrations[1].1).await;
    assert_signed_in_as(&app, &owner, &second, "Second").await;
    assert!(pending_of(&app, EMAIL).await.is_empty());
    for (_, password) in [registrations[2], registrations[3]] {
        assert_eq!(
            sign_in(&app, EMAIL, password).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn each_kind_of_address_gets_one_mail_of_its_own() {
    let (app, inbox) = verify_app().await;

    let first = register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await;
    let again = register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await;
    let existing = register_for_mail(
        &app,
        &inbox,
        "Someone Else",
        &app.test_user.email,
        "another long passphrase here",
    )
    .await;

    assert!(first.contains(EMAIL), "{first}");
    assert!(again.contains(EMAIL), "{again}");
    assert_ne!(link_in(&first), link_in(&again));
    assert!(existing.contains(EXISTING_SUBJECT), "{existing}");
    assert!(existing.contains(&app.test_user.email), "{existing}");
    assert_eq!(confirm_link(&existing), None, "{existing}");
    let joined = existing.replace("=\n", "");
    assert!(joined.contains(&app.url("/login")), "{existing}");
    assert!(joined.contains(&app.url("/password/forgot")), "{existing}");
    assert_mail_count(&inbox, 3).await;
    assert_eq!(
        accounts_with_email(&app.pool, &app.test_user.email).await,
        1
    );
    assert_redirects_to(
        &sign_in(&app, &app.test_user.email, &app.test_user.password).await,
        "/dashboard",
    );
}

#[tokio::test]
async fn new_unconfirmed_and_existing_addresses_get_the_same_answer_and_page() {
    let (app, inbox) = verify_app().await;
    register_for_mail(&app, &inbox, "Earlier", "pending@example.com", PASSWORD).await;
    let addresses = [
        "new@example.com",
        "pending@example.com",
        app.test_user.email.as_str(),
    ];

    let mut answers = Vec::new();
    for email in addresses {
        let visitor = Client::new("visitor");
        let response = app
            .register_as(&visitor, "Ada Lovelace", email, PASSWORD)
            .await;
        assert_redirects_to(&response, "/register/check-email");
        let outline = outline(&response);
        let page = app.get_as(&visitor, "/register/check-email").await;
        let page = (
            page.status(),
            without_tokens(&page.text().await.unwrap(), email),
        );
        answers.push((outline, page));
    }

    for (email, answer) in addresses.iter().zip(&answers).skip(1) {
        assert_eq!(answer.0, answers[0].0, "{email}: the answer");
        assert_eq!(answer.1, answers[0].1, "{email}: the page");
    }
    assert_eq!(answers[0].1.0, StatusCode::OK);
    assert_mail_count(&inbox, 4).await;
}

/// A response's status and headers, sorted, without `date`, and each cookie
/// it sets reduced to its name.
fn outline(response: &Response) -> (StatusCode, Vec<(String, String)>) {
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str() != "date")
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let value = match name.as_str() {
                "set-cookie" => value.split('=').next().unwrap().to_owned(),
                _ => value,
            };
            (name.as_str().to_owned(), value)
        })
        .collect();
    headers.sort();
    (response.status(), headers)
}

/// `html` with the value of every `csrf_token` field, and `email`, blanked.
fn without_tokens(html: &str, email: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let (mut rest, mut out) = (html, String::new());
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        rest = &rest[rest.find('"').unwrap()..];
    }
    out.push_str(rest);
    out.replace(email, "ADDRESS")
}

#[tokio::test]
async fn an_invalid_registration_is_shown_again_and_mails_nothing() {
    let (app, inbox) = verify_app().await;

    for (name, email, password) in [
        ("Ada Lovelace", EMAIL, "password1234"),
        ("Ada Lovelace", "not-an-address", PASSWORD),
        ("", EMAIL, PASSWORD),
        ("Someone Else", app.test_user.email.as_str(), "password1234"),
    ] {
        let response = app
            .register_as(&Client::new("typo"), name, email, password)
            .await;

        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{email}"
        );
        let body = response.text().await.unwrap();
        assert!(body.contains(r#"name="email""#), "{body}");
        assert!(!body.contains(password), "{body}");
    }
    assert_mail_count(&inbox, 0).await;
    assert!(pending_of(&app, EMAIL).await.is_empty());
}

#[tokio::test]
async fn signing_in_to_an_unconfirmed_address_mails_a_fresh_link_and_starts_no_session() {
    let (app, inbox) = verify_app().await;
    register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await;
    let returning = Client::new("returning");

    let wrong = app
        .login_as(&returning, EMAIL, "not the password at all")
        .await;
    let right = app.login_as(&returning, EMAIL, PASSWORD).await;

    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_redirects_to(&right, "/register/check-email");
    assert!(set_cookie(&right, "gatehouse_access").is_none());
    assert_eq!(app.cookie_in(&returning, "gatehouse_access"), None);
    assert_eq!(
        app.get_as(&returning, "/dashboard").await.status(),
        StatusCode::SEE_OTHER
    );
    let fresh = link_in(&mail(&inbox, 2).await);
    assert_mail_count(&inbox, 2).await;
    let confirmed = confirm(&app, &returning, &fresh, PASSWORD).await;
    assert_signed_in_as(&app, &returning, &confirmed, "Ada Lovelace").await;
}

#[tokio::test]
async fn sign_ins_to_an_unconfirmed_address_mail_at_most_one_link_a_minute() {
    let (app, inbox) = verify_app().await;
    register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await;

    for _ in 0..2 {
        assert_redirects_to(
            &sign_in(&app, EMAIL, PASSWORD).await,
            "/register/check-email",
        );
    }
    assert_mail_count(&inbox, 2).await;
    app.clock.advance(Duration::from_secs(61));
    assert_redirects_to(
        &sign_in(&app, EMAIL, PASSWORD).await,
        "/register/check-email",
    );

    link_in(&mail(&inbox, 3).await);
    assert_mail_count(&inbox, 3).await;
}

#[tokio::test]
async fn a_new_link_is_mailed_only_to_an_unconfirmed_address() {
    let (app, inbox) = verify_app().await;
    register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await;

    resend(&app, "nobody@example.com").await;
    resend(&app, &app.test_user.email).await;
    resend(&app, EMAIL).await;

    let message = mail(&inbox, 2).await;
    assert!(message.contains(EMAIL), "{message}");
    let fresh = link_in(&message);
    assert_mail_count(&inbox, 2).await;
    let owner = Client::new("owner");
    let confirmed = confirm(&app, &owner, &fresh, PASSWORD).await;
    assert_signed_in_as(&app, &owner, &confirmed, "Ada Lovelace").await;
}

#[tokio::test]
async fn new_links_are_mailed_at_most_once_a_minute_and_five_times_a_day() {
    // Links that outlive a day, so the registration is still there tomorrow.
    let (app, inbox) =
        verify_app_with(|s| s.mail.verify_ttl = Duration::from_secs(3 * 24 * 3600)).await;
    register_for_mail(&app, &inbox, "Ada Lovelace", EMAIL, PASSWORD).await;

    resend(&app, EMAIL).await;
    resend(&app, EMAIL).await;
    assert_mail_count(&inbox, 2).await;
    for sent in 3..=6 {
        app.clock.advance(Duration::from_secs(61));
        resend(&app, EMAIL).await;
        assert_mail_count(&inbox, sent).await;
    }
    app.clock.advance(Duration::from_secs(61));
    resend(&app, EMAIL).await;
    assert_mail_count(&inbox, 6).await;

    app.clock.advance(Duration::from_secs(24 * 3600));
    resend(&app, EMAIL).await;
    link_in(&mail(&inbox, 7).await);
    assert_mail_count(&inbox, 7).await;
}

#[tokio::test]
async fn registering_a_new_or_a_taken_address_takes_the_same_time() {
    let _alone = timing_alone().await;
    // At bcrypt cost 8 (16 times the other tests' 4, still below any
    // deployment's): the hash every path does is the bulk of the answer, as
    // it is in production, and the rows a new address writes are what is left
    // to tell the two apart.
    let (app, _inbox) = verify_app_with(|s| {
        s.throttle.register_max_per_hour = 10_000;
        s.sessions.bcrypt_cost = 8;
    })
    .await;
    let client = Client::new("timer");
    let token = app.csrf_token_as(&client, "/register").await;
    let post = |email: String| {
        let (client, token, url, origin) = (
            &client,
            token.clone(),
            app.url("/register"),
            app.address.clone(),
        );
        async move {
            let started = Instant::now();
            let response = client
                .http
                .post(url)
                .header("Origin", origin)
                .form(&[
                    ("name", "Ada Lovelace"),
                    ("email", email.as_str()),
                    ("password", PASSWORD),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap();
            assert_redirects_to(&response, "/register/check-email");
            started.elapsed()
        }
    };
    for i in 0..5 {
        post(app.test_user.email.clone()).await;
        post(format!("warm-up{i}@example.com")).await;
    }
    // Taken, then new: the median difference within pairs against the
    // median time.
    let timed = timing_gap(
        50,
        |_| post(app.test_user.email.clone()),
        |i| post(format!("new{i}@example.com")),
    )
    .await;
    assert!(
        timed.gap < 0.15,
        "median {:.6}s vs {:.6}s ({:.1} %)",
        timed.first,
        timed.second,
        timed.gap * 100.0
    );
}

#[tokio::test]
async fn in_development_by_default_a_registration_signs_in_at_once_as_before() {
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| s.mail.mail_url = Some(mail_url)).await;
    let newcomer = Client::new("newcomer");

    let registered = app
        .register_as(&newcomer, "Ada Lovelace", EMAIL, PASSWORD)
        .await;

    assert_redirects_to(&registered, "/dashboard");
    assert!(set_cookie(&registered, "gatehouse_access").is_some());
    assert_eq!(accounts_with_email(&app.pool, EMAIL).await, 1);
    assert_mail_count(&inbox, 0).await;
}

#[tokio::test]
async fn the_hourly_registration_limit_counts_every_address_alike() {
    let (app, _inbox) = verify_app_with(|s| s.throttle.register_max_per_hour = 2).await;
    // Two registrations of an address that has an account use up the limit
    // as two new addresses would: the third is refused whatever it is.
    register(&app, "Someone", &app.test_user.email, PASSWORD).await;
    register(&app, "Someone", &app.test_user.email, PASSWORD).await;
    let refused = app
        .register_as(&Client::new("third"), "Ada", EMAIL, PASSWORD)
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(pending_of(&app, EMAIL).await.is_empty());
}

#[tokio::test]
async fn confirming_in_a_signed_in_browser_ends_the_session_it_had() {
    let (app, inbox) = verify_app().await;
    let link = link_in(&register_for_mail(&app, &inbox, "Ada", EMAIL, PASSWORD).await);
    let browser = app.new_client();
    app.login_test_user_as(&browser, false).await;
    let old_access = app.cookie_in(&browser, "gatehouse_access").unwrap();

    let confirmed = confirm(&app, &browser, &link, PASSWORD).await;

    assert_signed_in_as(&app, &browser, &confirmed, "Ada").await;
    let old = app
        .get_with_cookie("/dashboard", &format!("gatehouse_access={old_access}"))
        .await;
    assert_redirects_to(&old, "/login?next=%2Fdashboard");
}

#[tokio::test]
async fn a_confirmed_address_leaves_no_link_or_registration_behind() {
    let (app, inbox) = verify_app().await;
    register_for_mail(&app, &inbox, "Squatter", EMAIL, SQUATTER_PASSWORD).await;
    let link = link_in(&register_for_mail(&app, &inbox, "Ada", EMAIL, PASSWORD).await);

    let confirmed = confirm(&app, &app.new_client(), &link, PASSWORD).await;

    assert_redirects_to(&confirmed, "/dashboard");
    assert!(stored_confirmations(&app).await.is_empty());
    assert!(pending_of(&app, EMAIL).await.is_empty());
}

#[tokio::test]
async fn a_registration_link_never_brings_back_an_address_the_account_changed_from() {
    // Confirmation off: the account is registered unconfirmed and signed in.
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| s.mail.mail_url = Some(mail_url)).await;
    let browser = app.new_client();
    let registered = app.register_as(&browser, "Ada", EMAIL, PASSWORD).await;
    assert_redirects_to(&registered, "/dashboard");
    // A link for the address it registered with, then a change of address.
    resend(&app, EMAIL).await;
    let old_link = link_in(&mail(&inbox, 1).await);
    let asked = browser
        .submit(
            &app.address,
            "/account",
            "/account/email",
            &[
                ("new_email", "ada@new.example"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    assert_redirects_to(&asked, "/account");
    let messages = inbox.wait_for(3).await;
    let change = messages
        .iter()
        .find(|m| m.contains("Subject: Confirm your new Gatehouse e-mail address"))
        .unwrap();
    let changed = confirm(&app, &browser, &confirm_link(change).unwrap(), PASSWORD).await;
    assert_redirects_to(&changed, "/dashboard");

    expect_expired(post_to(&app, &app.new_client(), &old_link, PASSWORD).await).await;
    assert_eq!(accounts_with_email(&app.pool, EMAIL).await, 0);
    assert_eq!(accounts_with_email(&app.pool, "ada@new.example").await, 1);
}
