//! Real-browser tests: Debian's headless Chromium, driven through chromedriver
//! (WebDriver), against the site served in this process. `CHROMEDRIVER` names
//! the driver; each test is `#[ignore = "needs CHROMEDRIVER"]`, so it runs
//! with `--include-ignored` (and fails if the variable is unset). Each test
//! gets a fresh browser profile; a failure saves a screenshot and the page
//! source under `target/browser-artifacts/`.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

#[path = "../app/helpers/mod.rs"]
mod helpers;

mod browser;

mod accessibility;
mod flows;
mod keyboard;
mod passkeys;
mod two_factor;
