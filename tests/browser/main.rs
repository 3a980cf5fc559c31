//! Real-browser tests: Debian's headless Chromium, driven through chromedriver
//! (WebDriver), against the site served in this process. They run when
//! `CHROMEDRIVER` names the driver and say once that they were skipped
//! otherwise. Each test gets a fresh browser profile; a failure saves a
//! screenshot and the page source under `target/browser-artifacts/`.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

#[path = "../app/helpers/mod.rs"]
#[expect(
    unused_imports,
    reason = "the browser tests use only some of the app tests' helpers"
)]
mod helpers;

mod browser;

mod accessibility;
mod flows;
mod keyboard;
