//! [`Hub`]: the channels and the connections of the token protocol, joining and leaving them,
//! and presence (publishing is `publish.rs`, reading history `history.rs`, direct messages
//! `direct.rs`). A subscriber that cannot keep up is closed by the server's slow-consumer policy,
//! never waited for.
//!
//! The rule that keeps the sweep cheap: a channel with no subscribers and no history is forgotten
//! by whoever leaves it in that state (the last `leave`, a publish without history, the byte
//! budget, a read that pruned it), except when its history expires, which is the sweep's job
//! (`sweep.rs`).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::value::RawValue;
use tether_tokio::{Conn, Registry};

use crate::channel::{reply_budget, Channel, Freed, Member, Recovery};
use crate::config::HubConfig;
use crate::error::HubError;
use crate::expiry::ExpiryIndex;
use crate::ledger::Ledger;
use crate::session::HubId;

/// Channels, and the server's connections they reach. Cheap to clone; every clone is the same hub.
///
/// The hub keeps no list of connections of its own: a direct message finds its recipient in the
/// server's [`Registry`] (give it [`tether_tokio::Server::registry`]), so each connection is held
/// once, by the server, whatever runs on it.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

/// The hub itself, behind every clone of [`Hub`]; `sweep.rs` reaches it weakly from its task.
pub(crate) struct HubInner {
    pub(crate) config: HubConfig,
    pub(crate) channels: Mutex<HashMap<String, Arc<Mutex<Channel>>>>,
    /// The server's open connections: where [`Hub::send_to`] and `send` find a recipient.
    pub(crate) connections: Registry,
    /// What this hub's connections carry in their [`Session`].
    id: HubId,
    /// History entries over all channels, oldest first, for the byte budget.
    pub(crate) ledger: Ledger,
    /// Bytes of history held ([`channel::entry_cost`] summed) and entries held, over all channels.
    pub(crate) history_bytes: AtomicUsize,
    pub(crate) history_entries: AtomicUsize,
    /// Whether a sweeper task is running for this hub.
    pub(crate) sweeping: AtomicBool,
    /// The connections that expire, by expiry.
    pub(crate) expiries: ExpiryIndex,
    /// Publishes since the hub started (server and client).
    pub(crate) publications: AtomicU64,
    /// Told how long each publish took to reach its subscribers ([`Hub::on_fanout`]).
    pub(crate) fanout_observer: OnceLock<FanoutObserver>,
    /// When the hub started (the node's uptime).
    pub(crate) started: std::time::Instant,
    /// The memory engine's node name ([`Hub::name_node`]).
    pub(crate) node_name: OnceLock<String>,
    /// Where offsets, history and presence live: here, or in Redis.
    pub(crate) engine: Engine,
}

/// Where a hub's channels live.
pub(crate) enum Engine {
    /// In this process: `channel.rs` holds offsets and history.
    Memory,
    /// In Redis, shared with the other nodes (`redis/`).
    #[cfg(feature = "redis")]
    Redis(Arc<crate::redis::engine::RedisEngine>),
}

/// What [`Hub::on_fanout`] calls.
type FanoutObserver = Box<dyn Fn(Duration) + Send + Sync>;

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("channels", &self.inner.channels.lock().expect("not poisoned").len())
            .field("connections", &self.inner.connections.len())
            .field("history_bytes", &self.history_bytes())
            .finish()
    }
}

impl HubInner {
    /// Takes history that a channel dropped off the hub's counters.
    pub(crate) fn release(&self, freed: Freed) {
        if freed.entries > 0 {
            self.history_entries.fetch_sub(freed.entries, Ordering::Relaxed);
            self.history_bytes.fetch_sub(freed.bytes, Ordering::Relaxed);
        }
    }
}

impl Hub {
    /// A hub with these settings, its channels in this process.
    pub fn new(config: HubConfig, connections: Registry) -> Self {
        Self::with_engine(config, connections, Engine::Memory)
    }

    /// The Redis engine, if the hub has one.
    #[cfg(feature = "redis")]
    pub(crate) fn redis(&self) -> Option<&Arc<crate::redis::engine::RedisEngine>> {
        match &self.inner.engine {
            Engine::Redis(engine) => Some(engine),
            Engine::Memory => None,
        }
    }

    pub(crate) fn with_engine(config: HubConfig, connections: Registry, engine: Engine) -> Self {
        Self {
            inner: Arc::new(HubInner {
                config,
                channels: Mutex::default(),
                connections,
                id: HubId::next(),
                ledger: Ledger::default(),
                history_bytes: AtomicUsize::new(0),
                history_entries: AtomicUsize::new(0),
                sweeping: AtomicBool::new(false),
                expiries: ExpiryIndex::default(),
                publications: AtomicU64::new(0),
                fanout_observer: OnceLock::new(),
                started: std::time::Instant::now(),
                node_name: OnceLock::new(),
                engine,
            }),
        }
    }

    /// What this hub's connections carry in their session.
    pub(crate) fn id(&self) -> HubId {
        self.inner.id
    }

    /// The settings.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Calls `observer` after every publish that reached at least one subscriber, with the time
    /// from the publish's start to its last subscriber's message queued (a metrics histogram of
    /// fan-out latency, say). Set once: a later call returns false and changes nothing. Without
    /// one, a publish does not even read the clock.
    pub fn on_fanout(&self, observer: impl Fn(Duration) + Send + Sync + 'static) -> bool {
        self.inner.fanout_observer.set(Box::new(observer)).is_ok()
    }

    /// Channels the hub holds now (with subscribers or history).
    pub fn channel_count(&self) -> usize {
        self.inner.channels.lock().expect("not poisoned").len()
    }

    /// Bytes of history the hub holds now, as counted against [`HubConfig::max_history_bytes`]
    /// (each entry's data and publisher id plus 256 bytes of bookkeeping).
    pub fn history_bytes(&self) -> usize {
        self.inner.history_bytes.load(Ordering::Relaxed)
    }

    /// The channel, created if new: `Err(TooManyChannels)` if that would be one over the cap.
    fn channel(&self, name: &str) -> Result<Arc<Mutex<Channel>>, HubError> {
        self.start_sweeper();
        let mut channels = self.inner.channels.lock().expect("not poisoned");
        if let Some(channel) = channels.get(name) {
            return Ok(Arc::clone(channel));
        }
        if channels.len() >= self.inner.config.max_channels {
            return Err(HubError::TooManyChannels(self.inner.config.max_channels));
        }
        let channel = Arc::new(Mutex::new(Channel::new(name, &self.inner.config)));
        channels.insert(name.to_owned(), Arc::clone(&channel));
        Ok(channel)
    }

    pub(crate) fn existing_channel(&self, name: &str) -> Option<Arc<Mutex<Channel>>> {
        self.inner.channels.lock().expect("not poisoned").get(name).cloned()
    }

    /// Runs `f` on the live channel `name` (created if new). A handle fetched just as the sweeper
    /// forgot the channel is dead: fetch again, so nothing is published into a forgotten channel.
    pub(crate) fn with_channel<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Arc<Mutex<Channel>>, &mut Channel) -> T,
    ) -> Result<T, HubError> {
        loop {
            let handle = self.channel(name)?;
            let mut channel = handle.lock().expect("not poisoned");
            if !channel.forgotten {
                return Ok(f(&handle, &mut channel));
            }
        }
    }

    /// Drops a channel that has no subscribers and nothing left in its history.
    pub(crate) fn forget_if_unused(&self, name: &str) {
        let mut channels = self.inner.channels.lock().expect("not poisoned");
        let unused = channels.get(name).is_some_and(|channel| {
            let mut channel = channel.lock().expect("not poisoned");
            let freed = channel.prune(tokio::time::Instant::now());
            self.inner.release(freed);
            channel.forgotten = channel.is_unused();
            channel.forgotten
        });
        if unused {
            channels.remove(name);
        }
    }

    /// Removes a connection from every channel it joined (others get `leave`). The server takes it
    /// out of the registry once its task ends.
    pub(crate) fn disconnect(&self, conn: &Conn, channels: impl IntoIterator<Item = String>) {
        for channel in channels {
            let _ = self.leave(conn, &channel);
        }
    }

    /// The connections subscribed to a channel, with their presence info (on every node, with
    /// the Redis engine).
    pub async fn presence(&self, channel: &str) -> Result<Vec<Member>, HubError> {
        #[cfg(feature = "redis")]
        if let Some(engine) = self.redis() {
            return self.redis_presence(engine, channel).await;
        }
        Ok(self.existing_channel(channel).map(|c| c.lock().expect("not poisoned").members()).unwrap_or_default())
    }

    /// Subscribes and answers atomically: the ack (with recovered publications) is queued on the
    /// connection under the channel's lock, so every later message follows it, none is lost.
    /// `recovery` is `(since, epoch)`: recovered only if the epoch is the channel's and every
    /// publication after `since` is still held and fits in the reply.
    pub(crate) async fn subscribe(
        &self,
        conn: &Conn,
        channel_name: &str,
        info: Option<&RawValue>,
        recovery: Option<(u64, &str)>,
        ack: impl FnOnce(u64, &str, Option<Recovery>) -> String,
    ) -> Result<(), HubError> {
        #[cfg(feature = "redis")]
        if let Some(engine) = self.redis() {
            return self.redis_subscribe(engine, conn, channel_name, info, recovery, ack).await;
        }
        let config = &self.inner.config;
        self.with_channel(channel_name, |_, channel| {
            let freed = channel.prune(tokio::time::Instant::now());
            self.inner.release(freed);
            let recovered = recovery.map(|(since, epoch)| {
                // `since: 0` ("nothing seen yet") is the same point in every life of a channel,
                // so any epoch will do (a client that read the history of a channel that did not
                // exist yet holds a throwaway epoch); any other offset only in its own epoch.
                let start = channel.start_after(since).filter(|_| since == 0 || epoch == channel.epoch());
                match start {
                    Some(start) => {
                        let (publications, truncated) =
                            channel.select(start..channel.history_len(), reply_budget(config), true);
                        Recovery { recovered: !truncated, truncated, publications }
                    }
                    None => Recovery { recovered: false, truncated: false, publications: Vec::new() },
                }
            });
            let text = ack(channel.last_offset(), channel.epoch(), recovered);
            let _ = conn.send_text(text);
            channel.join(conn, info.map(ToOwned::to_owned));
        })
    }

    /// Leaves a channel (others get `leave`). `Err(NotSubscribed)` if the connection was not in it.
    pub(crate) fn leave(&self, conn: &Conn, channel_name: &str) -> Result<(), HubError> {
        #[cfg(feature = "redis")]
        if let Some(engine) = self.redis() {
            return match self.redis_leave(engine, conn, channel_name, true) {
                true => Ok(()),
                false => Err(HubError::NotSubscribed(channel_name.to_owned())),
            };
        }
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
