//! What the token protocol keeps per connection, in the connection's user data
//! ([`tether_tokio::Conn::set_data`]): its subscriptions, its two rate buckets and when its token
//! expires.
//!
//! A leaf both sides use: `token.rs` creates and reads it, and `hub.rs` takes it as the sign that
//! a connection of the server's [`tether_tokio::Registry`] speaks the token protocol to this very
//! hub (a direct message must not reach an `/echo` client, nor one of another hub on the server).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use tokio::time::Instant;

/// Per-connection protocol state, kept in the connection's user data.
pub(crate) struct Session {
    /// The [`HubId`] of the hub whose token route opened the connection.
    pub(crate) hub: HubId,
    pub(crate) subscriptions: Mutex<HashSet<String>>,
    /// Set by the `closed` callback while it holds `subscriptions`, as it empties them: a
    /// server-side subscribe from another task checks it under the same lock, so none is added
    /// after the connection left its channels (it would hold the connection forever).
    pub(crate) ended: AtomicBool,
    /// Publishes and sends ([`crate::HubConfig::publish_rate`]).
    pub(crate) bucket: Mutex<TokenBucket>,
    /// Every incoming frame, whatever it holds ([`crate::HubConfig::request_rate`]): joins and
    /// leaves fan out to every member, history answers can be large, and errors cost a reply, so
    /// no request is free.
    pub(crate) requests: Mutex<TokenBucket>,
    /// When the connection's token expires (its identity's, then each `refresh`'s); `None` =
    /// never. The hub's expiry index (`expiry.rs`) holds the same instant.
    pub(crate) expires_at: Mutex<Option<SystemTime>>,
}

impl Session {
    pub(crate) fn new(hub: HubId, config: &crate::HubConfig, expires_at: Option<SystemTime>) -> Self {
        Self {
            hub,
            subscriptions: Mutex::new(HashSet::new()),
            ended: AtomicBool::new(false),
            bucket: Mutex::new(TokenBucket::full(config.publish_burst)),
            requests: Mutex::new(TokenBucket::full(config.request_burst)),
            expires_at: Mutex::new(expires_at),
        }
    }

    /// Records a subscription to `channel` before the connection joins it, within `limit`
    /// subscriptions (`Err(LimitExceeded)` past it). Under the same lock as [`Session::end`], so a
    /// subscription is never added to a session that already left its channels.
    pub(crate) fn reserve(&self, channel: &str, limit: usize) -> Result<Reserved, crate::HubError> {
        let mut subscriptions = self.subscriptions.lock().expect("not poisoned");
        if self.has_ended() {
            return Ok(Reserved::Ended);
        }
        if subscriptions.contains(channel) {
            return Ok(Reserved::Already);
        }
        if subscriptions.len() >= limit {
            return Err(crate::HubError::LimitExceeded(limit));
        }
        subscriptions.insert(channel.to_owned());
        Ok(Reserved::New)
    }

    /// Marks the session ended and takes its subscriptions, to leave them (`closed`).
    pub(crate) fn end(&self) -> HashSet<String> {
        let mut subscriptions = self.subscriptions.lock().expect("not poisoned");
        self.ended.store(true, Ordering::Relaxed);
        std::mem::take(&mut *subscriptions)
    }

    /// Whether [`Session::end`] ran; read with `subscriptions` locked.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    pub(crate) fn is_subscribed(&self, channel: &str) -> bool {
        self.subscriptions.lock().expect("not poisoned").contains(channel)
    }
}

/// What [`Session::reserve`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserved {
    /// Recorded now: undo it if the join fails.
    New,
    /// Subscribed already.
    Already,
    /// The connection has ended: nothing was recorded.
    Ended,
}

/// Tells hubs apart for as long as the process runs (a counter, never reused: a pointer could be
/// after a hub is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HubId(u64);

impl HubId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A rate limit: `rate` tokens per second, at most `burst` saved up.
pub(crate) struct TokenBucket {
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    pub(crate) fn full(burst: f64) -> Self {
        Self { tokens: burst, refilled: Instant::now() }
    }

    pub(crate) fn take(&mut self, rate: f64, burst: f64) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.saturating_duration_since(self.refilled).as_secs_f64() * rate).min(burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
