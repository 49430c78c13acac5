//! `--demo-tokens`: `GET /demo/token?user=NICK` signs a short-lived HS256 connection token for a
//! nickname, so the chat demo can show auth (and a token refresh) with no backend of its own; the
//! welcome page's `GET /demo/config` says whether it is on (`{"tokens":true}`).
//!
//! Anyone who can reach the endpoint gets a token for any nickname: it is for demos, never for a
//! server whose users must be who they say. The token is signed with the configured HMAC secret,
//! or with a random secret made at startup (which then also verifies connections).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::RawQuery;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::jwt::TokenKeys;

/// The signer behind `/demo/token`: keys with an HMAC secret.
#[derive(Clone, Debug)]
pub struct DemoTokens {
    keys: Arc<TokenKeys>,
    /// How long each token is valid (`demo_token_secs`).
    lifetime: Duration,
}

impl DemoTokens {
    /// `None` when `keys` has no HMAC secret (settings give it one whenever demo tokens are on).
    pub fn new(keys: Arc<TokenKeys>, lifetime: Duration) -> Option<Self> {
        keys.has_hmac().then_some(Self { keys, lifetime })
    }

    /// `/demo/config` (always, answering whether tokens are on) and, with `tokens`,
    /// `/demo/token`.
    pub fn router(tokens: Option<Self>) -> Router {
        let on = tokens.is_some();
        let config =
            Router::new().route("/demo/config", get(move || async move { Json(serde_json::json!({ "tokens": on })) }));
        match tokens {
            None => config,
            Some(tokens) => config.route(
                "/demo/token",
                get(move |RawQuery(query): RawQuery| {
                    let tokens = tokens.clone();
                    // Parsed here rather than by axum's `Query`, whose refusals are not JSON.
                    let user = query.and_then(|query| {
                        url::form_urlencoded::parse(query.as_bytes())
                            .find(|(key, _)| key == "user")
                            .map(|(_, value)| value.into_owned())
                    });
                    async move { tokens.token(user.as_deref()) }
                }),
            ),
        }
    }

    fn token(&self, user: Option<&str>) -> Response {
        let Some(user) = user.filter(|user| is_nickname(user)) else {
            let error = "user must be 1-32 characters of A-Z a-z 0-9 _ -";
            return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": error }))).into_response();
        };
        let Some((token, expires_at)) = self.keys.sign_hs256(user, SystemTime::now(), self.lifetime) else {
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({ "error": "cannot sign" })))
                .into_response();
        };
        let expires_ms = expires_at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let body = serde_json::json!({ "token": token, "user": user, "expiresAt": expires_ms });
        ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
    }
}

/// A nickname a demo token may be signed for: 1-32 of `A-Za-z0-9_-`.
fn is_nickname(user: &str) -> bool {
    (1..=32).contains(&user.len()) && user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_are_1_to_32_safe_characters() {
        for good in ["a", "Ada_Lovelace-1", &"x".repeat(32)] {
            assert!(is_nickname(good), "{good}");
        }
        for bad in ["", &"x".repeat(33), "a b", "ä", "a.b", "<script>"] {
            assert!(!is_nickname(bad), "{bad}");
        }
    }

    #[test]
    fn demo_tokens_need_an_hmac_secret() {
        assert!(DemoTokens::new(Arc::new(TokenKeys::new(None, None).unwrap()), Duration::from_secs(30)).is_none());
        assert!(
            DemoTokens::new(Arc::new(TokenKeys::new(Some(&[7; 32]), None).unwrap()), Duration::from_secs(30)).is_some()
        );
    }
}
