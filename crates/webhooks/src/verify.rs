//! Signature checks, all in constant time.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secrets::Secret;

type HmacSha256 = Hmac<Sha256>;

/// True when `signature` is HMAC-SHA256(`secret`, `body`) for one of `secrets`.
/// `Mac::verify_slice` compares in constant time.
pub(crate) fn hmac_sha256_matches(secrets: &[Secret], body: &[u8], signature: &[u8]) -> bool {
    if signature.len() != 32 {
        return false;
    }
    // Every candidate is tried (no early exit), so the time does not tell which one matched.
    let mut matched = false;
    for secret in secrets {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.bytes()) else {
            continue;
        };
        mac.update(body);
        matched |= mac.verify_slice(signature).is_ok();
    }
    matched
}

/// True when `given` equals one of `secrets`. Both sides are hashed first so neither the content
/// nor the length of a secret leaks through the comparison time.
pub(crate) fn secret_matches(secrets: &[Secret], given: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        let expected = Sha256::digest(secret.bytes());
        matched |= expected.as_slice().ct_eq(given.as_slice());
    }
    matched.into()
}

/// HMAC-SHA256 of `body` with `secret` (used by tests and by anyone signing deliveries).
pub fn hmac_sha256(secret: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_only_the_right_secret() {
        let sig = hmac_sha256(b"right", b"body");
        assert!(hmac_sha256_matches(
            &[Secret::from("wrong"), Secret::from("right")],
            b"body",
            &sig
        ));
        assert!(!hmac_sha256_matches(
            &[Secret::from("wrong")],
            b"body",
            &sig
        ));
        assert!(!hmac_sha256_matches(
            &[Secret::from("right")],
            b"body!",
            &sig
        ));
        assert!(!hmac_sha256_matches(
            &[Secret::from("right")],
            b"body",
            &sig[..31]
        ));
        assert!(!hmac_sha256_matches(&[], b"body", &sig));
    }

    #[test]
    fn secrets_compare_whole() {
        let secrets = [Secret::from("s3cret")];
        assert!(secret_matches(&secrets, b"s3cret"));
        assert!(!secret_matches(&secrets, b"s3cre"));
        assert!(!secret_matches(&secrets, b"s3crett"));
        assert!(!secret_matches(&[], b""));
    }
}
