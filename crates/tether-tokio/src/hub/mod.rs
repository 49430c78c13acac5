//! Channels: pub/sub with presence, history and recovery, and direct messages between
//! connections, behind the JSON token protocol of `docs/protocol.md`.
//!
//! - [`Hub`] owns channels and knows every token-protocol connection by id. Rust code uses it
//!   directly to publish, send to a connection, or read presence and history.
//! - [`TokenServer`] is the [`crate::Listener`] that speaks the wire protocol on top of a hub.
//! - `wire` holds the request and answer shapes.
//!
//! A publish takes the channel's lock, assigns the next offset, encodes the `message` frame once
//! and hands the same bytes to every subscriber's queue ([`crate::PreparedMessage`]), then appends
//! to the history. Holding the lock while handing out the frame is what makes offsets gap-free
//! and identical in order for every subscriber, even with concurrent publishers; handing out is
//! only a reference-count increment and a queue push per subscriber, so the lock is short. A
//! subscriber that cannot keep up is closed by the server's slow-consumer policy, never waited for.

mod channel;
mod token;
mod wire;

pub use channel::{Member, Publication};
pub use token::TokenServer;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;

use crate::listener::Conn;
use channel::Channel;

/// Hub limits and history settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Messages kept per channel for `history` and recovery. Default 100.
    pub history_size: usize,
    /// How long a message stays in the history. Default 300 s.
    pub history_ttl: Duration,
    /// Largest `data` of a publish or send, in bytes of JSON. Default 64 KiB; larger is `too_large`.
    pub max_data_bytes: usize,
    /// Largest presence `info`, in bytes of JSON. Default 1 KiB; larger is `too_large`.
    pub max_info_bytes: usize,
    /// Publishes and sends per second per connection (token bucket refill). Default 50.
    pub publish_rate: f64,
    /// Burst size of that token bucket. Default 100; beyond it requests get `rate_limited`.
    pub publish_burst: f64,
    /// Channels one connection may be subscribed to. Default 100; beyond it `limit_exceeded`.
    pub max_subscriptions: usize,
    /// Channels the hub holds at most (with subscribers or history). Default 100,000; a request
    /// that would create one more gets `limit_exceeded`.
    pub max_channels: usize,
    /// Bytes of history kept over all channels. Default 256 MiB; past it the oldest entries (of any
    /// channel) are dropped first.
    pub max_history_bytes: usize,
    /// Token-protocol requests of any type per second per connection (token bucket refill).
    /// Default 100; publishes and sends also count against `publish_rate`.
    pub request_rate: f64,
    /// Burst size of the request bucket. Default 200; beyond it requests get `rate_limited`.
    pub request_burst: f64,
    /// Largest `history` answer (or recovery in a subscribe ack), in bytes of publication data.
    /// Default 1 MiB; the newest publications that fit are returned and the ack says
    /// `"truncated":true`.
    pub max_history_reply_bytes: usize,
    /// How often the hub sweeps expired history and forgets unused channels. Default 1 s.
    pub sweep_interval: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            history_size: 100,
            history_ttl: Duration::from_secs(300),
            max_data_bytes: 64 * 1024,
            max_info_bytes: 1024,
            publish_rate: 50.0,
            publish_burst: 100.0,
            max_subscriptions: 100,
            max_channels: 100_000,
            max_history_bytes: 256 << 20,
            request_rate: 100.0,
            request_burst: 200.0,
            max_history_reply_bytes: 1 << 20,
            sweep_interval: Duration::from_secs(1),
        }
    }
}

/// What went wrong with a hub operation; `code()` is the protocol's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// A malformed channel name or argument.
    BadRequest(String),
    /// Not subscribed to the channel.
    NotSubscribed(String),
    /// No connection with that id.
    NotFound(String),
    /// The channel is reserved for the server.
    Forbidden(String),
    /// `data` or `info` over its size limit.
    TooLarge(usize),
    /// Over the subscription limit.
    LimitExceeded(usize),
}

impl HubError {
    /// The error code of the wire protocol.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::NotSubscribed(_) => "not_subscribed",
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::TooLarge(_) => "too_large",
            Self::LimitExceeded(_) => "limit_exceeded",
        }
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRequest(why) => f.write_str(why),
            Self::NotSubscribed(channel) => write!(f, "not subscribed to {channel}"),
            Self::NotFound(id) => write!(f, "no connection {id}"),
            Self::Forbidden(channel) => write!(f, "channel {channel} is reserved for the server"),
            Self::TooLarge(limit) => write!(f, "larger than the limit of {limit} bytes"),
            Self::LimitExceeded(limit) => write!(f, "at most {limit} subscriptions per connection"),
        }
    }
}

impl std::error::Error for HubError {}

/// Channels and connections. Cheap to clone; every clone is the same hub.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Default)]
struct HubInner {
    config: HubConfig,
    channels: Mutex<HashMap<String, Arc<Mutex<Channel>>>>,
    connections: Mutex<HashMap<String, Conn>>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("channels", &self.inner.channels.lock().expect("not poisoned").len())
            .field("connections", &self.inner.connections.lock().expect("not poisoned").len())
            .finish()
    }
}

/// Channel names: 1-128 characters of `A-Z a-z 0-9 _ - . : / @ $`.
pub fn validate_channel(name: &str) -> Result<(), HubError> {
    let valid =
        (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:/@$".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(HubError::BadRequest(format!(
            "invalid channel name {name:?}: 1-128 characters of A-Z a-z 0-9 _ - . : / @ $"
        )))
    }
}

impl Hub {
    /// A hub with these settings.
    pub fn new(config: HubConfig) -> Self {
        Self { inner: Arc::new(HubInner { config, ..HubInner::default() }) }
    }

    /// The settings.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    fn channel(&self, name: &str) -> Arc<Mutex<Channel>> {
        let mut channels = self.inner.channels.lock().expect("not poisoned");
        Arc::clone(channels.entry(name.to_owned()).or_insert_with(|| Arc::new(Mutex::new(Channel::new(name)))))
    }

    fn existing_channel(&self, name: &str) -> Option<Arc<Mutex<Channel>>> {
        self.inner.channels.lock().expect("not poisoned").get(name).cloned()
    }

    /// Drops a channel that has no subscribers and nothing left in its history.
    fn forget_if_unused(&self, name: &str) {
        let mut channels = self.inner.channels.lock().expect("not poisoned");
        let unused = channels.get(name).is_some_and(|channel| {
            let mut channel = channel.lock().expect("not poisoned");
            channel.prune(&self.inner.config);
            channel.is_unused()
        });
        if unused {
            channels.remove(name);
        }
    }

    /// Makes a connection reachable by id (for `send`).
    pub(crate) fn register(&self, conn: &Conn) {
        self.inner.connections.lock().expect("not poisoned").insert(conn.id().to_owned(), conn.clone());
    }

    /// Removes a connection from the hub and from every channel it joined (others get `leave`).
    pub(crate) fn disconnect(&self, conn: &Conn, channels: impl IntoIterator<Item = String>) {
        self.inner.connections.lock().expect("not poisoned").remove(conn.id());
        for channel in channels {
            let _ = self.leave(conn, &channel);
        }
    }

    /// Publishes `data` (JSON) to a channel from the server; returns the offset.
    pub fn publish(&self, channel: &str, data: &impl serde::Serialize) -> Result<u64, HubError> {
        validate_channel(channel)?;
        let json = serde_json::value::to_raw_value(data).map_err(|e| HubError::BadRequest(e.to_string()))?;
        Ok(self.publish_raw(channel, &json, None))
    }

    /// Publishes raw JSON; `from` is the publishing connection, if any.
    pub(crate) fn publish_raw(&self, channel: &str, data: &RawValue, from: Option<&str>) -> u64 {
        let handle = self.channel(channel);
        let mut channel = handle.lock().expect("not poisoned");
        channel.publish(&self.inner.config, data, from)
    }

    /// Sends `data` (JSON) to one connection as a `direct` message (`from` is null: the server).
    pub fn send_to(&self, connection_id: &str, data: &impl serde::Serialize) -> Result<(), HubError> {
        let json = serde_json::value::to_raw_value(data).map_err(|e| HubError::BadRequest(e.to_string()))?;
        self.send_raw(connection_id, &json, None)
    }

    pub(crate) fn send_raw(&self, to: &str, data: &RawValue, from: Option<&str>) -> Result<(), HubError> {
        let conn = self.inner.connections.lock().expect("not poisoned").get(to).cloned();
        let conn = conn.ok_or_else(|| HubError::NotFound(to.to_owned()))?;
        let text = serde_json::to_string(&wire::Direct { kind: "direct", from, data }).expect("serializable");
        conn.send_text(text).map_err(|_| HubError::NotFound(to.to_owned()))
    }

    /// The connections subscribed to a channel, with their presence info.
    pub fn presence(&self, channel: &str) -> Vec<Member> {
        self.existing_channel(channel).map(|c| c.lock().expect("not poisoned").members()).unwrap_or_default()
    }

    /// The channel's history: messages after `since` (all when `None`), at most the newest `limit`.
    /// Returns the channel's last offset, its epoch and the publications, oldest first.
    pub fn history(
        &self,
        channel_name: &str,
        since: Option<u64>,
        limit: Option<usize>,
    ) -> (u64, String, Vec<Publication>) {
        let handle = self.channel(channel_name);
        let mut channel = handle.lock().expect("not poisoned");
        channel.prune(&self.inner.config);
        let mut publications = channel.publications_after(since.unwrap_or(0)).unwrap_or_else(|| channel.all());
        if let Some(limit) = limit {
            let skip = publications.len().saturating_sub(limit);
            publications.drain(..skip);
        }
        let answer = (channel.last_offset(), channel.epoch().to_owned(), publications);
        drop(channel);
        // Asking for the history of a channel nobody uses must not leave an empty channel behind.
        self.forget_if_unused(channel_name);
        answer
    }

    /// Subscribes and answers atomically: the ack (with recovered publications) is queued on the
    /// connection under the channel's lock, so every later message follows it, none is lost.
    pub(crate) fn subscribe(
        &self,
        conn: &Conn,
        channel_name: &str,
        info: Option<&RawValue>,
        recovery: Option<(u64, Option<&str>)>,
        ack: impl FnOnce(u64, &str, Option<(bool, Vec<Publication>)>) -> String,
    ) {
        let handle = self.channel(channel_name);
        let mut channel = handle.lock().expect("not poisoned");
        channel.prune(&self.inner.config);
        let recovered = recovery.map(|(since, epoch)| {
            let same_epoch = epoch.is_none_or(|e| e == channel.epoch());
            match channel.publications_after(since).filter(|_| same_epoch) {
                Some(publications) => (true, publications),
                None => (false, Vec::new()),
            }
        });
        let text = ack(channel.last_offset(), channel.epoch(), recovered);
        let _ = conn.send_text(text);
        channel.join(conn, info.map(ToOwned::to_owned));
    }

    /// Leaves a channel (others get `leave`). `Err(NotSubscribed)` if the connection was not in it.
    pub(crate) fn leave(&self, conn: &Conn, channel_name: &str) -> Result<(), HubError> {
        let Some(handle) = self.existing_channel(channel_name) else {
            return Err(HubError::NotSubscribed(channel_name.to_owned()));
        };
        let left = handle.lock().expect("not poisoned").leave(conn.id());
        self.forget_if_unused(channel_name);
        if left {
            Ok(())
        } else {
            Err(HubError::NotSubscribed(channel_name.to_owned()))
        }
    }
}
