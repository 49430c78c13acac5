//! The pre-upgrade hook of `/tether` (`RouteOptions::authorize`): who the client is, decided
//! before the 101, so a refused client never gets a WebSocket.
//!
//! In order:
//! 1. With token keys configured (a secret, a public key, or `--demo-tokens`): the token comes
//!    from the `token` query parameter (browsers cannot set headers on a WebSocket), else from
//!    `Authorization: Bearer`. A token that does not verify (malformed, badly signed, expired,
//!    wrong `aud`/`iss`) gets 401 with `WWW-Authenticate: Bearer error="invalid_token"` and a
//!    one-line body saying why, even where anonymous clients are allowed. No token gets the same
//!    401 unless `allow_anonymous`.
//! 2. With a connect proxy configured: the backend is asked next (see [`super::connect_proxy`]),
//!    and has the last word: it may refuse a client whose token was good, and what it answers
//!    (`user`, `info`, `channels`) replaces what the token said; the token's expiry stays.
//!
//! The token itself is never logged, nor put in a response.

use std::time::SystemTime;

use tether_hub::InitialChannels;
use tether_proto::handshake::response::Response;
use tether_tokio::server::AuthRequest;
use tether_tokio::Identity;

use super::connect_proxy::ConnectProxy;
use super::jwt::TokenKeys;
use std::sync::Arc;

/// What the `/tether` route checks before an upgrade.
#[derive(Clone)]
pub struct ConnectAuth {
    keys: Option<Arc<TokenKeys>>,
    allow_anonymous: bool,
    proxy: Option<ConnectProxy>,
}

/// An admitted client before it becomes an [`Identity`].
#[derive(Debug, Default)]
struct Admitted {
    user: Option<String>,
    info: Option<String>,
    expires_at: Option<SystemTime>,
    channels: Option<Vec<String>>,
}

impl ConnectAuth {
    pub fn new(keys: Option<Arc<TokenKeys>>, allow_anonymous: bool, proxy: Option<ConnectProxy>) -> Self {
        Self { keys, allow_anonymous, proxy }
    }

    /// Whether anything is checked at all: without keys or a proxy the route needs no hook, and
    /// every client is anonymous, as before auth existed.
    pub fn is_on(&self) -> bool {
        self.keys.is_some() || self.proxy.is_some()
    }

    /// The hook: an identity for the connection, or the refusal the client gets instead.
    pub async fn authorize(&self, request: AuthRequest) -> Result<Identity, Response> {
        let mut admitted = Admitted::default();
        if let Some(keys) = &self.keys {
            match token_of(&request) {
                Some(token) => {
                    let verified = keys.connection_token(&token).map_err(|error| invalid_token(&error.to_string()))?;
                    admitted = Admitted {
                        user: verified.user,
                        info: verified.info.map(|info| info.get().to_owned()),
                        expires_at: verified.expires_at,
                        channels: Some(verified.channels).filter(|channels| !channels.is_empty()),
                    };
                }
                None if self.allow_anonymous => {}
                None => return Err(invalid_token("token required")),
            }
        }
        if let Some(proxy) = &self.proxy {
            let answer = proxy.ask(&request).await?;
            if let Some(user) = answer.user.filter(|user| !user.is_empty()) {
                admitted.user = Some(user);
            }
            if let Some(info) = answer.info.filter(|info| info.get() != "null") {
                admitted.info = Some(info.get().to_owned());
            }
            if answer.channels.is_some() {
                admitted.channels = answer.channels;
            }
        }
        Ok(admitted.into_identity())
    }
}

impl Admitted {
    fn into_identity(self) -> Identity {
        let mut identity = self.user.map_or_else(Identity::anonymous, Identity::user);
        if let Some(info) = self.info {
            identity = identity.with_info(info);
        }
        if let Some(at) = self.expires_at {
            identity = identity.with_expiry(at);
        }
        if let Some(channels) = self.channels {
            identity = identity.with_data(InitialChannels(channels));
        }
        identity
    }
}

/// The token of a request: `?token=` first, else `Authorization: Bearer …`; an empty one is none.
fn token_of(request: &AuthRequest) -> Option<String> {
    if let Some(token) = request.query_param("token").filter(|token| !token.is_empty()) {
        return Some(token);
    }
    let header = request.header("authorization")?;
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// 401 with the RFC 6750 challenge; `why` (never the token) is the body.
fn invalid_token(why: &str) -> Response {
    Response::new(401).header("WWW-Authenticate", r#"Bearer error="invalid_token""#).text(format!("{why}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admission_becomes_an_identity_with_everything_it_knew() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000);
        let identity = Admitted {
            user: Some("ada".into()),
            info: Some(r#"{"n":1}"#.into()),
            expires_at: Some(at),
            channels: Some(vec!["news".into()]),
        }
        .into_identity();
        assert_eq!(identity.user_id(), Some("ada"));
        assert_eq!(identity.info(), Some(r#"{"n":1}"#));
        assert_eq!(identity.expires_at(), Some(at));
        assert_eq!(identity.data::<InitialChannels>(), Some(&InitialChannels(vec!["news".into()])));
        let anonymous = Admitted::default().into_identity();
        assert_eq!((anonymous.user_id(), anonymous.data::<InitialChannels>()), (None, None));
    }

    #[test]
    fn the_refusal_is_a_bearer_challenge_with_a_reason() {
        let response = invalid_token("token expired");
        assert_eq!(response.status, 401);
        assert_eq!(response.get("WWW-Authenticate"), Some(r#"Bearer error="invalid_token""#));
        assert_eq!(response.body, b"token expired\n");
    }
}
