//! Authentication: passwords, tokens, cookies, CSRF and the `AuthUser` extractor.

pub mod cookie;
pub mod csrf;
pub mod extractor;
pub mod jwt;
pub mod password;
pub mod redirect;
pub mod revocation;
pub mod session;
pub mod throttle;

pub use extractor::AuthUser;
