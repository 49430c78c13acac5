//! Checking a presented secret in constant time: the server API's key, the admin password. The
//! secret itself is a `Secret` of the settings (`crate::auth::Secret`: checked, read from its
//! file, never in `Debug` output or logs); the running server keeps only its digest.
//!
//! Both sides are hashed with SHA-256 before the comparison, so the comparison always runs over
//! 32 bytes: comparing the raw strings would stop at a length mismatch and tell a timing attacker
//! the key's length, then each byte in turn. `subtle`'s `ct_eq` then compares the digests without
//! a data-dependent branch. Hashing the presented key takes time that depends only on its own
//! length, which the caller knows anyway.

use ring::digest::{digest, SHA256};
use subtle::ConstantTimeEq as _;

/// SHA-256 of `bytes` (also the key under which a session or device id is stored: the table never
/// holds the ids themselves).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    digest(&SHA256, bytes).as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// What a presented secret (an `X-API-Key`, a password) is checked against: the digest only.
#[derive(Clone)]
pub struct SecretCheck {
    digest: [u8; 32],
}

impl SecretCheck {
    pub fn new(key: &str) -> Self {
        Self { digest: sha256(key.as_bytes()) }
    }

    /// Whether `presented` is the secret, in time that does not depend on how much of it is right.
    pub fn matches(&self, presented: &[u8]) -> bool {
        sha256(presented).ct_eq(&self.digest).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_key_matches() {
        let check = SecretCheck::new("s3cret-s3cret-s3cret");
        assert!(check.matches(b"s3cret-s3cret-s3cret"));
        for wrong in [
            &b""[..],
            b"s3cret-s3cret-s3cre",
            b"s3cret-s3cret-s3cret ",
            b"S3cret-s3cret-s3cret",
            b"s3cret-s3cret-s3cret\n",
        ] {
            assert!(!check.matches(wrong), "{wrong:?}");
        }
    }
}
