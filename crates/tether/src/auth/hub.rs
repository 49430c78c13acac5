//! What `tether serve` plugs into the hub: its JWT keys as the hub's [`TokenVerifier`] (`refresh`
//! and subscription tokens are JWTs like connection tokens), and the publish proxy as the hub's
//! [`ChannelHooks::on_publish`].

use std::sync::Arc;

use tether_hub::{
    BoxFuture, ChannelHooks, ConnectionToken, HubError, PublishDecision, PublishRequest, SubscriptionToken,
    TokenVerifier,
};

use super::http::ProxyClient;
use super::jwt::TokenKeys;
use super::publish_proxy::{publish_proxy, ProxyError, PublishBackend, PublishOutcome};

/// The server's token keys, verifying what clients send over the token protocol.
pub struct JwtVerifier(pub Arc<TokenKeys>);

impl TokenVerifier for JwtVerifier {
    fn connection_token(&self, token: &str) -> Result<ConnectionToken, String> {
        let verified = self.0.connection_token(token).map_err(|error| error.to_string())?;
        Ok(ConnectionToken { user: verified.user, expires_at: verified.expires_at })
    }

    fn subscription_token(&self, token: &str) -> Result<SubscriptionToken, String> {
        let verified = self.0.subscription_token(token).map_err(|error| error.to_string())?;
        Ok(SubscriptionToken { user: verified.user, channel: verified.channel, expires_at: verified.expires_at })
    }
}

/// `--publish-proxy`: every client publish is asked of the application's backend first.
pub struct PublishProxy {
    pub client: ProxyClient,
    pub backend: PublishBackend,
}

impl ChannelHooks for PublishProxy {
    fn on_publish<'a>(&'a self, request: PublishRequest<'a>) -> BoxFuture<'a, Result<PublishDecision, HubError>> {
        Box::pin(async move {
            let conn = request.conn;
            let outcome =
                publish_proxy(&self.client, &self.backend, conn.id(), conn.user(), request.channel, request.data).await;
            match outcome {
                Ok(PublishOutcome::Accept) => Ok(PublishDecision::Accept),
                Ok(PublishOutcome::Replace(data)) => Ok(PublishDecision::Replace(data)),
                Err(ProxyError::Forbidden(message)) => Err(HubError::Forbidden(message)),
                Err(refusal @ ProxyError::Unavailable(_)) => {
                    Err(HubError::Refused { code: refusal.code().to_owned(), message: refusal.message().to_owned() })
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_with_a_subscription_token_is_refused() {
        let keys = TokenKeys::new(Some(&[7; 32]), None).unwrap();
        let encoding = jsonwebtoken::EncodingKey::from_secret(&[7; 32]).unwrap();
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &encoding).unwrap()
        };
        let verifier = JwtVerifier(Arc::new(keys));
        let subscription = sign(serde_json::json!({"sub":"ada","channel":"chat:x"}));
        assert_eq!(
            verifier.connection_token(&subscription).err().as_deref(),
            Some("a subscription token is not a connection token")
        );
        assert_eq!(
            verifier.connection_token(&sign(serde_json::json!({"sub":"ada"}))).unwrap().user.as_deref(),
            Some("ada")
        );
        assert!(verifier.subscription_token(&subscription).is_ok());
    }
}
