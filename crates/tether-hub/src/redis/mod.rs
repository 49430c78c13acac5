//! The Redis engine: several Tether nodes, one set of channels (`Hub::with_redis`).
//!
//! Redis holds what must be the same on every node: each channel's offset counter and epoch, its
//! history (a stream), its presence, and the list of live nodes. A publish is one script
//! (`scripts.rs`) that numbers the message, appends it to the history and publishes the frame on
//! the channel's pub/sub channel, so every node sees the same offsets in the same order; each
//! node then hands that one frame to its own subscribers, as the memory engine does.
//!
//! - `engine.rs`: [`RedisOptions`], the engine's state, its command connection and counters.
//! - `pubsub.rs`: the one pub/sub connection per node, reconnecting with backoff and subscribing
//!   again after an outage; `subscriptions.rs`: which channels it is subscribed to (while the
//!   node has subscribers there).
//! - `channels.rs`: publish, subscribe (a history read joined to the live stream without a
//!   message missed or doubled), leave and history, on the hub; `presence.rs`: presence entries
//!   with an expiry, and join and leave events.
//! - `publisher.rs`: clients' publishes pipelined in order (a connection's next request is read
//!   while its publish's script runs).
//! - `nodes.rs`: heartbeats, the list of live nodes, and commands to every node (a direct
//!   message to a connection elsewhere, a disconnect or subscribe of a user's connections).
//! - `envelope.rs`: what travels between nodes; `scripts.rs`: the Lua scripts.
//!
//! What Redis cannot do while it is down is answered `unavailable` (a publish, a history read, a
//! subscribe, presence, a message to a connection on another node); everything a node can do
//! alone (echo, a message to one of its own connections) keeps working.

mod channels;
pub(crate) mod engine;
mod envelope;
mod nodes;
mod presence;
mod publisher;
mod pubsub;
mod scripts;
mod subscriptions;
mod writes;

pub(crate) use engine::RedisEngine;
pub use engine::{redact, RedisOptions};

/// Starts the engine's tasks: the pub/sub reader, the presence writer, and the heartbeat that
/// also keeps presence alive.
pub(crate) fn start(engine: std::sync::Arc<RedisEngine>, hub: std::sync::Weak<crate::hub::HubInner>) {
    tokio::spawn(pubsub::run(std::sync::Arc::clone(&engine), hub.clone()));
    if let Some(writes) = engine.presence_writes.lock().expect("not poisoned").take() {
        tokio::spawn(presence::run(std::sync::Arc::clone(&engine), writes));
    }
    if let Some(jobs) = engine.publish_jobs.lock().expect("not poisoned").take() {
        tokio::spawn(publisher::run(std::sync::Arc::clone(&engine), hub.clone(), jobs));
    }
    tokio::spawn(nodes::run(engine, hub));
}
