//! Secrets at rest: ChaCha20-Poly1305 under the operator's key
//! (`TOTP_ENCRYPTION_KEY`), a random nonce per value, and the owner's id as
//! associated data, so a database dump shows no secret and a value copied to
//! another account's row does not open.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore as _;

use crate::secret::Secret;

/// Bytes in a key.
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
/// Marks the format, so that another scheme can be told apart later.
const PREFIX: &str = "v1.";

/// The key that seals and opens stored secrets.
#[derive(Clone)]
pub struct SealingKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

impl SealingKey {
    /// A key of exactly [`KEY_BYTES`] bytes.
    pub fn new(bytes: &[u8; KEY_BYTES]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(&Key::from(*bytes)),
        }
    }

    /// A key derived from other key material (HKDF-SHA-256, a fixed label):
    /// what development uses when no key is set, from the token signing
    /// secret, so that every instance sharing that secret opens the same
    /// values.
    pub fn derived_from(material: &Secret) -> Self {
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"gatehouse"), material.expose());
        let mut key = [0u8; KEY_BYTES];
        // 32 bytes is far below HKDF-SHA-256's limit of 8160; `expand`
        // cannot fail for it, and an all-zero key would still be unique to
        // this failure, never a guessable one in use.
        if hkdf
            .expand(b"totp secret sealing key v1", &mut key)
            .is_err()
        {
            tracing::error!("HKDF refused a 32-byte output");
        }
        Self::new(&key)
    }

    /// Seals `plaintext` for `owner`: `v1.` and base64url of nonce and
    /// ciphertext.
    pub fn seal(&self, owner: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| SealError)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Opens a value [`seal`](Self::seal) made for `owner`; an error for
    /// anything else (another key, another owner, a changed byte).
    pub fn open(&self, owner: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let encoded = sealed.strip_prefix(PREFIX).ok_or(SealError)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| SealError)?;
        if bytes.len() < NONCE_BYTES {
            return Err(SealError);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError)?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| SealError)
    }
}

/// A value that does not open with this key for this owner, or one that
/// could not be sealed.
#[derive(Debug, thiserror::Error)]
#[error("the stored secret does not open with this key")]
pub struct SealError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_for_its_owner_with_its_key() {
        let key = SealingKey::new(&[7; KEY_BYTES]);
        let sealed = key.seal("user-a", b"the secret").unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("the secret"));
        assert_eq!(key.open("user-a", &sealed).unwrap(), b"the secret");
        // Copied to another account's row.
        assert!(key.open("user-b", &sealed).is_err());
        // Another key.
        assert!(
            SealingKey::new(&[8; KEY_BYTES])
                .open("user-a", &sealed)
                .is_err()
        );
        // Fresh nonce each time.
        assert_ne!(sealed, key.seal("user-a", b"the secret").unwrap());
        // Damaged.
        let mut damaged = sealed.clone();
        damaged.pop();
        damaged.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(key.open("user-a", &damaged).is_err());
        assert!(key.open("user-a", "v1.").is_err());
        assert!(key.open("user-a", "plain").is_err());
    }

    #[test]
    fn a_derived_key_depends_on_its_material_only() {
        let a = SealingKey::derived_from(&Secret::new(b"signing secret one".to_vec()));
        let same = SealingKey::derived_from(&Secret::new(b"signing secret one".to_vec()));
        let other = SealingKey::derived_from(&Secret::new(b"signing secret two".to_vec()));
        let sealed = a.seal("u", b"x").unwrap();
        assert_eq!(same.open("u", &sealed).unwrap(), b"x");
        assert!(other.open("u", &sealed).is_err());
    }
}
