//! [`TokenServer`]: the token protocol of `docs/protocol.md` as a [`Listener`] over a [`Hub`].

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tether_tokio::{Closed, Conn, Listener, Message};

use crate::channel::{validate_channel, Publication};
use crate::error::HubError;
use crate::hub::Hub;
use crate::session::{Session, TokenBucket};
use crate::wire::{Ack, ErrorOut, IdOnly, MemberOut, PublicationOut, Request};

/// The token protocol on a hub: mount it on a route (conventionally `/tether`, sub-protocols
/// `tether.json` and `json`).
#[derive(Debug, Clone)]
pub struct TokenServer {
    hub: Hub,
    heartbeat: Duration,
}

/// A failed request: the protocol's error code and a message.
struct Failure(&'static str, String);

impl From<HubError> for Failure {
    fn from(error: HubError) -> Self {
        Self(error.code(), error.to_string())
    }
}

fn bad_request(message: impl Into<String>) -> Failure {
    Failure("bad_request", message.into())
}

impl TokenServer {
    /// Serves `hub`; `heartbeat` is the server's ping interval, announced in the welcome.
    pub fn new(hub: Hub, heartbeat: Duration) -> Self {
        Self { hub, heartbeat }
    }

    /// The hub, for server-side publishing.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    fn session(conn: &Conn) -> std::sync::Arc<Session> {
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

    fn handle(&self, conn: &Conn, text: &str) {
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
        if !matches!(kind, "subscribe" | "unsubscribe" | "publish" | "presence" | "history" | "send") {
            return Self::error(conn, request.id, "unknown_type", &format!("unknown type {kind:?}"));
        }
        let Some(id) = request.id else {
            return Self::error(conn, None, "bad_request", "requests need a numeric \"id\"");
        };
        let result = match kind {
            "subscribe" => self.subscribe(conn, id, &request),
            "unsubscribe" => self.unsubscribe(conn, id, &request),
            "publish" => self.publish(conn, id, &request),
            "presence" => self.presence(conn, id, &request),
            "history" => self.history(id, &request),
            _ => self.send(conn, id, &request),
        };
        match result {
            Ok(Some(ack)) => {
                let _ = conn.send_text(ack);
            }
            Ok(None) => {}
            Err(Failure(code, message)) => Self::error(conn, Some(id), code, &message),
        }
    }

    fn channel<'r>(request: &'r Request<'_>) -> Result<&'r str, Failure> {
        let channel = request.channel.as_deref().ok_or_else(|| bad_request("missing \"channel\""))?;
        validate_channel(channel)?;
        Ok(channel)
    }

    fn rate_limit(&self, conn: &Conn) -> Result<(), Failure> {
        let config = self.hub.config();
        let allowed =
            Self::session(conn).bucket.lock().expect("not poisoned").take(config.publish_rate, config.publish_burst);
        if allowed {
            Ok(())
        } else {
            Err(Failure("rate_limited", format!("more than {} publishes per second", config.publish_rate)))
        }
    }

    fn data<'r>(&self, request: &'r Request<'_>) -> Result<&'r serde_json::value::RawValue, Failure> {
        let data = request.data.ok_or_else(|| bad_request("missing \"data\""))?;
        let limit = self.hub.config().max_data_bytes;
        if data.get().len() > limit {
            return Err(HubError::TooLarge(limit).into());
        }
        Ok(data)
    }

    fn subscribe(&self, conn: &Conn, id: u64, request: &Request<'_>) -> Result<Option<String>, Failure> {
        let channel = Self::channel(request)?;
        let config = self.hub.config();
        if request.info.is_some_and(|info| info.get().len() > config.max_info_bytes) {
            return Err(HubError::TooLarge(config.max_info_bytes).into());
        }
        // An offset means something only in the life of the channel that issued it: without the
        // epoch, offsets from before a restart would be taken for offsets of the new life.
        let recovery = match (request.since, request.epoch.as_deref()) {
            (Some(since), Some(epoch)) => Some((since, epoch)),
            (Some(_), None) => return Err(bad_request("\"since\" needs the \"epoch\" it belongs to")),
            (None, _) => None,
        };
        let session = Self::session(conn);
        let added = {
            let mut subscriptions = session.subscriptions.lock().expect("not poisoned");
            if !subscriptions.contains(channel) && subscriptions.len() >= config.max_subscriptions {
                return Err(HubError::LimitExceeded(config.max_subscriptions).into());
            }
            subscriptions.insert(channel.to_owned())
        };
        let subscribed = self.hub.subscribe(conn, channel, request.info, recovery, |offset, epoch, recovery| {
            let mut ack = Ack::new(id);
            ack.channel = Some(channel);
            ack.offset = Some(offset);
            ack.epoch = Some(epoch);
            if let Some(recovery) = &recovery {
                ack.recovered = Some(recovery.recovered);
                ack.truncated = recovery.truncated.then_some(true);
                ack.publications = Some(publications_out(&recovery.publications));
            }
            ack.to_json()
        });
        if let Err(error) = subscribed {
            if added {
                session.subscriptions.lock().expect("not poisoned").remove(channel);
            }
            return Err(error.into());
        }
        Ok(None)
    }

    fn unsubscribe(&self, conn: &Conn, id: u64, request: &Request<'_>) -> Result<Option<String>, Failure> {
        let channel = Self::channel(request)?;
        if !Self::session(conn).subscriptions.lock().expect("not poisoned").remove(channel) {
            return Err(HubError::NotSubscribed(channel.to_owned()).into());
        }
        self.hub.leave(conn, channel)?;
        let mut ack = Ack::new(id);
        ack.channel = Some(channel);
        Ok(Some(ack.to_json()))
    }

    fn publish(&self, conn: &Conn, id: u64, request: &Request<'_>) -> Result<Option<String>, Failure> {
        let channel = Self::channel(request)?;
        if channel.starts_with('$') {
            return Err(HubError::Forbidden(channel.to_owned()).into());
        }
        let data = self.data(request)?;
        self.rate_limit(conn)?;
        let offset = self.hub.publish_raw(channel, data, Some(conn.id()))?;
        let mut ack = Ack::new(id);
        ack.channel = Some(channel);
        ack.offset = Some(offset);
        Ok(Some(ack.to_json()))
    }

    fn presence(&self, conn: &Conn, id: u64, request: &Request<'_>) -> Result<Option<String>, Failure> {
        let channel = Self::channel(request)?;
        if !Self::session(conn).subscriptions.lock().expect("not poisoned").contains(channel) {
            return Err(HubError::NotSubscribed(channel.to_owned()).into());
        }
        let members = self.hub.presence(channel);
        let mut ack = Ack::new(id);
        ack.channel = Some(channel);
        ack.members = Some(
            members.iter().map(|m| MemberOut { connection_id: &m.connection_id, info: m.info.as_deref() }).collect(),
        );
        Ok(Some(ack.to_json()))
    }

    fn history(&self, id: u64, request: &Request<'_>) -> Result<Option<String>, Failure> {
        let channel = Self::channel(request)?;
        let page = self.hub.history(channel, request.since, request.limit);
        let mut ack = Ack::new(id);
        ack.channel = Some(channel);
        ack.offset = Some(page.offset);
        ack.epoch = Some(&page.epoch);
        ack.truncated = page.truncated.then_some(true);
        ack.publications = Some(publications_out(&page.publications));
        Ok(Some(ack.to_json()))
    }

    fn send(&self, conn: &Conn, id: u64, request: &Request<'_>) -> Result<Option<String>, Failure> {
        let to = request.to.as_deref().ok_or_else(|| bad_request("missing \"to\""))?;
        let data = self.data(request)?;
        self.rate_limit(conn)?;
        self.hub.send_raw(to, data, Some(conn.id()))?;
        Ok(Some(Ack::new(id).to_json()))
    }
}

/// The numeric `id` of a frame that is refused before it is read in full, if one can be read.
fn request_id(text: &str) -> Option<u64> {
    serde_json::from_str::<IdOnly>(text).ok()?.id
}

fn publications_out(publications: &[Publication]) -> Vec<PublicationOut<'_>> {
    publications.iter().map(|p| PublicationOut { offset: p.offset, data: &p.data, from: p.from.as_deref() }).collect()
}

impl Listener for TokenServer {
    async fn opened(&self, conn: &Conn) {
        let config = self.hub.config();
        conn.set_data(Session {
            hub: self.hub.id(),
            subscriptions: Mutex::new(HashSet::new()),
            bucket: Mutex::new(TokenBucket::full(config.publish_burst)),
            requests: Mutex::new(TokenBucket::full(config.request_burst)),
        });
        // The server has registered the connection already (so `send` finds it); the sweeper
        // starts with the first one.
        self.hub.start_sweeper();
        let welcome = serde_json::json!({
            "type": "welcome",
            "connectionId": conn.id(),
            "subProtocol": conn.protocol(),
            "server": concat!("tether/", env!("CARGO_PKG_VERSION")),
            "heartbeat": self.heartbeat.as_millis() as u64,
        });
        let _ = conn.send_text(welcome.to_string());
    }

    async fn message(&self, conn: &Conn, message: Message) {
        match message {
            Message::Text(text) => {
                if self.request_allowed(conn, Some(&text)) {
                    self.handle(conn, &text);
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
        let channels = conn
            .data::<Session>()
            .map(|session| std::mem::take(&mut *session.subscriptions.lock().expect("not poisoned")))
            .unwrap_or_default();
        self.hub.disconnect(conn, channels);
    }
}
