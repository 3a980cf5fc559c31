//! Gatehouse: browser sign-in done right.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod errors;
pub mod flash;
pub mod routes;
pub mod startup;
pub mod telemetry;
