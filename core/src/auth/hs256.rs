//! The cryptography behind `jsonwebtoken`, cut down to the one algorithm
//! Gatehouse signs and accepts: HMAC-SHA-256 (RustCrypto's `hmac` and
//! `sha2`). With no RSA, ECDSA or EdDSA code in the process, no token header
//! can steer verification to another algorithm, and the binary carries
//! 0.4 MB less code (which is resident memory).

use hmac::{Hmac, Mac as _};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory,
    // JWKs (public-key material) never occur here: every helper refuses.
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported()),
        rsa_pub_components_from_public_key: |_| Err(unsupported()),
        ec_pub_components_from_private_key: |_, _| Err(unsupported()),
        ed_pub_components_from_private_key: |_, _| Err(unsupported()),
        compute_digest: |_, _| Err(unsupported()),
    },
};

/// Makes HS256 the process's `jsonwebtoken` backend. Idempotent; must run
/// before the first `jsonwebtoken::encode` or `decode`, which
/// [`super::jwt::JwtKeys::new`] sees to.
pub fn install() {
    // `Err` only says a provider is installed already, which is this one:
    // nothing else in the process installs one.
    let _ = PROVIDER.install_default();
}

fn unsupported() -> Error {
    ErrorKind::InvalidAlgorithm.into()
}

fn signer_factory(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if *algorithm != Algorithm::HS256 {
        return Err(unsupported());
    }
    Ok(Box::new(Hs256::new(key.as_bytes())?))
}

fn verifier_factory(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> Result<Box<dyn JwtVerifier>, Error> {
    if *algorithm != Algorithm::HS256 {
        return Err(unsupported());
    }
    Ok(Box::new(Hs256::new(key.try_get_as_bytes()?)?))
}

/// HMAC-SHA-256 keyed with one secret.
struct Hs256(HmacSha256);

impl Hs256 {
    fn new(secret: &[u8]) -> Result<Self, Error> {
        HmacSha256::new_from_slice(secret)
            .map(Self)
            .map_err(|_| ErrorKind::InvalidKeyFormat.into())
    }
}

impl signature::Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl signature::Verifier<Vec<u8>> for Hs256 {
    /// Constant-time comparison (`verify_slice`).
    fn verify(&self, message: &[u8], tag: &Vec<u8>) -> Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        mac.verify_slice(tag).map_err(signature::Error::from_source)
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"an-unguessable-test-secret-of-32-bytes!";

    #[test]
    fn signs_the_rfc_4231_way() {
        // RFC 4231, test case 2: key "Jefe".
        let mac = Hs256::new(b"Jefe").unwrap();
        let tag = signature::Signer::try_sign(&mac, b"what do ya want for nothing?").unwrap();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verifies_its_own_tags_and_nothing_else() {
        let mac = Hs256::new(SECRET).unwrap();
        let tag = signature::Signer::try_sign(&mac, b"payload").unwrap();
        assert!(signature::Verifier::verify(&mac, b"payload", &tag).is_ok());
        assert!(signature::Verifier::verify(&mac, b"payloaD", &tag).is_err());
        assert!(signature::Verifier::verify(&mac, b"payload", &tag[..31].to_vec()).is_err());
    }

    #[test]
    fn other_algorithms_are_refused() {
        for algorithm in [
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ] {
            assert!(signer_factory(&algorithm, &EncodingKey::from_secret(SECRET)).is_err());
            assert!(verifier_factory(&algorithm, &DecodingKey::from_secret(SECRET)).is_err());
        }
    }
}
