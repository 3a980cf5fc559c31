//! Authentication primitives, with no knowledge of HTTP or the database:
//! passwords (bcrypt and the hashing slots), access tokens (JWT), CSRF token
//! signing, opaque
//! refresh tokens, TOTP codes, recovery codes, sealed secrets at rest,
//! the in-memory revocation list, throttling rules and the
//! rules for where a visitor may be sent after signing in.

pub mod csrf;
pub mod hs256;
pub mod jwt;
pub mod password;
pub mod recovery;
pub mod redirect;
pub mod revocation;
pub mod sealed;
pub mod throttle;
pub mod token;
pub mod totp;
