//! What the token protocol keeps per connection, in the connection's user data
//! ([`tether_tokio::Conn::set_data`]): its subscriptions and its two rate buckets.
//!
//! A leaf both sides use: `token.rs` creates and reads it, and `hub.rs` takes its presence as the
//! sign that a connection of the server's [`tether_tokio::Registry`] speaks the token protocol
//! (a direct message must not reach an `/echo` client, say).

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::time::Instant;

/// Per-connection protocol state, kept in the connection's user data.
pub(crate) struct Session {
    pub(crate) subscriptions: Mutex<HashSet<String>>,
    /// Publishes and sends ([`crate::HubConfig::publish_rate`]).
    pub(crate) bucket: Mutex<TokenBucket>,
    /// Every incoming frame, whatever it holds ([`crate::HubConfig::request_rate`]): joins and
    /// leaves fan out to every member, history answers can be large, and errors cost a reply, so
    /// no request is free.
    pub(crate) requests: Mutex<TokenBucket>,
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
