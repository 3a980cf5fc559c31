//! Integration tests: one binary, one module per feature.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod helpers;

mod api;
mod auth_flow;
mod bad_input;
mod cross_site;
mod database_down;
mod email_change;
mod faults;
mod first_minutes;
mod forms;
mod hostile_tokens;
mod instances;
mod leaving;
mod logs;
mod operator;
mod passkeys;
mod password_reset;
mod races;
mod schema;
mod sessions;
mod startup;
mod throttling;
mod two_factor;
mod verification;
