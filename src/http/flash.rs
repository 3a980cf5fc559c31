//! One-shot messages carried to the next page in a short-lived cookie.
//!
//! The cookie holds only a code from this fixed list, never text, so nothing a
//! visitor sends can end up in the message.

use actix_web::dev::Payload;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};

use super::cookies;
use super::deferred::{Deferred, defer};
use super::site::Site;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flash {
    SignedOut,
    PasswordChanged,
    SessionRevoked,
    OtherSessionsRevoked,
    PasswordReset,
    AccountDeleted,
    EmailConfirmed,
    EmailChanged,
    EmailChangeSent,
    EmailChangeCancelled,
    ConfirmationResent,
    TwoFactorDisabled,
    TrustedDeviceRevoked,
    SignInAgain,
    PasskeyAdded,
    PasskeyRenamed,
    PasskeyRemoved,
}

impl Flash {
    const ALL: &'static [Flash] = &[
        Flash::SignedOut,
        Flash::PasswordChanged,
        Flash::SessionRevoked,
        Flash::OtherSessionsRevoked,
        Flash::PasswordReset,
        Flash::AccountDeleted,
        Flash::EmailConfirmed,
        Flash::EmailChanged,
        Flash::EmailChangeSent,
        Flash::EmailChangeCancelled,
        Flash::ConfirmationResent,
        Flash::TwoFactorDisabled,
        Flash::TrustedDeviceRevoked,
        Flash::SignInAgain,
        Flash::PasskeyAdded,
        Flash::PasskeyRenamed,
        Flash::PasskeyRemoved,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::SignedOut => "signed_out",
            Self::PasswordChanged => "password_changed",
            Self::SessionRevoked => "session_revoked",
            Self::OtherSessionsRevoked => "others_revoked",
            Self::PasswordReset => "password_reset",
            Self::AccountDeleted => "account_deleted",
            Self::EmailConfirmed => "email_confirmed",
            Self::EmailChanged => "email_changed",
            Self::EmailChangeSent => "email_change_sent",
            Self::EmailChangeCancelled => "email_change_cancelled",
            Self::ConfirmationResent => "confirmation_resent",
            Self::TwoFactorDisabled => "two_factor_disabled",
            Self::TrustedDeviceRevoked => "trusted_device_revoked",
            Self::SignInAgain => "sign_in_again",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRenamed => "passkey_renamed",
            Self::PasskeyRemoved => "passkey_removed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::SignedOut => "You have been signed out.",
            Self::PasswordChanged => {
                "Your password has been changed. Every other session has been signed out."
            }
            Self::SessionRevoked => "That session has been signed out.",
            Self::OtherSessionsRevoked => "All your other sessions have been signed out.",
            Self::PasswordReset => {
                "Your password has been reset, and every other session has been signed out."
            }
            Self::AccountDeleted => "Your account has been deleted.",
            Self::EmailConfirmed => "Your e-mail address is confirmed. Welcome to Gatehouse!",
            Self::EmailChanged => {
                "Your e-mail address has been changed, and every other session has been signed out."
            }
            Self::EmailChangeSent => {
                "A link is on its way to the new address. The address changes when you open it and enter your password."
            }
            Self::EmailChangeCancelled => "The change of address has been cancelled.",
            Self::ConfirmationResent => {
                "If that address is waiting to be confirmed, a new link is on its way."
            }
            Self::TwoFactorDisabled => {
                "Two-factor sign-in is off, and every trusted device has been forgotten."
            }
            Self::TrustedDeviceRevoked => {
                "That device is no longer trusted: it will be asked for a code again."
            }
            Self::SignInAgain => "That sign-in expired or had too many wrong codes. Sign in again.",
            Self::PasskeyAdded => "The passkey has been added: it signs you in from now on.",
            Self::PasskeyRenamed => "The passkey has been renamed.",
            Self::PasskeyRemoved => {
                "The passkey has been removed. Your password still signs you in."
            }
        }
    }
}

/// The message waiting for this page, if any; reading it queues its removal.
#[derive(Debug, Default)]
pub struct FlashMessage(pub Option<&'static str>);

impl FromRequest for FlashMessage {
    type Error = actix_web::Error;
    type Future = Deferred<Self, actix_web::Error>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        defer(req, |req| Ok(take_flash(req)))
    }
}

fn take_flash(req: &HttpRequest) -> FlashMessage {
    let Some(site) = req.app_data::<Data<Site>>() else {
        return FlashMessage(None);
    };
    let cookies = &site.cookies;
    let Some(found) = cookies::read(req, cookies.flash_name()) else {
        return FlashMessage(None);
    };
    cookies::queue(req, cookies.removal(cookies.flash_name()));
    let message = Flash::ALL
        .iter()
        .find(|f| f.code() == found)
        .map(|f| f.message());
    FlashMessage(message)
}
