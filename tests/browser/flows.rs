//! What a person does in a browser, and what the browser itself proves:
//! no-store pages, HttpOnly cookies, session cookies that end with the
//! browser, transparent refresh, cross-site forms that change nothing.

use std::time::Duration;

use crate::accessibility::no_violations;
use crate::browser::{Browser, browser, serve_elsewhere};
use crate::helpers::*;
use gatehouse_core::auth::jwt::LEEWAY_SECS;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) async fn register(b: &Browser, app: &TestApp, email: &str) {
    b.goto(&app.url("/register")).await;
    b.fill("name", "Ada Lovelace").await;
    b.fill("email", email).await;
    b.fill("password", PASSWORD).await;
    b.click("form[action='/register'] button[type=submit]")
        .await;
    b.ensure(
        b.path().await == "/dashboard",
        "registering lands on the dashboard",
    )
    .await;
}

pub(crate) async fn sign_in(
    b: &Browser,
    app: &TestApp,
    email: &str,
    password: &str,
    remember: bool,
) {
    b.goto(&app.url("/login")).await;
    b.fill("email", email).await;
    b.fill("password", password).await;
    if remember {
        b.click("#remember").await;
    }
    b.click("form[action='/login'] button[type=submit]").await;
}

pub(crate) async fn sign_out(b: &Browser) {
    b.click("nav form[action='/logout'] button").await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn after_signing_out_the_back_button_shows_the_sign_in_page() {
    let app = spawn_app().await;
    let b = browser("back_button", true).await;

    register(&b, &app, "ada@example.com").await;
    sign_out(&b).await;
    b.ensure(b.path().await == "/login", "signing out lands on sign-in")
        .await;
    b.client.back().await.unwrap();
    b.settle().await;

    let page = b.source().await;
    b.ensure(
        !page.contains("Welcome, Ada"),
        "Back must not show the dashboard from a cache",
    )
    .await;
    b.ensure(
        b.path().await.starts_with("/login"),
        "Back asks the server, which sends to sign-in",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn scripts_cannot_read_the_auth_cookies_and_their_attributes_are_right() {
    let app = spawn_app().await;
    let b = browser("cookies", true).await;

    register(&b, &app, "ada@example.com").await;
    let visible = b
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    let cookies = b.client.get_all_cookies().await.unwrap();

    let visible = visible.as_str().unwrap_or_default().to_owned();
    b.ensure(
        !visible.contains("gatehouse_"),
        &format!("document.cookie shows {visible:?}"),
    )
    .await;
    for name in ["gatehouse_access", "gatehouse_refresh", "gatehouse_csrf"] {
        let Some(cookie) = cookies.iter().find(|c| c.name() == name) else {
            b.fail(&format!("{name} is missing")).await;
        };
        b.ensure(
            cookie.http_only() == Some(true),
            &format!("{name} is not HttpOnly"),
        )
        .await;
        let same_site = format!("{:?}", cookie.same_site());
        b.ensure(
            same_site == "Some(Lax)",
            &format!("{name} is SameSite {same_site}"),
        )
        .await;
        b.ensure(
            cookie.path() == Some("/"),
            &format!("{name} has path {:?}", cookie.path()),
        )
        .await;
    }
    let access = cookies
        .iter()
        .find(|c| c.name() == "gatehouse_access")
        .unwrap();
    let lifetime = access
        .expires_datetime()
        .map(|at| at.unix_timestamp() - chrono::Utc::now().timestamp());
    b.ensure(
        lifetime.is_some_and(|s| (590..=600).contains(&s)),
        &format!("the access cookie lives {lifetime:?} s, not the token's 600"),
    )
    .await;
    let refresh = cookies
        .iter()
        .find(|c| c.name() == "gatehouse_refresh")
        .unwrap();
    b.ensure(
        refresh.expires_datetime().is_none(),
        "without remember me, the refresh cookie is a session cookie",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn without_remember_me_closing_the_browser_signs_out_and_with_it_does_not() {
    let app = spawn_app_with(|s| s.sessions.access_token_ttl = Duration::from_secs(2)).await;
    for remember in [false, true] {
        let mut b = browser(&format!("remember_{remember}"), true).await;
        sign_in(
            &b,
            &app,
            &app.test_user.email,
            &app.test_user.password,
            remember,
        )
        .await;
        b.ensure(b.path().await == "/dashboard", "signed in").await;

        b.restart().await;
        // The access token has expired by the server's clock (the browser
        // may still send its cookie); only a kept refresh cookie signs in.
        app.clock.advance(Duration::from_secs(2 + LEEWAY_SECS + 1));
        b.goto(&app.url("/dashboard")).await;

        let path = b.path().await;
        if remember {
            b.ensure(
                path == "/dashboard",
                "remembered: still signed in after a restart",
            )
            .await;
        } else {
            b.ensure(
                path.starts_with("/login"),
                "not remembered: signed out after a restart",
            )
            .await;
        }
    }
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn a_form_submitted_after_the_access_token_expired_still_succeeds() {
    let app = spawn_app_with(|s| s.sessions.access_token_ttl = Duration::from_secs(3)).await;
    let b = browser("transparent_refresh", true).await;
    sign_in(
        &b,
        &app,
        &app.test_user.email,
        &app.test_user.password,
        false,
    )
    .await;
    b.goto(&app.url("/account")).await;
    b.fill("current_password", &app.test_user.password).await;
    b.fill("new_password", "an entirely different passphrase")
        .await;

    app.clock.advance(Duration::from_secs(3 + LEEWAY_SECS + 1));
    b.click("form[action='/account/password'] button[type=submit]")
        .await;

    b.ensure(b.path().await == "/account", "the form was accepted")
        .await;
    b.ensure(
        b.source().await.contains("Your password has been changed"),
        "the change went through",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn a_password_change_in_one_window_signs_the_other_out() {
    let app = spawn_app().await;
    let first = browser("window_one", true).await;
    let second = browser("window_two", true).await;
    sign_in(
        &first,
        &app,
        &app.test_user.email,
        &app.test_user.password,
        false,
    )
    .await;
    sign_in(
        &second,
        &app,
        &app.test_user.email,
        &app.test_user.password,
        false,
    )
    .await;

    first.goto(&app.url("/account")).await;
    first
        .fill("current_password", &app.test_user.password)
        .await;
    first
        .fill("new_password", "an entirely different passphrase")
        .await;
    first
        .click("form[action='/account/password'] button[type=submit]")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    second.goto(&app.url("/account")).await;

    second
        .ensure(
            second.path().await.starts_with("/login"),
            "the other window is sent to sign-in",
        )
        .await;
    first.goto(&app.url("/dashboard")).await;
    first
        .ensure(
            first.path().await == "/dashboard",
            "the changing window stays signed in",
        )
        .await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn forms_on_another_origin_change_nothing() {
    let app = spawn_app().await;
    let b = browser("cross_origin", true).await;
    sign_in(
        &b,
        &app,
        &app.test_user.email,
        &app.test_user.password,
        false,
    )
    .await;
    let attack = format!(
        r#"<!doctype html><title>Win a prize</title>
        <form id="out" method="post" action="{0}/logout"><input name="csrf_token" value="guess"><button>Sign out</button></form>
        <form id="pw" method="post" action="{0}/account/password"><input name="current_password" value="x"><input name="new_password" value="an attacker's passphrase"><input name="csrf_token" value="guess"><button>Change</button></form>"#,
        app.address
    );
    let elsewhere = serve_elsewhere(vec![("/", "text/html", attack)]).await;

    for form in ["#out button", "#pw button"] {
        b.goto(&elsewhere).await;
        b.click(form).await;
        b.goto(&app.url("/dashboard")).await;
        b.ensure(
            b.path().await == "/dashboard",
            &format!("{form}: still signed in"),
        )
        .await;
    }
    let old_password = app
        .login_as(
            &app.new_client(),
            &app.test_user.email,
            &app.test_user.password,
        )
        .await;
    assert_redirects_to(&old_password, "/dashboard");
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn the_example_front_end_signs_in_through_the_api_from_another_origin() {
    let spa_html = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/spa/index.html"
    ))
    .unwrap();
    let spa_js =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/spa/app.js"))
            .unwrap();
    let elsewhere = serve_elsewhere(vec![
        ("/", "text/html", spa_html.clone()),
        ("/index.html", "text/html", spa_html),
        ("/app.js", "text/javascript", spa_js),
    ])
    .await;
    let front_end = elsewhere.clone();
    let app = spawn_app_with(move |s| s.http.cors_origins = vec![front_end]).await;
    let b = browser("spa", true).await;

    b.goto(&format!("{elsewhere}/?api={}", app.address)).await;
    b.fill("email", &app.test_user.email).await;
    b.fill("password", &app.test_user.password).await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_for_text(
        &app.test_user.email,
        "the page does not show the signed-in user",
    )
    .await;
    b.goto(&app.url("/dashboard")).await;
    b.ensure(
        b.path().await == "/dashboard",
        "the API's session is the pages' session",
    )
    .await;

    b.goto(&format!("{elsewhere}/?api={}", app.address)).await;
    b.wait_for_text(
        &app.test_user.email,
        "the page does not show the signed-in user after a reload",
    )
    .await;
    b.click("#sign-out").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.goto(&app.url("/dashboard")).await;
    b.ensure(
        b.path().await.starts_with("/login"),
        "signing out through the API ends the session",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn a_forgotten_password_is_reset_from_the_mailed_link() {
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| s.mail.mail_url = Some(mail_url)).await;
    let b = browser("password_reset", true).await;

    b.goto(&app.url("/login")).await;
    b.click("a[href='/password/forgot']").await;
    b.fill("email", &app.test_user.email).await;
    b.click("form[action='/password/forgot'] button").await;
    b.ensure(
        b.source().await.contains("a link is on its way"),
        "the same answer for any address",
    )
    .await;
    let link = reset_link(&inbox.wait_for(1).await[0]).unwrap();
    b.goto(&link).await;
    b.ensure(
        b.path().await == "/password/reset",
        "the token left the address bar",
    )
    .await;
    b.fill("new_password", "an entirely different passphrase")
        .await;
    b.click("form[action='/password/reset'] button").await;

    b.ensure(b.path().await == "/dashboard", "the reset signs in")
        .await;
    b.ensure(
        b.source().await.contains("Your password has been reset"),
        "and says so",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn without_javascript_register_sign_in_and_sign_out_work() {
    let app = spawn_app().await;
    let b = browser("no_javascript", false).await;

    register(&b, &app, "ada@example.com").await;
    sign_out(&b).await;
    b.ensure(b.path().await == "/login", "signed out").await;
    sign_in(&b, &app, "ada@example.com", PASSWORD, false).await;
    b.ensure(b.path().await == "/dashboard", "signed in again")
        .await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn a_newcomer_confirms_the_address_in_another_browser_and_later_changes_it() {
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| {
        s.mail.mail_url = Some(mail_url);
        s.mail.registration_verify = Some(gatehouse::config::VerifyMode::Required);
    })
    .await;
    let laptop = browser("confirm_laptop", true).await;

    laptop.goto(&app.url("/register")).await;
    laptop.fill("name", "Ada Lovelace").await;
    laptop.fill("email", "ada@example.com").await;
    laptop.fill("password", PASSWORD).await;
    laptop
        .click("form[action='/register'] button[type=submit]")
        .await;
    laptop
        .ensure(
            laptop.path().await == "/register/check-email",
            "registering waits for the address",
        )
        .await;
    no_violations(&laptop, "/register/check-email").await;
    sign_in(&laptop, &app, "ada@example.com", PASSWORD, false).await;
    laptop
        .ensure(
            laptop.path().await == "/register/check-email",
            "an unconfirmed address signs nothing in",
        )
        .await;

    // The newest link, opened on the phone: it names the address and asks
    // for the password.
    let mails = inbox.wait_for(2).await;
    let link = confirm_link(&mails[1]).unwrap();
    let phone = browser("confirm_phone", true).await;
    phone.goto(&link).await;
    phone
        .ensure(
            phone.source().await.contains("ada@example.com"),
            "the link's page names the address",
        )
        .await;
    no_violations(&phone, "/verify/{token}").await;
    phone.fill("password", "not the password at all").await;
    phone.click("main form button[type=submit]").await;
    phone
        .ensure(
            phone
                .source()
                .await
                .contains("That is not the right password."),
            "a wrong password is told",
        )
        .await;
    no_violations(&phone, "/verify/{token} with an error").await;
    phone.fill("password", PASSWORD).await;
    phone.click("main form button[type=submit]").await;
    phone
        .ensure(phone.path().await == "/dashboard", "confirming signs in")
        .await;
    phone
        .ensure(
            phone
                .source()
                .await
                .contains("Your e-mail address is confirmed."),
            "and says so",
        )
        .await;
    phone.goto(&link).await;
    phone
        .ensure(
            phone.source().await.contains("expired or was already used"),
            "the link works once",
        )
        .await;
    no_violations(&phone, "/verify/{token} used").await;

    // A change of address, confirmed from its link in the same browser.
    phone.goto(&app.url("/account")).await;
    phone.fill("new_email", "ada@lovelace.example").await;
    phone
        .client
        .find(fantoccini::Locator::Css("#email_password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    phone
        .click("form[action='/account/email'] button[type=submit]")
        .await;
    phone
        .ensure(
            phone.source().await.contains("Changing to"),
            "the account page shows the pending change",
        )
        .await;
    no_violations(&phone, "/account with a pending change").await;
    let mails = inbox.wait_for(4).await;
    let link = mails.iter().rev().find_map(|m| confirm_link(m)).unwrap();
    phone.goto(&link).await;
    no_violations(&phone, "/verify/{token} for a new address").await;
    phone.fill("password", PASSWORD).await;
    phone.click("main form button[type=submit]").await;
    phone
        .ensure(
            phone
                .source()
                .await
                .contains("Your e-mail address has been changed"),
            "the change is made",
        )
        .await;
    sign_out(&phone).await;
    sign_in(&phone, &app, "ada@lovelace.example", PASSWORD, false).await;
    phone
        .ensure(
            phone.path().await == "/dashboard",
            "the new address signs in",
        )
        .await;
}
