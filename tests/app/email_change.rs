//! Changing the e-mail address: it takes the current password, a link goes
//! to the new address and a notice to the old one (over real SMTP), the
//! address changes only when the link's form is sent with the account's
//! password, and then every other session ends. An address that is another
//! account's gets the same answer, and its owner a notice.

use reqwest::StatusCode;

use crate::helpers::*;

const NEW_EMAIL: &str = "new.address@example.com";

async fn change_app() -> (TestApp, Inbox) {
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| s.mail.mail_url = Some(mail_url)).await;
    (app, inbox)
}

/// Asks for a change of address to `new_email` on the account page.
async fn ask(app: &TestApp, client: &Client, new_email: &str, password: &str) -> reqwest::Response {
    client
        .submit(
            &app.address,
            "/account",
            "/account/email",
            &[("new_email", new_email), ("current_password", password)],
        )
        .await
}

fn subject_of(message: &str) -> &str {
    message
        .lines()
        .find_map(|line| line.strip_prefix("Subject: "))
        .unwrap_or_default()
}

fn to_of(message: &str) -> &str {
    message
        .lines()
        .find_map(|line| line.strip_prefix("To: "))
        .unwrap_or_default()
}

/// The account's address as stored.
async fn stored_email(app: &TestApp) -> String {
    use diesel::prelude::*;
    use gatehouse_core::db::schema::users;
    let (pool, id) = (app.pool.clone(), app.test_user.id.clone());
    tokio::task::spawn_blocking(move || {
        users::table
            .filter(users::id.eq(id))
            .select(users::email)
            .first(&mut pool.get_blocking().unwrap())
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_change_takes_the_password_and_a_valid_new_address() {
    let (app, inbox) = change_app().await;
    let laptop = app.new_client();
    app.login_test_user_as(&laptop, false).await;

    for (new_email, password, message) in [
        (
            NEW_EMAIL,
            "not the password",
            "Your current password is not correct.",
        ),
        (
            "not an address",
            app.test_user.password.as_str(),
            "Enter a valid email address",
        ),
        (
            app.test_user.email.as_str(),
            app.test_user.password.as_str(),
            "That is already your address.",
        ),
    ] {
        let refused = ask(&app, &laptop, new_email, password).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = refused.text().await.unwrap();
        assert!(page.contains(message), "{page}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(inbox.messages().is_empty(), "{:?}", inbox.messages());
    assert_eq!(stored_email(&app).await, app.test_user.email);
}

#[tokio::test]
async fn the_address_changes_only_with_the_link_and_the_password_and_other_sessions_end() {
    let (app, inbox) = change_app().await;
    let user = &app.test_user;
    let (laptop, phone) = (app.new_client(), app.new_client());
    app.login_test_user_as(&laptop, false).await;
    app.login_test_user_as(&phone, true).await;

    let asked = ask(&app, &laptop, NEW_EMAIL, &user.password).await;
    assert_redirects_to(&asked, "/account");
    let page = app.get_as(&laptop, "/account").await.text().await.unwrap();
    assert!(
        page.contains("A link is on its way to the new address."),
        "{page}"
    );
    assert!(
        page.contains(&format!("Changing to <strong>{NEW_EMAIL}</strong>")),
        "{page}"
    );

    let mails = inbox.wait_for(2).await;
    let link_mail = mails.iter().find(|m| to_of(m) == NEW_EMAIL).unwrap();
    assert_eq!(
        subject_of(link_mail),
        "Confirm your new Gatehouse e-mail address"
    );
    let notice = mails.iter().find(|m| to_of(m) == user.email).unwrap();
    assert_eq!(
        subject_of(notice),
        "Your Gatehouse e-mail address is being changed"
    );
    assert!(
        confirm_link(notice).is_none(),
        "the old address gets no link: {notice}"
    );
    let link = confirm_link(link_mail).unwrap();
    let path = link.trim_start_matches(&app.address).to_owned();
    // Nothing has changed yet; opening the link changes nothing either.
    assert_eq!(
        app.get_as(&phone, "/dashboard").await.status(),
        StatusCode::OK
    );
    let stranger = app.new_client();
    let opened = app.get_as(&stranger, &path).await;
    assert_eq!(opened.status(), StatusCode::OK);
    assert!(opened.text().await.unwrap().contains(NEW_EMAIL));
    assert_eq!(stored_email(&app).await, user.email);

    // Whoever owns the new address but not the password changes nothing.
    let refused = stranger
        .submit(
            &app.address,
            &path,
            &path,
            &[("password", "a guess at the password")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(stored_email(&app).await, user.email);

    // With the password, in another browser: changed, signed in there, and
    // every other session of the account ended.
    let confirmed = stranger
        .submit(&app.address, &path, &path, &[("password", &user.password)])
        .await;
    assert_redirects_to(&confirmed, "/dashboard");
    assert_eq!(stored_email(&app).await, NEW_EMAIL);
    let dashboard = app.get_as(&stranger, "/dashboard").await;
    assert_eq!(dashboard.status(), StatusCode::OK);
    for other in [&laptop, &phone] {
        assert_redirects_to(
            &app.get_as(other, "/dashboard").await,
            "/login?next=%2Fdashboard",
        );
    }
    // The link worked once; the new address signs in, the old one no more.
    let again = app.get_as(&app.new_client(), &path).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_redirects_to(
        &app.login_as(&app.new_client(), NEW_EMAIL, &user.password)
            .await,
        "/dashboard",
    );
    let old = app
        .login_as(&app.new_client(), &user.email, &user.password)
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_address_of_another_account_gets_the_same_answer_and_its_owner_a_notice() {
    let (app, inbox) = change_app().await;
    let other = seed_user(
        &app.pool,
        "Other Owner",
        "taken@example.com",
        "the other owner's passphrase",
    )
    .await;
    let laptop = app.new_client();
    app.login_test_user_as(&laptop, false).await;

    let free = ask(&app, &laptop, NEW_EMAIL, &app.test_user.password).await;
    let taken = ask(&app, &laptop, &other.email, &app.test_user.password).await;
    assert_eq!(free.status(), taken.status());
    assert_eq!(
        free.headers().get("location"),
        taken.headers().get("location")
    );

    // The account page shows the change to the taken address as it shows
    // any: it tells nothing of who owns it.
    let page = app.get_as(&laptop, "/account").await.text().await.unwrap();
    let shown = format!("Changing to <strong>{}</strong>", other.email);
    assert!(page.contains(&shown), "{page}");

    let mails = inbox.wait_for(4).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(inbox.messages().len(), 4, "{mails:?}");
    let to_owner: Vec<_> = mails.iter().filter(|m| to_of(m) == other.email).collect();
    assert_eq!(to_owner.len(), 1, "{mails:?}");
    assert_eq!(
        subject_of(to_owner[0]),
        "Someone asked to move a Gatehouse account to your address"
    );
    assert!(confirm_link(to_owner[0]).is_none(), "{}", to_owner[0]);
    let notices = mails
        .iter()
        .filter(|m| to_of(m) == app.test_user.email)
        .count();
    assert_eq!(
        notices, 2,
        "the account's own address hears of both: {mails:?}"
    );
    assert_eq!(stored_email(&app).await, app.test_user.email);
}

#[tokio::test]
async fn a_pending_change_can_be_cancelled_and_its_link_then_fails() {
    let (app, inbox) = change_app().await;
    let laptop = app.new_client();
    app.login_test_user_as(&laptop, false).await;
    ask(&app, &laptop, NEW_EMAIL, &app.test_user.password).await;
    let mails = inbox.wait_for(2).await;
    let link = mails.iter().find_map(|m| confirm_link(m)).unwrap();

    let cancelled = laptop
        .submit(&app.address, "/account", "/account/email/cancel", &[])
        .await;
    assert_redirects_to(&cancelled, "/account");
    let page = app.get_as(&laptop, "/account").await.text().await.unwrap();
    assert!(
        page.contains("The change of address has been cancelled."),
        "{page}"
    );
    assert!(!page.contains("Changing to"), "{page}");
    let opened = app.new_client().http.get(&link).send().await.unwrap();
    assert_eq!(opened.status(), StatusCode::BAD_REQUEST);
    assert_eq!(stored_email(&app).await, app.test_user.email);
}
