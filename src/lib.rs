//! Gatehouse: browser sign-in done right.
//!
//! Layers, top to bottom; a module only uses modules below it:
//! `cli` → `startup` → `routes` → `http` → `accounts` → `auth`, `db` →
//! the leaves `config`, `errors`, `layout`, `telemetry`, `threads`.

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod errors;
pub mod http;
pub mod layout;
pub mod mail;
pub mod routes;
pub mod startup;
pub mod telemetry;
pub mod threads;

#[cfg(test)]
mod tests;
