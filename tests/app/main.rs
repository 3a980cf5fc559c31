//! Integration tests: one binary, one module per feature.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod auth_flow;
mod logs;
mod sessions;
mod throttling;
