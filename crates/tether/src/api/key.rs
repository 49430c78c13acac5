//! The server API's key: held so that it never reaches a log or a `Debug` print, and checked in
//! constant time.
//!
//! Both sides are hashed with SHA-256 before the comparison, so the comparison always runs over
//! 32 bytes: comparing the raw strings would stop at a length mismatch and tell a timing attacker
//! the key's length, then each byte in turn. `subtle`'s `ct_eq` then compares the digests without
//! a data-dependent branch. Hashing the presented key takes time that depends only on its own
//! length, which the caller knows anyway.

use std::fmt;
use std::str::FromStr;

use ring::digest::{digest, SHA256};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

/// The API key of `--api-key` / `api_key` (or read from `api_key_file`). Never empty. Its `Debug`
/// shows no part of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A key; `Err` for an empty one (an empty `X-API-Key` would then be the key).
    pub fn new(key: String) -> Result<Self, String> {
        if key.is_empty() {
            return Err("the API key is empty".into());
        }
        Ok(Self(key))
    }

    /// The key read from a file: its content without the trailing newline (`\n` or `\r\n`, as an
    /// editor or `echo` leaves it); `Err` when that leaves nothing.
    pub fn from_file_content(content: &str) -> Result<Self, String> {
        Self::new(content.trim_end_matches(['\r', '\n']).to_owned())
    }

    fn digest(bytes: &[u8]) -> [u8; 32] {
        digest(&SHA256, bytes).as_ref().try_into().expect("SHA-256 is 32 bytes")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl FromStr for ApiKey {
    type Err = String;

    fn from_str(key: &str) -> Result<Self, String> {
        Self::new(key.to_owned())
    }
}

impl<'de> Deserialize<'de> for ApiKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// What a request's `X-API-Key` is checked against: the key's digest only (the key itself is not
/// kept by the running API).
#[derive(Clone)]
pub struct KeyCheck {
    digest: [u8; 32],
}

impl KeyCheck {
    pub fn new(key: &ApiKey) -> Self {
        Self { digest: ApiKey::digest(key.0.as_bytes()) }
    }

    /// Whether `presented` is the key, in time that does not depend on how much of it is right.
    pub fn matches(&self, presented: &[u8]) -> bool {
        ApiKey::digest(presented).ct_eq(&self.digest).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_key_matches() {
        let check = KeyCheck::new(&ApiKey::new("s3cret".into()).unwrap());
        assert!(check.matches(b"s3cret"));
        for wrong in [&b""[..], b"s3cre", b"s3cret ", b"S3cret", b"s3creu", b"s3cret\n"] {
            assert!(!check.matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn empty_keys_are_refused_and_a_file_loses_only_its_trailing_newline() {
        assert!(ApiKey::new(String::new()).is_err());
        assert!("".parse::<ApiKey>().is_err());
        assert!(ApiKey::from_file_content("\n").is_err());
        assert!(ApiKey::from_file_content("\r\n").is_err());
        let key = ApiKey::from_file_content(" k e y \r\n").unwrap();
        assert!(KeyCheck::new(&key).matches(b" k e y "));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::new("do-not-print-me".into()).unwrap();
        assert!(!format!("{key:?}").contains("do-not"));
        assert!(!format!("{:?}", Some(key)).contains("print"));
    }
}
