//! Gatehouse's domain: accounts, sessions and the rules they keep, with no
//! web types. The `gatehouse` binary's HTTP adapters and CLI are thin doors
//! over it.
//!
//! Layers, top to bottom; a module only uses modules below it:
//! `accounts` → `auth`, `db` → the leaves `threads`, `request_id`, `secret`.

pub mod accounts;
pub mod auth;
pub mod clock;
pub mod db;
pub mod ids;
pub mod request_id;
pub mod secret;
pub mod threads;
