//! axe-core (vendored here, never fetched) on every page: zero WCAG 2 A/AA
//! violations. Screenshots at 360 px and at 200 % zoom go to the artifacts
//! folder for looking at.

use serde_json::Value;

use crate::browser::{Browser, browser};
use crate::helpers::*;

const AXE: &str = include_str!("axe.min.js");

/// Runs axe on the page `b` shows and fails on any WCAG 2 A or AA violation.
pub(crate) async fn no_violations(b: &Browser, page: &str) {
    b.client
        .execute(&format!("{AXE}\nreturn true;"), vec![])
        .await
        .unwrap();
    let found = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
                .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
                .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .unwrap();
    let violations: Vec<String> = match found {
        Value::Array(list) => list
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        other => vec![format!("unexpected axe answer: {other}")],
    };
    b.ensure(violations.is_empty(), &format!("{page}: {violations:#?}"))
        .await;
}

#[tokio::test]
#[ignore = "needs CHROMEDRIVER"]
async fn every_page_passes_axe_in_light_and_at_phone_width() {
    let (mail_url, inbox) = start_smtp().await;
    let app = spawn_app_with(move |s| s.mail.mail_url = Some(mail_url)).await;
    let b = browser("axe", true).await;

    // The new-password form, reached through a mailed link.
    b.goto(&app.url("/password/forgot")).await;
    b.fill("email", &app.test_user.email).await;
    b.click("form[action='/password/forgot'] button").await;
    no_violations(&b, "/password/forgot/sent").await;
    let link = reset_link(&inbox.wait_for(1).await[0]).unwrap();
    b.goto(&link).await;
    no_violations(&b, "/password/reset (the form)").await;
    b.fill("new_password", "short").await;
    b.click("form[action='/password/reset'] button").await;
    no_violations(&b, "/password/reset with an error").await;

    for path in [
        "/login",
        "/register",
        "/password/forgot",
        "/password/reset",
        "/no-such-page",
    ] {
        b.goto(&app.url(path)).await;
        no_violations(&b, path).await;
    }
    // The register page with its errors.
    b.goto(&app.url("/register")).await;
    b.fill("password", "short").await;
    b.click("form[action='/register'] button[type=submit]")
        .await;
    no_violations(&b, "/register with errors").await;
    // The sign-in page with an error.
    b.goto(&app.url("/login")).await;
    b.fill("email", &app.test_user.email).await;
    b.fill("password", "not the password").await;
    b.click("form[action='/login'] button[type=submit]").await;
    no_violations(&b, "/login with an error").await;
    // Signed in.
    b.goto(&app.url("/login")).await;
    b.fill("email", &app.test_user.email).await;
    b.fill("password", &app.test_user.password).await;
    b.click("form[action='/login'] button[type=submit]").await;
    for path in ["/dashboard", "/account", "/logout"] {
        b.goto(&app.url(path)).await;
        no_violations(&b, path).await;
    }

    b.client.set_window_size(360, 800).await.unwrap();
    for path in ["/dashboard", "/account"] {
        b.goto(&app.url(path)).await;
        no_violations(&b, &format!("{path} at 360 px")).await;
        b.picture(&format!("phone{}", path.replace('/', "-"))).await;
    }
    // 200 % zoom on a 1280 px window is a 640 CSS px viewport: what the
    // page must reflow to (WCAG 1.4.10) without scrolling sideways.
    b.client.set_window_size(640, 900).await.unwrap();
    for path in ["/account", "/login"] {
        b.goto(&app.url(path)).await;
        let wide = b
            .client
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth + 1;",
                vec![],
            )
            .await
            .unwrap();
        b.ensure(
            wide == Value::Bool(false),
            &format!("{path} scrolls sideways at 200 %"),
        )
        .await;
        b.picture(&format!("zoom-200{}", path.replace('/', "-")))
            .await;
    }
}
