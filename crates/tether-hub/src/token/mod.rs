//! [`TokenServer`]: the token protocol of `docs/protocol.md` as a [`Listener`] over a [`Hub`].
//!
//! This file is the connection's life (welcome, the server's initial subscriptions, leaving every
//! channel at the end) and the dispatch of requests; `requests.rs` answers each request type,
//! checking the namespace policy (`policy.rs`) and calling the application's hooks (`hooks.rs`)
//! on the way.

mod requests;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tether_tokio::{Closed, Conn, Listener, Message};

use crate::error::HubError;
use crate::expiry::{millis, millis_until, TOKEN_EXPIRED, TOKEN_EXPIRED_REASON};
use crate::hooks::{ChannelHooks, InitialChannels, TokenVerifier};
use crate::hub::Hub;
use crate::session::Session;
use crate::wire::{ErrorOut, IdOnly, Request};

/// The token protocol on a hub: mount it on a route (conventionally `/tether`, sub-protocols
/// `tether.json` and `json`).
#[derive(Clone)]
pub struct TokenServer {
    hub: Hub,
    heartbeat: Duration,
    /// Checks `refresh` and subscription tokens; without one, both are refused.
    verifier: Option<Arc<dyn TokenVerifier>>,
    /// The application's say on subscribes and publishes.
    hooks: Option<Arc<dyn ChannelHooks>>,
}

impl fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenServer")
            .field("hub", &self.hub)
            .field("heartbeat", &self.heartbeat)
            .field("verifier", &self.verifier.is_some())
            .field("hooks", &self.hooks.is_some())
            .finish()
    }
}

/// A failed request: the protocol's error code and a message.
struct Failure(Cow<'static, str>, String);

impl From<HubError> for Failure {
    fn from(error: HubError) -> Self {
        let message = error.to_string();
        match error {
            HubError::Refused { code, .. } => Self(Cow::Owned(code), message),
            other => Self(Cow::Owned(other.code().to_owned()), message),
        }
    }
}

fn bad_request(message: impl Into<String>) -> Failure {
    Failure(Cow::Borrowed("bad_request"), message.into())
}

impl TokenServer {
    /// Serves `hub`; `heartbeat` is the server's ping interval, announced in the welcome.
    pub fn new(hub: Hub, heartbeat: Duration) -> Self {
        Self { hub, heartbeat, verifier: None, hooks: None }
    }

    /// Verifies the tokens clients show: a fresh connection token in `refresh`, subscription
    /// tokens for namespaces with `subscribe = token`.
    pub fn with_verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Calls `hooks` before each client subscribe and publish that the policy allowed.
    pub fn with_hooks(mut self, hooks: Arc<dyn ChannelHooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// The hub, for server-side publishing.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    fn session(conn: &Conn) -> Arc<Session> {
        conn.data::<Session>().expect("set when the connection opened")
    }

    fn error(conn: &Conn, id: Option<u64>, code: &str, message: &str) {
        let text = serde_json::to_string(&ErrorOut { kind: "error", id, code, message }).expect("serializable");
        let _ = conn.send_text(text);
    }

    /// Takes a token from the connection's request budget; answers `rate_limited` (with the id,
    /// if the frame is a request that has one) when there is none.
    fn request_allowed(&self, conn: &Conn, text: Option<&str>) -> bool {
        let config = self.hub.config();
        let allowed =
            Self::session(conn).requests.lock().expect("not poisoned").take(config.request_rate, config.request_burst);
        if !allowed {
            let id = text.and_then(request_id);
            let message = format!("more than {} requests per second", config.request_rate);
            Self::error(conn, id, "rate_limited", &message);
        }
        allowed
    }

    async fn handle(&self, conn: &Conn, text: &str) {
        let request: Request<'_> = match serde_json::from_str(text) {
            Ok(request) => request,
            Err(error) => {
                // Answer with the id if one can be read at all, so the client can match the error.
                let id = request_id(text);
                return Self::error(conn, id, "bad_request", &format!("malformed request: {error}"));
            }
        };
        let Some(kind) = request.kind.as_deref() else {
            return Self::error(conn, request.id, "bad_request", "missing \"type\"");
        };
        const TYPES: [&str; 7] = ["subscribe", "unsubscribe", "publish", "presence", "history", "send", "refresh"];
        if !TYPES.contains(&kind) {
            return Self::error(conn, request.id, "unknown_type", &format!("unknown type {kind:?}"));
        }
        let Some(id) = request.id else {
            return Self::error(conn, None, "bad_request", "requests need a numeric \"id\"");
        };
        let result = match kind {
            "subscribe" => self.subscribe(conn, id, &request).await,
            "unsubscribe" => self.unsubscribe(conn, id, &request),
            "publish" => self.publish(conn, id, &request).await,
            "presence" => self.presence(conn, id, &request).await,
            "history" => self.history(conn, id, &request).await,
            "refresh" => self.refresh(conn, id, &request),
            _ => self.send(conn, id, &request).await,
        };
        match result {
            Ok(Some(ack)) => {
                let _ = conn.send_text(ack);
            }
            Ok(None) => {}
            Err(Failure(code, message)) => Self::error(conn, Some(id), &code, &message),
        }
    }

    /// The subscriptions the server makes as the connection opens ([`InitialChannels`]).
    async fn subscribe_initial(&self, conn: &Conn) {
        // Taken, not read: the list is not kept for the connection's whole life.
        let Some(initial) = conn.take_data::<InitialChannels>() else { return };
        for channel in &initial.0 {
            let subscribed = match crate::channel::validate_channel(channel) {
                Ok(()) => self.hub.subscribe_as_server(conn, channel).await,
                Err(error) => Err(error),
            };
            if let Err(error) = subscribed {
                tracing::warn!(connection = conn.id(), %channel, %error, "initial subscription skipped");
            }
        }
    }
}

/// The numeric `id` of a frame that is refused before it is read in full, if one can be read.
fn request_id(text: &str) -> Option<u64> {
    serde_json::from_str::<IdOnly>(text).ok()?.id
}

impl Listener for TokenServer {
    async fn opened(&self, conn: &Conn) {
        let expires_at = conn.expires_at();
        conn.set_data(Session::new(self.hub.id(), self.hub.config(), expires_at));
        // The server has registered the connection already (so `send` finds it); the sweeper
        // starts with the first one.
        self.hub.start_sweeper();
        let welcome = serde_json::json!({
            "type": "welcome",
            "connectionId": conn.id(),
            "subProtocol": conn.protocol(),
            "server": concat!("tether/", env!("CARGO_PKG_VERSION")),
            "heartbeat": self.heartbeat.as_millis() as u64,
            "user": conn.user(),
            "expiresAt": expires_at.map(millis),
            "expiresIn": expires_at.map(|at| millis_until(at, SystemTime::now())),
        });
        let _ = conn.send_text(welcome.to_string());
        if let Some(at) = expires_at {
            if at <= SystemTime::now() {
                // Expired between its check before the upgrade and now.
                let _ = conn.close(TOKEN_EXPIRED, TOKEN_EXPIRED_REASON);
                return;
            }
            self.hub.inner.expiries.track(conn, at);
        }
        self.subscribe_initial(conn).await;
    }

    async fn message(&self, conn: &Conn, message: Message) {
        match message {
            Message::Text(text) => {
                if self.request_allowed(conn, Some(&text)) {
                    self.handle(conn, &text).await;
                }
            }
            Message::Binary(_) => {
                if self.request_allowed(conn, None) {
                    Self::error(conn, None, "bad_request", "binary frames are not part of the token protocol");
                }
            }
        }
    }

    async fn closed(&self, conn: &Conn, _closed: &Closed) {
        let Some(session) = conn.data::<Session>() else { return };
        self.hub.inner.expiries.forget(conn, &session);
        self.hub.disconnect(conn, session.end());
    }
}
