//! Keyboard only: Tab, Shift+Tab, Enter and Space register, sign in, revoke a
//! session and sign out; every control shows its focus; a form with errors
//! puts focus on the first invalid field, which points at its message.

use fantoccini::key::Key;
use serde_json::Value;

use crate::browser::{Browser, browser};
use crate::helpers::*;

/// Presses Tab (or Shift+Tab) until the focused element matches `css`,
/// checking on the way that each focused control shows a focus ring.
pub(crate) async fn tab_to(b: &Browser, css: &str) {
    for _ in 0..40 {
        let matches = b
            .client
            .execute(
                "return !!document.activeElement && document.activeElement.matches(arguments[0]);",
                vec![Value::String(css.to_owned())],
            )
            .await
            .unwrap();
        if matches == Value::Bool(true) {
            return;
        }
        press(b, Key::Tab).await;
        let visible = b
            .client
            .execute(
                "const e = document.activeElement;
                 if (!e || e === document.body) return true;
                 const s = getComputedStyle(e);
                 return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none';",
                vec![],
            )
            .await
            .unwrap();
        if visible != Value::Bool(true) {
            let focused = b
                .client
                .execute(
                    "return document.activeElement.outerHTML.slice(0, 120);",
                    vec![],
                )
                .await
                .unwrap();
            b.fail(&format!("no visible focus on {focused}")).await;
        }
    }
    b.fail(&format!("Tab never reached {css}")).await;
}

async fn press(b: &Browser, key: Key) {
    let focused = b.client.active_element().await.unwrap();
    focused
        .send_keys(&String::from(char::from(key)))
        .await
        .unwrap();
}

pub(crate) async fn type_text(b: &Browser, text: &str) {
    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// Presses `key` on the focused control and waits for the page it loads.
pub(crate) async fn activate(b: &Browser, key: Key) {
    let focused = b.client.active_element().await.unwrap();
    let key = String::from(char::from(key));
    b.then_wait(focused.send_keys(&key)).await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn the_keyboard_alone_registers_signs_in_revokes_a_session_and_signs_out() {
    let app = spawn_app().await;
    let b = browser("keyboard", true).await;

    // Register, first with a password that is too short.
    b.goto(&app.url("/register")).await;
    tab_to(&b, "#name").await;
    type_text(&b, "Ada Lovelace").await;
    tab_to(&b, "#email").await;
    type_text(&b, "ada@example.com").await;
    tab_to(&b, "#password").await;
    type_text(&b, "short").await;
    tab_to(&b, "form[action='/register'] button[type=submit]").await;
    activate(&b, Key::Enter).await;
    let announced = b
        .client
        .execute(
            "const e = document.activeElement;
             const message = document.getElementById(e.getAttribute('aria-describedby') || '');
             return e.id + '|' + e.getAttribute('aria-invalid') + '|' + (message ? message.textContent : '');",
            vec![],
        )
        .await
        .unwrap();
    let announced = announced.as_str().unwrap_or_default().to_owned();
    b.ensure(
        announced.starts_with("password|true|Use at least 12"),
        &format!("focus and message after an error: {announced}"),
    )
    .await;
    type_text(&b, "correct horse battery staple").await;
    tab_to(&b, "form[action='/register'] button[type=submit]").await;
    activate(&b, Key::Enter).await;
    b.ensure(
        b.path().await == "/dashboard",
        "registered with the keyboard",
    )
    .await;

    // A second session to revoke; sessions are listed newest first.
    let other = app.new_client();
    let second = app
        .login_as(&other, "ada@example.com", "correct horse battery staple")
        .await;
    assert_redirects_to(&second, "/dashboard");
    b.goto(&app.url("/account")).await;
    tab_to(&b, "tbody tr:first-child button").await;
    let label = b
        .client
        .execute("return document.activeElement.textContent.trim();", vec![])
        .await
        .unwrap();
    b.ensure(
        label == Value::String("Revoke".into()),
        &format!("focused {label}"),
    )
    .await;
    activate(&b, Key::Enter).await;
    b.ensure(
        b.source()
            .await
            .contains("That session has been signed out"),
        "revoked with the keyboard",
    )
    .await;

    // Sign out with Space on the header's button.
    tab_to(&b, "nav form[action='/logout'] button").await;
    activate(&b, Key::Space).await;
    b.ensure(b.path().await == "/login", "signed out with the keyboard")
        .await;

    // Sign in, going back with Shift+Tab once.
    tab_to(&b, "#email").await;
    type_text(&b, "ada@example.com").await;
    tab_to(&b, "#password").await;
    type_text(&b, "correct horse battery staple").await;
    let shift_tab = format!("{}{}", char::from(Key::Shift), char::from(Key::Tab));
    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys(&shift_tab)
        .await
        .unwrap();
    let back = b
        .client
        .execute("return document.activeElement.id;", vec![])
        .await
        .unwrap();
    b.ensure(
        back == Value::String("email".into()),
        &format!("Shift+Tab went to {back}"),
    )
    .await;
    tab_to(&b, "form[action='/login'] button[type=submit]").await;
    activate(&b, Key::Enter).await;
    b.ensure(
        b.path().await == "/dashboard",
        "signed in with the keyboard",
    )
    .await;
}
