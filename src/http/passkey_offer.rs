//! What a page offers for passkeys: the button where they work, a link to
//! where they work when the page was opened at another address (a
//! development site at `127.0.0.1` instead of `localhost`), or nothing.

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::Data;
use gatehouse_core::accounts::Accounts;

use super::site::Site;

/// What a sign-in page offers for passkeys.
pub enum PasskeyOffer {
    None,
    /// The button (shown by the script where WebAuthn works); on the
    /// second-factor page, for the pending sign-in's passkeys.
    Button {
        label: &'static str,
        second_factor: bool,
    },
    /// This page was opened at another address than the one passkeys work
    /// at: a link there.
    Elsewhere(String),
}

impl PasskeyOffer {
    /// A button labelled `label` where passkeys work, a note where they
    /// work at another address, nothing where they are unavailable.
    pub fn at(
        req: &HttpRequest,
        accounts: &Accounts,
        label: &'static str,
        second_factor: bool,
    ) -> Self {
        if !accounts.passkeys_available() {
            return Self::None;
        }
        match passkeys_elsewhere(req, accounts) {
            Some(origin) => Self::Elsewhere(origin),
            None => Self::Button {
                label,
                second_factor,
            },
        }
    }
}

/// The origin passkeys work at, when `req` reached the site under another.
/// Only a site without `PUBLIC_URL` on a loopback address has two: there
/// the `Host` header is the browser's own (no proxy in between).
pub fn passkeys_elsewhere(req: &HttpRequest, accounts: &Accounts) -> Option<String> {
    let origin = accounts.passkey_origin()?;
    let site = req.app_data::<Data<Site>>()?;
    if site.origin == origin {
        return None;
    }
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    let here = origin
        .strip_prefix("http://")
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host));
    (!here).then(|| origin.to_owned())
}
