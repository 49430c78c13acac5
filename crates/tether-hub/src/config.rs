//! [`HubConfig`]: every limit of the hub, with its default and what a client gets when it hits it.
//!
//! Apart from the [`crate::Hub`] so the settings (read by the channels, the sweeper and the token
//! protocol alike) can be read without the hub's internals.

use std::time::Duration;

use crate::policy::{Namespaces, SendRule};

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
    /// channel) are dropped first. An entry counts its `data` and publisher id plus 256 bytes of
    /// bookkeeping, so many tiny publications are not free.
    pub max_history_bytes: usize,
    /// Token-protocol requests per second per connection (token bucket refill): every incoming
    /// frame counts, whatever its type, malformed and binary ones included. Default 100;
    /// publishes and sends also count against `publish_rate`.
    pub request_rate: f64,
    /// Burst size of the request bucket. Default 200; beyond it requests get `rate_limited`.
    pub request_burst: f64,
    /// Largest `history` answer (or recovery in a subscribe ack), in bytes of JSON. Default 1 MiB;
    /// the publications that fit are returned (at least one) and the ack says `"truncated":true`:
    /// with `since` the oldest after it (so a client pages forward from the last offset it got),
    /// without `since` the newest. A recovery cut short says `"recovered":false`.
    pub max_history_reply_bytes: usize,
    /// How often the hub sweeps expired history, forgets unused channels and closes connections
    /// whose token expired (4001). Default 1 s. The
    /// sweeper starts with the first use of the hub inside a tokio runtime and ends with the hub.
    pub sweep_interval: Duration,
    /// Who may subscribe and publish where, and per-namespace history settings. Default: one open
    /// policy for every channel (anyone subscribes, publishes, sees presence).
    pub namespaces: Namespaces,
    /// Who may send direct messages. Default: anyone (today's behaviour).
    pub direct_messages: SendRule,
    /// How long a [`crate::ChannelHooks`] call may take; then the request is answered
    /// `unavailable` and the connection goes on (a hook that hangs must not freeze its
    /// connection: while it runs, the connection handles nothing else). Default 10 s.
    pub hook_timeout: Duration,
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
            namespaces: Namespaces::default(),
            direct_messages: SendRule::Any,
            hook_timeout: Duration::from_secs(10),
        }
    }
}
