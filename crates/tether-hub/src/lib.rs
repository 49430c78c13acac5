//! # tether-hub: channels and direct messages over Tether's listener API
//!
//! Pub/sub with presence, history and recovery, and direct messages between connections, behind
//! the JSON token protocol of `docs/protocol.md`. An application protocol, not a WebSocket one: it
//! only uses tether-tokio's public [`Listener`](tether_tokio::Listener) API, which is why it is a
//! crate of its own (and why tether-tokio needs no JSON, and no `unsafe`).
//!
//! ## Design overview
//!
//! ```text
//!   client            tether-tokio                            tether-hub
//!  ┌────────┐        ┌────────────────────┐                  ┌────────────────────────────────┐
//!  │browser │ ◄────► │Server: handshake,  │ callbacks ──►    │ TokenServer (token.rs):        │
//!  │or app  │ frames │route, Origin       │ opened,          │ parse (wire.rs), rate          │
//!  └────────┘        │                    │ message,         │ limit, ack or error            │
//!                    │driver: one task    │ closed           │       │ calls                  │
//!                    │per connection,     │                  │       ▼                        │
//!                    │Conn mailbox,       │ ◄── Conn sends   │ Hub (hub.rs): the server's     │
//!                    │slow consumer       │ (text, or one    │ Registry (direct sends),       │
//!                    │closed with 1008    │ shared prepared  │ channels (channel.rs):         │
//!                    │                    │ frame)           │ presence, offsets,             │
//!                    │                    │                  │ history; ledger.rs,            │
//!                    │                    │                  │ sweep.rs, trim.rs              │
//!                    └────────────────────┘                  └────────────────▲───────────────┘
//!                                                                             │ publish, send_to,
//!                                                                 Rust code ──┘ presence, history
//! ```
//!
//! What crosses each line:
//! - client ⇄ tether-tokio: WebSocket frames carrying the token protocol's JSON text (sub-protocol
//!   `tether.json` or `json`); pings, pongs, Close and every RFC 6455 rule stay in tether-tokio.
//! - tether-tokio → hub: [`Listener`](tether_tokio::Listener) callbacks (`opened`, `message`,
//!   `closed`) with a [`Conn`](tether_tokio::Conn) handle; the hub keeps its per-connection state
//!   (subscriptions, rate buckets: `session.rs`) in the handle's user data, and finds the recipient
//!   of a direct message in the server's [`Registry`](tether_tokio::Registry), the one list of
//!   connections there is.
//! - hub → tether-tokio: sends through `Conn` handles, which never wait: acks, errors and direct
//!   messages as text, publications and presence events as one
//!   [`PreparedMessage`](tether_tokio::PreparedMessage) shared by every subscriber. A subscriber
//!   that cannot keep up is closed by tether-tokio's slow-consumer policy, never waited for.
//! - Rust code → hub: [`Hub::publish`], [`Hub::send_to`], [`Hub::presence`], [`Hub::history`],
//!   and the server's control of connections and channels (`control.rs`: server-side
//!   subscriptions, connections by user, channel lists, counts), which `tether serve`'s HTTP API
//!   calls.
//! - hub → application: [`ChannelHooks`] (`on_subscribe`, `on_publish`: refuse, or replace the
//!   data) and a [`TokenVerifier`] for `refresh` and subscription tokens (`hooks.rs`); who may do
//!   what is the namespace policy ([`Namespaces`], `policy.rs`), checked before any hook.
//!
//! Identity comes from tether-tokio: a route's authorize hook gives the connection a user, info and
//! an expiry before the upgrade ([`tether_tokio::Identity`]). The hub shows them in the welcome and
//! in presence, closes the connection with 4001 when the expiry passes unless a `refresh` moved it
//! (`expiry.rs`), and subscribes it to the [`InitialChannels`] its identity names.
//!
//! Memory is bounded by configuration, not by the clients' good will: at most
//! [`HubConfig::max_channels`] channels, at most [`HubConfig::max_history_bytes`] of history over
//! all of them (the oldest entries anywhere go first, see `ledger.rs`), and a periodic sweep
//! (`sweep.rs`) that drops expired history and forgets channels nobody uses, so what an anonymous
//! client published is given back once its time to live is over.
//!
//! ## Modules
//! - `hub.rs`: [`Hub`], channels and the connections they reach, publishing; `history.rs`: reading
//!   a channel's history ([`HistoryPage`]); `session.rs`: per-connection state; `config.rs`:
//!   [`HubConfig`]; `error.rs`: [`HubError`].
//! - `token/`: [`TokenServer`], the [`Listener`](tether_tokio::Listener) that speaks the wire
//!   protocol on top of a hub (`mod.rs`: a connection's life and the dispatch; `requests.rs`: each
//!   request type); `wire.rs`: the request and answer shapes.
//! - `policy.rs`: namespaces and the permission checks; `hooks.rs`: what an application plugs in;
//!   `expiry.rs`: the expiry index; `control.rs`: what the server does to connections and
//!   channels.
//! - `channel.rs`: one channel ([`Member`], [`Publication`]); `ledger.rs`, `sweep.rs`, `trim.rs`:
//!   the memory bounds.
//! - `redis/` (cargo feature `redis`): the Redis engine, several nodes with one set of channels
//!   (`Hub::with_redis`, `RedisOptions`): offsets, epochs, history and presence in Redis, one
//!   pub/sub connection per node, commands to the other nodes; `channel/live.rs`: a channel's
//!   side of it (live delivery in order, joins that wait for their history read). `cluster.rs`:
//!   `Hub::with_redis`, [`Hub::engine_status`], [`Hub::nodes`]; `engine.rs`: their types;
//!   `direct.rs`: direct messages, to this node or any.
//!
//! ## Engines
//!
//! [`Hub::new`] keeps everything in this process (`hub.rs`, `channel.rs`). `Hub::with_redis`
//! keeps in Redis what every node must agree on: a publish is one Lua script that numbers the
//! message, appends it to the channel's stream and publishes the frame, so every node sees the
//! same offsets in the same order, and each node hands the one frame to its own subscribers as
//! the memory engine does. The calls that may reach Redis are `async` and can fail with
//! [`HubError::Unavailable`]; on the memory engine they never wait.
// `deny`, not `forbid`: `trim` alone allows it, to call glibc's `malloc_trim` after a sweep freed
// much history (see there why); the block is fenced with a SAFETY comment and tested.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod channel;
mod cluster;
mod config;
mod control;
mod direct;
mod engine;
mod error;
mod expiry;
mod history;
mod hooks;
mod hub;
mod ledger;
mod policy;
mod publish;
#[cfg(feature = "redis")]
mod redis;
mod session;
mod sweep;
#[cfg(test)]
mod tests;
mod token;
mod trim;
mod wire;

pub use channel::{validate_channel, Member, Publication};
pub use config::HubConfig;
pub use control::{Action, Affected, ChannelSummary, HubStats, Published, Target};
pub use engine::{EngineStatus, NodeInfo};
pub use error::HubError;
pub use expiry::{TOKEN_EXPIRED, TOKEN_EXPIRED_REASON};
pub use history::HistoryPage;
pub use hooks::{
    BoxFuture, ChannelHooks, ConnectionToken, InitialChannels, PublishDecision, PublishRequest, SubscribeRequest,
    SubscriptionToken, TokenVerifier,
};
pub use hub::Hub;
pub use policy::{NamespacePolicy, Namespaces, PublishRule, SendRule, SubscribeRule};
#[cfg(feature = "redis")]
pub use redis::{redact, RedisOptions};
pub use token::TokenServer;
