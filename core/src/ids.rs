//! What the domain's identifiers and addresses are, as types: a user id
//! cannot be passed where a session id is meant, and an e-mail address is
//! normalised once, when it is built, and nowhere else.

use std::fmt;

use diesel_derive_newtype::DieselNewType;

/// Declares a text id (a UUID as the database stores it).
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, DieselNewType)]
        pub struct $name(String);

        impl $name {
            /// A fresh, random id.
            pub fn random() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            /// An id as stored or as a token carries it.
            pub fn from_stored(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A `users` row.
    UserId
);
text_id!(
    /// A `sessions` row: one sign-in, across its token rotations.
    SessionId
);
text_id!(
    /// A `passkeys` row (not the authenticator's credential id).
    PasskeyId
);
text_id!(
    /// A `sign_in_challenges` row: a sign-in waiting for its second factor.
    ChallengeId
);
text_id!(
    /// A `trusted_devices` row: a browser that skips the second factor.
    TrustedDeviceId
);

/// An e-mail address as the domain keeps and compares it: trimmed and
/// lower-cased. Building one is the only way an address gets in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, DieselNewType)]
pub struct Email(String);

impl Email {
    /// `raw` as typed, normalised.
    pub fn new(raw: &str) -> Self {
        Self(raw.trim().to_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The same as [`Email::new`]: normalised.
impl From<&str> for Email {
    fn from(raw: &str) -> Self {
        Self::new(raw)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_normalised_when_it_is_built() {
        assert_eq!(Email::new("  Ada@Example.COM ").as_str(), "ada@example.com");
        assert_eq!(Email::new("ada@example.com"), Email::new("ADA@example.com"));
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(UserId::random(), UserId::random());
        assert_eq!(SessionId::from_stored("s-1").to_string(), "s-1");
    }
}
