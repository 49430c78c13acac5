//! Who may connect to `/tether`, and the application backend's say on publishes.
//!
//! - [`jwt`]: [`TokenKeys`] verifies connection and subscription JWTs (HS256/384/512 with a
//!   secret, RS256 or ES256 with a public key; optional `aud` and `iss`; `exp` optional as in
//!   Centrifugo, but an expired token is refused, with no leeway).
//! - [`authorize`]: the pre-upgrade hook of the `/tether` route ([`ConnectAuth`]): the token
//!   from `?token=` or `Authorization: Bearer`, then the connect proxy when one is configured.
//!   Every refusal happens before the 101.
//! - [`http`]: the one connection-pooled HTTP client of the process ([`ProxyClient`]).
//! - [`connect_proxy`] and [`publish_proxy`]: the two calls to the application's backend.
//! - [`demo_tokens`]: `GET /demo/token` and `GET /demo/config` of `--demo-tokens`.
//! - [`hub`]: the keys as the hub's token verifier (`refresh`, subscription tokens) and the
//!   publish proxy as its `on_publish` hook.
//!
//! Secrets ([`Secret`]) never appear in `Debug` output or logs, and neither do tokens.

pub mod authorize;
pub mod connect_proxy;
pub mod demo_tokens;
pub mod http;
pub mod hub;
pub mod jwt;
pub mod publish_proxy;
pub mod secret_check;

use std::fmt;

use serde::Deserialize;

pub use authorize::ConnectAuth;
pub use connect_proxy::ConnectProxy;
pub use demo_tokens::DemoTokens;
pub use http::ProxyClient;
pub use jwt::TokenKeys;

/// `bytes` random bytes from the OS as hex digits: an upgrade attempt's id for the connect proxy
/// (16), a per-process demo secret (32).
pub fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    getrandom::fill(&mut random).expect("the OS random source");
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// A secret setting (an HMAC secret, an API key): its `Debug` shows its length only, so that it
/// can sit in `Debug`-printed settings and never reach a log.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: only for the code that signs, verifies or compares with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes, hidden>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let secret = Secret::new("correct horse battery staple");
        let shown = format!("{secret:?} {:?}", Some(secret.clone()));
        assert!(!shown.contains("horse"), "{shown}");
        assert!(shown.contains("28 bytes"), "{shown}");
        assert_eq!(secret.expose(), "correct horse battery staple");
    }
}
