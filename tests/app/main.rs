//! Integration tests: one binary, one module per feature.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod auth_flow;
mod bad_input;
mod cross_site;
mod forms;
mod hostile_tokens;
mod logs;
mod sessions;
mod startup;
mod throttling;
