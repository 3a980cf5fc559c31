//! Two-factor sign-in in a browser: enrolment from the account page, a code
//! typed with the keyboard alone, a recovery code, a trusted device and
//! forgetting it, "confirm it's you"; axe on every two-factor page. Codes
//! are computed here with `totp-rs` from the key the enrolment page shows,
//! at the app's time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::Value;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::accessibility::no_violations;
use crate::browser::{Browser, browser};
use crate::flows::{PASSWORD, register, sign_in, sign_out};
use crate::helpers::*;
use crate::keyboard::{activate, tab_to, type_text};

const EMAIL: &str = "ada@example.com";
const STEP_SECS: u64 = 30;

/// The person's authenticator app, with the app's clock it reads: the key
/// off the enrolment page, how far the app's clock runs ahead of the
/// system's, and the last time step given (a step signs in once).
struct Authenticator {
    secret: Vec<u8>,
    ahead: Duration,
    last_step: Option<u64>,
}

impl Authenticator {
    /// The key as the enrolment page shows it (base32, in groups of four).
    fn new(shown: &str) -> Self {
        let encoded: String = shown.chars().filter(|c| !c.is_whitespace()).collect();
        Self {
            secret: Secret::Encoded(encoded).to_bytes().unwrap(),
            ahead: Duration::ZERO,
            last_step: None,
        }
    }

    /// Unix time on the app's clock.
    fn now(&self) -> u64 {
        (SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + self.ahead).as_secs()
    }

    /// Moves the app's clock (and what this authenticator reads) forward.
    fn advance(&mut self, app: &TestApp, by: Duration) {
        app.clock.advance(by);
        self.ahead += by;
    }

    fn code_at_step(&self, step: u64) -> String {
        TOTP::new_unchecked(
            Algorithm::SHA1,
            6,
            0,
            STEP_SECS,
            self.secret.clone(),
            None,
            String::new(),
        )
        .generate(step * STEP_SECS)
    }

    /// A code of a step later than any given so far, and the current one
    /// or the next on the app's clock (either stays within the server's
    /// one step of drift should a step begin on the way). When only a later
    /// one is left, the app's clock moves on a step, as time would.
    fn fresh_code(&mut self, app: &TestApp) -> String {
        let mut current = self.now() / STEP_SECS;
        if self.last_step.is_some_and(|last| last > current) {
            self.advance(app, Duration::from_secs(STEP_SECS));
            current = self.now() / STEP_SECS;
        }
        let step = self.last_step.map_or(current, |last| current.max(last + 1));
        self.last_step = Some(step);
        self.code_at_step(step)
    }

    /// Six digits that are no code of the steps around the app's now.
    fn wrong_code(&self) -> String {
        let current = self.now() / STEP_SECS;
        let near: Vec<String> = (current - 2..=current + 2)
            .map(|step| self.code_at_step(step))
            .collect();
        (0..)
            .map(|n| format!("{n:06}"))
            .find(|code| !near.contains(code))
            .unwrap()
    }
}

async fn text_of(b: &Browser, css: &str) -> String {
    b.client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn focused(b: &Browser) -> String {
    let described = b
        .client
        .execute(
            "const e = document.activeElement;
             const ids = (e.getAttribute('aria-describedby') || '').split(' ');
             const message = ids.map(id => document.getElementById(id)).filter(m => m).map(m => m.textContent).join(' ');
             return e.id + '|' + e.getAttribute('aria-invalid') + '|' + message;",
            vec![],
        )
        .await
        .unwrap();
    described.as_str().unwrap_or_default().to_owned()
}

/// Signs in with the password; the site asks for a code.
async fn sign_in_to_the_code(b: &Browser, app: &TestApp) {
    sign_in(b, app, EMAIL, PASSWORD, false).await;
    b.ensure(
        b.path().await == "/login/two-factor",
        "a right password asks for a code",
    )
    .await;
}

async fn submit_code(b: &Browser) {
    b.click("form[action='/login/two-factor'] button[type=submit]")
        .await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn two_factor_is_set_up_and_signs_in_with_codes_recovery_codes_and_a_trusted_device() {
    let app = spawn_app().await;
    let b = browser("two_factor", true).await;

    // Enrolment, from the account page's link: a fresh sign-in needs no
    // step-up.
    register(&b, &app, EMAIL).await;
    b.goto(&app.url("/account")).await;
    b.click("a[href='/account/two-factor']").await;
    b.ensure(
        b.path().await == "/account/two-factor",
        "the account page links to the two-factor settings",
    )
    .await;
    no_violations(&b, "/account/two-factor (enrol)").await;
    let mut phone = Authenticator::new(&text_of(&b, "#totp-secret").await);
    b.fill("code", &phone.fresh_code(&app)).await;
    b.click("form[action='/account/two-factor/enable'] button[type=submit]")
        .await;
    b.ensure(
        b.source().await.contains("Two-factor sign-in is now on."),
        "a right code turns two-factor on",
    )
    .await;
    no_violations(&b, "the recovery codes").await;
    let mut recovery_codes = Vec::new();
    for code in b
        .client
        .find_all(Locator::Css("ul.recovery-codes li code"))
        .await
        .unwrap()
    {
        recovery_codes.push(code.text().await.unwrap());
    }
    b.ensure(
        recovery_codes.len() == 10,
        &format!("10 recovery codes, not {recovery_codes:?}"),
    )
    .await;
    b.goto(&app.url("/account/two-factor")).await;
    b.ensure(
        b.source()
            .await
            .contains("You have 10 recovery codes left."),
        "the settings say two-factor is on",
    )
    .await;
    no_violations(&b, "/account/two-factor (on)").await;

    // A code typed with the keyboard alone, first a wrong one.
    sign_out(&b).await;
    sign_in_to_the_code(&b, &app).await;
    no_violations(&b, "/login/two-factor").await;
    let on_load = focused(&b).await;
    b.ensure(
        on_load.starts_with("code|"),
        &format!("the code field has focus on load, not {on_load}"),
    )
    .await;
    tab_to(&b, "#code").await;
    type_text(&b, &phone.wrong_code()).await;
    activate(&b, Key::Enter).await;
    let announced = focused(&b).await;
    b.ensure(
        announced.starts_with("code|true|That code is not right."),
        &format!("focus and message after a wrong code: {announced}"),
    )
    .await;
    b.ensure(
        b.path().await == "/login/two-factor",
        "a wrong code asks again",
    )
    .await;
    no_violations(&b, "/login/two-factor with a wrong code").await;
    tab_to(&b, "#code").await;
    type_text(&b, &phone.fresh_code(&app)).await;
    activate(&b, Key::Enter).await;
    b.ensure(
        b.path().await == "/dashboard",
        "a right code typed with the keyboard signs in",
    )
    .await;

    // A recovery code, typed in upper case with its dashes.
    sign_out(&b).await;
    sign_in_to_the_code(&b, &app).await;
    b.fill("code", &recovery_codes[0].to_uppercase()).await;
    submit_code(&b).await;
    b.ensure(b.path().await == "/dashboard", "a recovery code signs in")
        .await;
    b.goto(&app.url("/account")).await;
    b.ensure(
        b.source().await.contains("9 recovery codes left"),
        "a recovery code is used up",
    )
    .await;

    // A trusted device skips the code until it is forgotten.
    sign_out(&b).await;
    sign_in_to_the_code(&b, &app).await;
    b.fill("code", &phone.fresh_code(&app)).await;
    b.client
        .find(Locator::Css("#trust_device"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    submit_code(&b).await;
    b.ensure(
        b.path().await == "/dashboard",
        "a code with the device trusted signs in",
    )
    .await;
    sign_out(&b).await;
    sign_in(&b, &app, EMAIL, PASSWORD, false).await;
    b.ensure(
        b.path().await == "/dashboard",
        "a trusted device signs in without a code",
    )
    .await;
    b.goto(&app.url("/account")).await;
    let forget = "form[action^='/account/trusted-devices/'] button[type=submit]";
    let devices = b.client.find_all(Locator::Css(forget)).await.unwrap();
    b.ensure(
        b.source().await.contains("Trusted devices") && devices.len() == 1,
        &format!(
            "the account page lists the trusted device ({} listed)",
            devices.len()
        ),
    )
    .await;
    no_violations(&b, "/account with a trusted device").await;
    b.click(forget).await;
    let page = b.source().await;
    b.ensure(
        b.path().await == "/account"
            && page.contains("That device is no longer trusted")
            && !page.contains("Trusted devices"),
        "forgotten: back on the account page, no trusted device left",
    )
    .await;
    sign_out(&b).await;
    sign_in_to_the_code(&b, &app).await;

    // "Confirm it's you" once the sign-in is older than the step-up's age,
    // with a code at the app's (advanced) time.
    b.fill("code", &recovery_codes[1]).await;
    submit_code(&b).await;
    b.ensure(b.path().await == "/dashboard", "signed in again")
        .await;
    phone.advance(&app, Duration::from_secs(6 * 60));
    b.goto(&app.url("/account/two-factor")).await;
    let path = b.path().await;
    b.ensure(
        path.starts_with("/confirm?next="),
        &format!("an old sign-in is asked to confirm, not sent to {path}"),
    )
    .await;
    let asked = Value::Bool(true)
        == b.client
            .execute("return !!document.getElementById('code');", vec![])
            .await
            .unwrap();
    b.ensure(asked, "with two-factor on, confirming asks for a code")
        .await;
    no_violations(&b, "/confirm").await;
    b.fill("password", PASSWORD).await;
    b.fill("code", &phone.fresh_code(&app)).await;
    b.click("form[action='/confirm'] button[type=submit]").await;
    b.ensure(
        b.path().await == "/account/two-factor",
        "confirming goes back to the settings",
    )
    .await;
    b.ensure(
        b.source().await.contains("You have 8 recovery codes left."),
        "the settings show, with two codes used",
    )
    .await;
}
