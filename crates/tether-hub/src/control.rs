//! What the server itself does to the hub's connections and channels, for the server HTTP API and
//! Rust code: find connections (by id, by user), publish with the epoch in the answer, subscribe
//! and unsubscribe a connection server-side, list channels, count what there is.
//!
//! None of it goes through the namespace policy: the policy governs clients, and whoever calls
//! these is the server. The limits still hold (a server-side subscription counts against the
//! connection's `max_subscriptions`, a publish against `max_channels` and `max_data_bytes`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use serde_json::value::RawValue;
use tether_tokio::{CloseCode, Conn};

use crate::channel::validate_channel;
use crate::error::HubError;
use crate::hub::Hub;
use crate::session::{Reserved, Session};
use crate::wire;

/// A publish's place in its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The message's offset.
    pub offset: u64,
    /// The channel's epoch the offset belongs to.
    pub epoch: String,
}

/// A channel, how many connections are subscribed to it, and where its history stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelSummary {
    /// Its name.
    pub name: String,
    /// Connections subscribed now.
    pub subscribers: usize,
    /// The offset of its latest message (0 before the first).
    pub last_offset: u64,
    /// The epoch its offsets belong to.
    pub epoch: String,
    /// Messages its history holds now.
    pub history_size: usize,
}

/// Counts over the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Connections whose token expires (each in the expiry index once).
    pub expiring: usize,
    /// Open connections that speak the token protocol to this hub.
    pub connections: usize,
    /// Distinct users among them (anonymous ones not counted).
    pub users: usize,
    /// Channels held (with subscribers or history).
    pub channels: usize,
    /// Subscriptions over all channels (a connection in two channels counts twice).
    pub subscriptions: usize,
    /// Publishes since the hub started, from the server and from clients.
    pub publications: u64,
    /// Messages held in the histories of all channels (expired ones included until the sweep,
    /// every second, drops them).
    pub history_entries: usize,
    /// Bytes those messages cost against `max_history_bytes`.
    pub history_bytes: usize,
}

/// Whom [`Hub::act`] acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every connection of this user, on every node.
    User(String),
    /// The connection with this id, wherever it is.
    Connection(String),
}

/// What [`Hub::act`] does to each connection it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Close it with this code (1000 or 3000..=4999) and reason.
    Disconnect {
        /// The close code.
        code: u16,
        /// The close reason (at most 123 bytes).
        reason: String,
    },
    /// Subscribe it server-side: it gets `subscribed`.
    Subscribe {
        /// The channel.
        channel: String,
    },
    /// Unsubscribe it server-side: it gets `unsubscribed`.
    Unsubscribe {
        /// The channel.
        channel: String,
    },
}

/// What [`Hub::act`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Affected {
    /// Connections acted on.
    pub connections: usize,
    /// A user's connections the action failed on, with why (closed ones, and for
    /// [`Action::Unsubscribe`] those not subscribed, are passed over, not listed).
    pub failed: Vec<(String, HubError)>,
    /// The target connection is on the node that answered.
    pub(crate) found: bool,
}

impl Hub {
    /// Acts on a connection or on every connection of a user, on every node. A connection that
    /// no node holds is `Err(NotFound)`; the action's own error on it is the answer's. With the
    /// Redis engine, the other nodes not being reachable is `Err(Unavailable)` (every action is
    /// idempotent: ask again).
    pub async fn act(&self, target: &Target, action: &Action) -> Result<Affected, HubError> {
        if let Action::Subscribe { channel } | Action::Unsubscribe { channel } = action {
            validate_channel(channel)?;
        }
        let mut done = self.act_locally(target, action).await;
        if let Target::Connection(id) = target {
            if done.found {
                return match done.failed.pop() {
                    Some((_, error)) => Err(error),
                    None => Ok(Affected { connections: 1, ..Affected::default() }),
                };
            }
            #[cfg(feature = "redis")]
            if let Some(engine) = self.redis() {
                let remote = self.redis_act(engine, target, action).await?;
                if remote.found {
                    return Ok(Affected { connections: 1, ..Affected::default() });
                }
            }
            return Err(HubError::NotFound(id.clone()));
        }
        #[cfg(feature = "redis")]
        if let Some(engine) = self.redis() {
            let remote = self.redis_act(engine, target, action).await?;
            done.connections += remote.connections;
            done.failed.extend(remote.failed);
        }
        Ok(done)
    }

    /// [`Hub::act`] on this node's connections only.
    pub(crate) async fn act_locally(&self, target: &Target, action: &Action) -> Affected {
        let (connections, one) = match target {
            Target::Connection(id) => (self.connection(id).into_iter().collect(), true),
            Target::User(user) => (self.connections_of(user), false),
        };
        let mut done = Affected { found: one && !connections.is_empty(), ..Affected::default() };
        for conn in connections {
            let result = match action {
                Action::Disconnect { code, reason } => {
                    conn.close(CloseCode::from(*code), reason).map_err(|_| HubError::NotFound(conn.id().to_owned()))
                }
                Action::Subscribe { channel } => self.subscribe_as_server(&conn, channel).await,
                Action::Unsubscribe { channel } => self.unsubscribe_as_server(&conn, channel).await,
            };
            match result {
                Ok(()) => done.connections += 1,
                // A user's connection that closed meanwhile, or was not subscribed: passed over.
                Err(HubError::NotFound(_)) if !one => {}
                Err(HubError::NotSubscribed(_)) if !one && matches!(action, Action::Unsubscribe { .. }) => {}
                Err(error) => done.failed.push((conn.id().to_owned(), error)),
            }
        }
        done
    }

    /// Whether `conn` speaks the token protocol to this very hub (not an `/echo` client, nor one
    /// of another hub on the same server).
    pub(crate) fn is_ours(&self, conn: &Conn) -> bool {
        conn.data::<Session>().is_some_and(|session| session.hub == self.id())
    }

    /// The open token-protocol connection of this hub with this id.
    pub fn connection(&self, id: &str) -> Option<Conn> {
        self.inner.connections.get(id).filter(|conn| self.is_ours(conn))
    }

    /// Every open connection of this hub (a snapshot).
    pub fn connections(&self) -> Vec<Conn> {
        let mut all = self.inner.connections.connections();
        all.retain(|conn| self.is_ours(conn));
        all
    }

    /// The open connections of `user` (one user may be connected several times, from several
    /// tabs or devices).
    pub fn connections_of(&self, user: &str) -> Vec<Conn> {
        let mut all = self.connections();
        all.retain(|conn| conn.user() == Some(user));
        all
    }

    /// Publishes raw JSON from the server; returns the offset and the epoch it belongs to.
    pub async fn publish_json(&self, channel: &str, data: &RawValue) -> Result<Published, HubError> {
        validate_channel(channel)?;
        let limit = self.config().max_data_bytes;
        if data.get().len() > limit {
            return Err(HubError::TooLarge(limit));
        }
        let (offset, epoch) = self.publish_inner(channel, data, None, true).await?;
        Ok(Published { offset, epoch: epoch.unwrap_or_default() })
    }

    /// Sends raw JSON to one connection, on any node, as a `direct` message from the server.
    pub async fn send_json(&self, connection_id: &str, data: &RawValue) -> Result<(), HubError> {
        let limit = self.config().max_data_bytes;
        if data.get().len() > limit {
            return Err(HubError::TooLarge(limit));
        }
        self.send_raw(connection_id, data, None).await
    }

    /// Subscribes a connection of this node server-side: it gets
    /// `{"type":"subscribed","channel":..,"offset":..,"epoch":..}` and then the channel's messages.
    /// `Err(NotFound)` when the connection is gone, `Err(LimitExceeded)` past its subscription limit.
    /// [`Hub::act`] does the same on any node.
    pub async fn subscribe_connection(&self, connection_id: &str, channel: &str) -> Result<(), HubError> {
        validate_channel(channel)?;
        let conn = self.connection(connection_id).ok_or_else(|| HubError::NotFound(connection_id.to_owned()))?;
        self.subscribe_as_server(&conn, channel).await
    }

    /// Unsubscribes a connection of this node server-side: it gets
    /// `{"type":"unsubscribed","channel":..}`. `Err(NotSubscribed)` if it was not subscribed.
    /// [`Hub::act`] does the same on any node.
    pub async fn unsubscribe_connection(&self, connection_id: &str, channel: &str) -> Result<(), HubError> {
        validate_channel(channel)?;
        let conn = self.connection(connection_id).ok_or_else(|| HubError::NotFound(connection_id.to_owned()))?;
        self.unsubscribe_as_server(&conn, channel).await
    }

    async fn unsubscribe_as_server(&self, conn: &Conn, channel: &str) -> Result<(), HubError> {
        let session = conn.data::<Session>().ok_or_else(|| HubError::NotFound(conn.id().to_owned()))?;
        if !session.subscriptions.lock().expect("not poisoned").remove(channel) {
            return Err(HubError::NotSubscribed(channel.to_owned()));
        }
        self.leave(conn, channel)?;
        let pushed = wire::Subscribed { kind: "unsubscribed", channel, offset: None, epoch: None };
        let _ = conn.send_text(serde_json::to_string(&pushed).expect("serializable"));
        Ok(())
    }

    /// Subscribes `conn` on the server's behalf (the API, a token's `channels`). Already
    /// subscribed: nothing changes (its presence info stays what it joined with).
    pub(crate) async fn subscribe_as_server(&self, conn: &Conn, channel: &str) -> Result<(), HubError> {
        let gone = || HubError::NotFound(conn.id().to_owned());
        let session = conn.data::<Session>().ok_or_else(gone)?;
        match session.reserve(channel, self.config().max_subscriptions)? {
            Reserved::New => {}
            Reserved::Already => return Ok(()),
            Reserved::Ended => return Err(gone()),
        }
        let info = connection_info(conn);
        let subscribed = self
            .subscribe(conn, channel, info.as_deref(), None, |offset, epoch, _| {
                let pushed = wire::Subscribed { kind: "subscribed", channel, offset: Some(offset), epoch: Some(epoch) };
                serde_json::to_string(&pushed).expect("serializable")
            })
            .await;
        let mut subscriptions = session.subscriptions.lock().expect("not poisoned");
        if subscribed.is_err() {
            subscriptions.remove(channel);
        } else if session.has_ended() {
            // Called from another task than the connection's, this raced its end: its `closed`
            // callback may have left the channel before this joined it. Undo the join here.
            drop(subscriptions);
            let _ = self.leave(conn, channel);
            return Err(gone());
        }
        subscribed
    }

    /// The channels held, with their subscriber counts, sorted by name; only those whose name
    /// starts with `prefix` when one is given.
    pub fn channels(&self, prefix: Option<&str>) -> Vec<ChannelSummary> {
        let handles: Vec<_> = {
            let channels = self.inner.channels.lock().expect("not poisoned");
            let wanted = |name: &String| prefix.is_none_or(|prefix| name.starts_with(prefix));
            channels.iter().filter(|(name, _)| wanted(name)).map(|(name, c)| (name.clone(), c.clone())).collect()
        };
        // Each channel's lock is taken after the map's is released (the order publishers use).
        let mut summaries: Vec<ChannelSummary> = handles
            .into_iter()
            .map(|(name, channel)| {
                let mut channel = channel.lock().expect("not poisoned");
                // Expired entries the sweeper has not reached yet are not counted (`history`
                // would not show them either).
                let freed = channel.prune(tokio::time::Instant::now());
                self.inner.release(freed);
                ChannelSummary {
                    subscribers: channel.subscriber_count(),
                    last_offset: channel.last_offset(),
                    epoch: channel.epoch().to_owned(),
                    history_size: channel.history_len(),
                    name,
                }
            })
            .collect();
        summaries.sort_by(|a, b| a.name.cmp(&b.name));
        summaries
    }

    /// Connections, users, channels, subscriptions and history now, and publishes so far. Walks
    /// the connections and the channels: meant for a scrape or a dashboard, not per message.
    pub fn stats(&self) -> HubStats {
        let connections = self.connections();
        let users: HashSet<&str> = connections.iter().filter_map(Conn::user).collect();
        let handles: Vec<_> = self.inner.channels.lock().expect("not poisoned").values().cloned().collect();
        // Each channel's lock after the map's is released (the order publishers use).
        let subscriptions =
            handles.iter().map(|channel| channel.lock().expect("not poisoned").subscriber_count()).sum();
        HubStats {
            connections: connections.len(),
            users: users.len(),
            channels: handles.len(),
            subscriptions,
            publications: self.inner.publications.load(Ordering::Relaxed),
            history_entries: self.inner.history_entries.load(Ordering::Relaxed),
            history_bytes: self.history_bytes(),
            expiring: self.inner.expiries.len(),
        }
    }
}

/// The presence info a connection carries from its identity (a token's `info`, a connect proxy's
/// answer), as JSON: taken as is when it is JSON, else as a JSON string (a library hook may have
/// written plain text).
pub(crate) fn connection_info(conn: &Conn) -> Option<Box<RawValue>> {
    let info = conn.info()?;
    serde_json::from_str::<Box<RawValue>>(info).ok().or_else(|| serde_json::value::to_raw_value(info).ok())
}
