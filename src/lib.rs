//! Gatehouse: browser sign-in done right. The web site, the JSON API and the
//! command line over the domain in `gatehouse_core`.
//!
//! Layers, top to bottom; a module only uses modules below it:
//! `cli` → `startup` → `routes` → `http` → `gatehouse_core` (accounts → auth,
//! db), beside the leaves `config`, `errors`, `layout`, `mail`, `telemetry`.

pub mod cli;
pub mod config;
pub mod errors;
pub mod http;
pub mod layout;
pub mod mail;
pub mod routes;
pub mod startup;
pub mod telemetry;

#[cfg(test)]
mod tests;
