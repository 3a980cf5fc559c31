//! Leaving: deleting the account from its page takes the password, deletes
//! everything keyed to it, signs out every device, clears this browser's
//! cookies, mails a notice (over real SMTP) and frees the address.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn deleting_the_account_takes_the_password_ends_every_session_and_frees_the_address() {
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| s.mail.mail_url = Some(mail_url)).await;
    let user = &app.test_user;
    let laptop = app.new_client();
    let phone = app.new_client();
    app.login_test_user_as(&laptop, false).await;
    app.login_test_user_as(&phone, true).await;

    let refused = laptop
        .submit(
            &app.address,
            "/account",
            "/account/delete",
            &[("current_password", "not the password")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("Your current password is not correct."),
        "{page}"
    );
    assert_eq!(accounts_with_email(&app.pool, &user.email).await, 1);
    assert_eq!(
        app.get_as(&phone, "/dashboard").await.status(),
        StatusCode::OK
    );

    let deleted = laptop
        .submit(
            &app.address,
            "/account",
            "/account/delete",
            &[("current_password", &user.password)],
        )
        .await;

    assert_redirects_to(&deleted, "/login");
    for name in ["gatehouse_access", "gatehouse_refresh"] {
        let cleared = set_cookie(&deleted, name).unwrap_or_else(|| panic!("{name} not cleared"));
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }
    let login = app.get_as(&laptop, "/login").await.text().await.unwrap();
    assert!(login.contains("Your account has been deleted."), "{login}");
    assert_eq!(accounts_with_email(&app.pool, &user.email).await, 0);
    // The other device, even with its refresh cookie, is signed out.
    assert_redirects_to(
        &app.get_as(&phone, "/dashboard").await,
        "/login?next=%2Fdashboard",
    );
    assert_eq!(
        app.login_as(&app.new_client(), &user.email, &user.password)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let mail = &inbox.wait_for(1).await[0];
    assert!(mail.contains(&format!("To: {}", user.email)), "{mail}");
    assert!(
        mail.contains("Your Gatehouse account was deleted"),
        "{mail}"
    );
    // The address can register again.
    let again = app.new_client();
    assert_redirects_to(
        &app.register_as(
            &again,
            "Ada again",
            &user.email,
            "a brand new passphrase here",
        )
        .await,
        "/dashboard",
    );
}

#[tokio::test]
async fn deleting_needs_a_signed_in_session_and_the_csrf_token() {
    let app = spawn_app().await;
    app.login_test_user().await;

    let forged = app
        .post_form(
            "/account/delete",
            &[("current_password", &app.test_user.password)],
        )
        .await;
    let anonymous = app
        .new_client()
        .submit(
            &app.address,
            "/login",
            "/account/delete",
            &[("current_password", "x")],
        )
        .await;

    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        accounts_with_email(&app.pool, &app.test_user.email).await,
        1
    );
    // A form sent without a session goes to sign in, as every other.
    assert_redirects_to(&anonymous, "/login");
}
