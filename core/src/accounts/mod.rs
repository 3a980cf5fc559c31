//! The accounts domain: registration, sign-in, the session lifecycle and the
//! audit trail. Every door (the pages, the JSON API and the command line)
//! calls these functions; none of them knows HTTP. They take plain
//! values — who is asking is a [`Requester`] — and return plain data or a
//! domain error that the door maps to its own answer.
//!
//! Blocking work never runs on the caller's thread: queries go through
//! [`db::run`], bcrypt and the strength check through the hasher's slots.

mod deletion;
mod events;
mod operator;
mod passkeys;
mod profile;
mod refresh;
mod registration;
mod reset;
mod service;
mod sessions;
mod sign_in;
mod throttle;
mod two_factor;
mod verification;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod two_factor_tests;

pub use deletion::{DeleteAccountError, DeletedAccount};
pub use events::{Event, EventKind};
pub use operator::{OperatorError, PENDING_KEPT, Pruned, UserSummary};
pub use passkeys::{
    CEREMONY_TTL, CeremonyStarted, MAX_PASSKEY_NAME_CHARS, PasskeyAnswer, PasskeyError,
    PasskeyNotice, PasskeyPolicy, PasskeySignedIn, PasskeySummary,
};
pub use profile::{AccountOverview, Profile, SessionSummary};
pub use registration::{CreatedUser, EMAIL_TAKEN, MAX_EMAIL_BYTES, MAX_NAME_CHARS, NewAccount};
pub use reset::{PasswordChanged, ResetError, ResetLink};
pub use service::{
    Accounts, FieldErrors, IssuedSession, PasswordChangeError, PasswordErrors, RegisterError,
    Requester, ResetPolicy, RevokeError, ServiceError, SessionPolicy, SessionUser, Sessions,
    SignInError, SignedIn,
};
pub use sign_in::{Credentials, INVALID_CREDENTIALS, MISSING_CREDENTIALS};
pub use two_factor::{
    CHALLENGE_TTL, Challenge, DeviceTrust, Enrolment, Entry, FEW_CODES_LEFT, SecondFactorDone,
    SecondFactorError, StepUpError, TRUSTED_DEVICE_TTL, TrustedDevice, TwoFactorError,
    TwoFactorNotice, TwoFactorPolicy, TwoFactorStatus,
};
pub use verification::{
    ConfirmError, ConfirmLink, Confirmed, EmailChangeError, EmailChangeMails, LinkDetails,
    LinkPurpose, Registered, RegistrationMail, VerifyMode, VerifyPolicy,
};

pub use crate::auth::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
