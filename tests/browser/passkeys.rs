//! Passkeys in a real browser: Chromium's virtual authenticator (added
//! through WebDriver's WebAuthn extension) adds a passkey on
//! `/account/passkeys` and signs in with it from `/login`; without
//! JavaScript the passkey buttons stay hidden and the password still signs
//! in. Passkeys work at `http://localhost:PORT` only (a loopback address
//! cannot be a relying-party id), so these tests open the site there.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use fantoccini::wd::WebDriverCompatibleCommand;
use reqwest::Method;
use serde_json::{Value, json};
use url::{ParseError, Url};

use crate::accessibility::no_violations;
use crate::browser::{Browser, browser};
use crate::flows::{register, sign_in, sign_out};
use crate::helpers::*;

const EMAIL: &str = "ada@example.com";
const PASSKEY_NAME: &str = "Test laptop";
/// How long a ceremony (options, the authenticator, the answer, a reload)
/// may take on a busy machine.
const CEREMONY: Duration = Duration::from_secs(15);

/// A call to WebDriver's WebAuthn extension
/// (`/session/{id}/webauthn/{path}`): a POST with `body`, else a GET.
#[derive(Debug)]
struct WebAuthnCall {
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for WebAuthnCall {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/webauthn/{}", self.path))
    }

    fn method_and_body(&self, _request_url: &Url) -> (Method, Option<String>) {
        match &self.body {
            Some(body) => (Method::POST, Some(body.to_string())),
            None => (Method::GET, None),
        }
    }
}

/// An app whose test helpers (`app.url`, the flows) speak to it at
/// `http://localhost:PORT`, where its passkeys work.
async fn spawn_app_at_localhost() -> TestApp {
    let mut app = spawn_app().await;
    app.address = format!("http://localhost:{}", app.port);
    app
}

/// Gives the browser a platform authenticator that keeps passkeys
/// (resident keys), verifies the user and answers without a touch.
/// Returns its id.
async fn add_authenticator(b: &Browser) -> String {
    let added = b
        .client
        .issue_cmd(WebAuthnCall {
            path: "authenticator".to_owned(),
            body: Some(json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserVerified": true,
                "automaticPresenceSimulation": true,
            })),
        })
        .await;
    match added {
        Ok(Value::String(id)) => id,
        other => {
            b.fail(&format!("no virtual authenticator: {other:?}"))
                .await
        }
    }
}

/// The credentials the virtual authenticator holds.
async fn credentials(b: &Browser, authenticator: &str) -> Vec<Value> {
    let held = b
        .client
        .issue_cmd(WebAuthnCall {
            path: format!("authenticator/{authenticator}/credentials"),
            body: None,
        })
        .await;
    match held {
        Ok(Value::Array(list)) => list,
        other => {
            b.fail(&format!("the authenticator's credentials: {other:?}"))
                .await
        }
    }
}

/// Keeps a log of this tab's passkey calls (address, status, answer) in
/// `sessionStorage`, which outlives the reload or navigation that follows
/// a ceremony; [`calls`] reads it for a failure's message.
async fn record_calls(b: &Browser) {
    b.client
        .execute(
            "sessionStorage.setItem('passkeyCalls', '[]');
             if (!window.__recording) {
               window.__recording = true;
               const fetch = window.fetch;
               window.fetch = async function (url, init) {
                 const response = await fetch(url, init);
                 const body = await response.clone().text();
                 const log = JSON.parse(sessionStorage.getItem('passkeyCalls') || '[]');
                 log.push(url + ' -> ' + response.status + ' ' + body.slice(0, 300));
                 sessionStorage.setItem('passkeyCalls', JSON.stringify(log));
                 return response;
               };
             }
             return true;",
            vec![],
        )
        .await
        .unwrap();
}

/// The passkey calls [`record_calls`] logged, and the message the script
/// shows, if any.
async fn calls(b: &Browser) -> String {
    let found = b
        .client
        .execute(
            "const shown = Array.from(document.querySelectorAll('[data-passkey-error]'))
                 .map(e => e.textContent).filter(t => t).join(' | ');
             return 'calls: ' + (sessionStorage.getItem('passkeyCalls') || 'none')
                 + '; the page says: ' + (shown || 'nothing');",
            vec![],
        )
        .await;
    match found {
        Ok(Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// Whether the element `css` matches is displayed (`false` when none does).
async fn shown(b: &Browser, css: &str) -> bool {
    match b.client.find(Locator::Css(css)).await {
        Ok(element) => element.is_displayed().await.unwrap(),
        Err(_) => false,
    }
}

/// Clicks the button in the passkey box `css`, once the script has shown it.
async fn press_passkey_button(b: &Browser, css: &str) {
    let box_css = format!("{css} button");
    let started = Instant::now();
    while !shown(b, &box_css).await {
        if started.elapsed() > CEREMONY {
            b.fail(&format!("the script never showed {box_css}")).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    record_calls(b).await;
    b.click(&box_css).await;
}

/// Waits (up to [`CEREMONY`]) until `done` holds, failing with the passkey
/// calls and the page's message otherwise.
async fn wait_until<F: AsyncFn() -> bool>(b: &Browser, done: F, what: &str) {
    let started = Instant::now();
    while !done().await {
        if started.elapsed() > CEREMONY {
            let calls = calls(b).await;
            b.fail(&format!("{what}; {calls}")).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the passkey list's name cells.
async fn listed_names(b: &Browser) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(rows) = b.client.find_all(Locator::Css("tbody tr")).await {
        for row in rows {
            if let Ok(cell) = row.find(Locator::Css("td")).await {
                names.push(cell.text().await.unwrap_or_default());
            }
        }
    }
    names
}

/// The list's row for the passkey named `name`: its cells' text.
async fn row_of(b: &Browser, name: &str) -> Vec<String> {
    let rows = b.client.find_all(Locator::Css("tbody tr")).await.unwrap();
    for row in rows {
        let mut cells = Vec::new();
        for cell in row.find_all(Locator::Css("td")).await.unwrap() {
            cells.push(cell.text().await.unwrap());
        }
        if cells.first().is_some_and(|first| first == name) {
            return cells;
        }
    }
    Vec::new()
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn a_passkey_added_on_the_account_page_signs_in_from_the_sign_in_page() {
    let app = spawn_app_at_localhost().await;
    let b = browser("passkeys", true).await;
    let authenticator = add_authenticator(&b).await;

    // Added from the account page's link, named by the person.
    register(&b, &app, EMAIL).await;
    b.goto(&app.url("/account")).await;
    b.ensure(
        b.source().await.contains("You have no passkeys."),
        "the account page says there are no passkeys yet",
    )
    .await;
    b.click("a[href='/account/passkeys']").await;
    b.ensure(
        b.path().await == "/account/passkeys",
        "a fresh sign-in opens the passkeys page without confirming",
    )
    .await;
    no_violations(&b, "/account/passkeys (none yet)").await;
    let name = b.client.find(Locator::Css("#passkey-name")).await.unwrap();
    name.send_keys(PASSKEY_NAME).await.unwrap();
    press_passkey_button(&b, "[data-passkey='register']").await;
    wait_until(
        &b,
        async || listed_names(&b).await.iter().any(|n| n == PASSKEY_NAME),
        "the page does not list the new passkey",
    )
    .await;
    let row = row_of(&b, PASSKEY_NAME).await;
    b.ensure(
        row.get(2).is_some_and(|last_used| last_used == "never"),
        &format!("a new passkey was never used: {row:?}"),
    )
    .await;
    no_violations(&b, "/account/passkeys (one passkey)").await;
    let held = credentials(&b, &authenticator).await;
    b.ensure(
        held.len() == 1
            && held[0]["rpId"] == "localhost"
            && held[0]["isResidentCredential"] == true,
        &format!("the authenticator keeps one passkey for localhost: {held:?}"),
    )
    .await;

    // Signed out, the passkey alone signs in.
    sign_out(&b).await;
    b.goto(&app.url("/login")).await;
    no_violations(&b, "/login with the passkey button").await;
    press_passkey_button(&b, "[data-passkey='sign-in']").await;
    wait_until(
        &b,
        async || b.path().await == "/dashboard",
        "the passkey does not sign in",
    )
    .await;
    b.ensure(
        b.source().await.contains("Welcome, Ada"),
        "the passkey signs in as its account",
    )
    .await;

    // The account page counts it; the list shows it used.
    b.goto(&app.url("/account")).await;
    b.ensure(
        b.source().await.contains("You have 1 passkey."),
        "the account page counts the passkey",
    )
    .await;
    b.goto(&app.url("/account/passkeys")).await;
    let row = row_of(&b, PASSKEY_NAME).await;
    b.ensure(
        row.get(2).is_some_and(|last_used| last_used != "never"),
        &format!("signing in marks the passkey used: {row:?}"),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn without_javascript_the_passkey_buttons_stay_hidden_and_the_password_signs_in() {
    let app = spawn_app_at_localhost().await;
    let b = browser("passkeys_no_javascript", false).await;

    b.goto(&app.url("/login")).await;
    b.ensure(
        b.client
            .find(Locator::Css("[data-passkey='sign-in']"))
            .await
            .is_ok(),
        "at localhost, the sign-in page has a passkey box",
    )
    .await;
    b.ensure(
        !shown(&b, "[data-passkey='sign-in'] button").await,
        "without JavaScript, the passkey button stays hidden",
    )
    .await;
    sign_in(
        &b,
        &app,
        &app.test_user.email,
        &app.test_user.password,
        false,
    )
    .await;
    b.ensure(
        b.path().await == "/dashboard",
        "the password signs in without JavaScript",
    )
    .await;
    b.goto(&app.url("/account/passkeys")).await;
    b.ensure(
        !shown(&b, "[data-passkey='register'] button").await,
        "without JavaScript, \"Add a passkey\" stays hidden",
    )
    .await;
    b.ensure(
        shown(&b, "noscript p").await,
        "the passkeys page says adding one needs JavaScript",
    )
    .await;

    // At 127.0.0.1 the sign-in page points to where passkeys work.
    b.goto(&format!("http://127.0.0.1:{}/login", app.port))
        .await;
    let elsewhere = format!("a[href='http://localhost:{}/login']", app.port);
    b.ensure(
        shown(&b, &elsewhere).await
            && b.client
                .find(Locator::Css("[data-passkey='sign-in']"))
                .await
                .is_err(),
        "at 127.0.0.1, a link to localhost instead of the passkey box",
    )
    .await;
}
