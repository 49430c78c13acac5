//! One channel: its subscribers, its offset counter and its history.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use serde_json::value::RawValue;

use super::{wire, HubConfig};
use crate::listener::{new_connection_id, Conn, PreparedMessage};

/// A connection in a channel's presence.
#[derive(Debug, Clone)]
pub struct Member {
    /// The connection's id.
    pub connection_id: String,
    /// The `info` it subscribed with.
    pub info: Option<Box<RawValue>>,
}

/// A message as kept in the history.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Its offset in the channel.
    pub offset: u64,
    /// Its data, as JSON.
    pub data: Box<RawValue>,
    /// The publishing connection; `None` when the server published.
    pub from: Option<String>,
}

struct Subscriber {
    conn: Conn,
    info: Option<Box<RawValue>>,
}

pub(crate) struct Channel {
    name: String,
    /// Changes whenever the offsets start over (a new channel, a restarted server), so a client
    /// can tell "nothing new since offset N" from "offset N is from another life of the channel".
    epoch: String,
    last_offset: u64,
    subscribers: HashMap<String, Subscriber>,
    history: VecDeque<(Instant, Publication)>,
}

impl Channel {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            epoch: new_connection_id()[..8].to_owned(),
            last_offset: 0,
            subscribers: HashMap::new(),
            history: VecDeque::new(),
        }
    }

    pub(crate) fn epoch(&self) -> &str {
        &self.epoch
    }

    pub(crate) fn last_offset(&self) -> u64 {
        self.last_offset
    }

    pub(crate) fn is_unused(&self) -> bool {
        self.subscribers.is_empty() && self.history.is_empty()
    }

    /// Drops history entries older than the configured time to live.
    pub(crate) fn prune(&mut self, config: &HubConfig) {
        let now = Instant::now();
        while self.history.front().is_some_and(|(at, _)| now.duration_since(*at) > config.history_ttl) {
            self.history.pop_front();
        }
    }

    /// Assigns the next offset, sends the message to every subscriber and records it.
    pub(crate) fn publish(&mut self, config: &HubConfig, data: &RawValue, from: Option<&str>) -> u64 {
        self.prune(config);
        self.last_offset += 1;
        let offset = self.last_offset;
        let frame = wire::MessageOut { kind: "message", channel: &self.name, offset, data, from };
        let message = PreparedMessage::text(serde_json::to_string(&frame).expect("serializable"));
        self.broadcast(&message);
        if config.history_size > 0 {
            let publication = Publication { offset, data: data.to_owned(), from: from.map(str::to_owned) };
            self.history.push_back((Instant::now(), publication));
            while self.history.len() > config.history_size {
                self.history.pop_front();
            }
        }
        offset
    }

    /// Hands the same frame to every subscriber's queue; returns how many got it.
    pub(crate) fn broadcast(&self, message: &PreparedMessage) -> usize {
        self.subscribers.values().filter(|s| s.conn.send_prepared(message).is_ok()).count()
    }

    /// The publications after `since`, if the history still holds all of them.
    pub(crate) fn publications_after(&self, since: u64) -> Option<Vec<Publication>> {
        if since > self.last_offset {
            return None; // An offset from the future: from another life of the channel.
        }
        if since == self.last_offset {
            return Some(Vec::new());
        }
        let oldest = self.history.front().map(|(_, p)| p.offset)?;
        if oldest > since + 1 {
            return None;
        }
        Some(self.history.iter().filter(|(_, p)| p.offset > since).map(|(_, p)| p.clone()).collect())
    }

    pub(crate) fn all(&self) -> Vec<Publication> {
        self.history.iter().map(|(_, p)| p.clone()).collect()
    }

    /// Adds (or updates the info of) a subscriber; the others get a `join` event.
    pub(crate) fn join(&mut self, conn: &Conn, info: Option<Box<RawValue>>) {
        if let Some(existing) = self.subscribers.get_mut(conn.id()) {
            existing.info = info;
            return;
        }
        let event =
            wire::Presence { kind: "join", channel: &self.name, connection_id: conn.id(), info: info.as_deref() };
        let message = PreparedMessage::text(serde_json::to_string(&event).expect("serializable"));
        self.broadcast(&message);
        self.subscribers.insert(conn.id().to_owned(), Subscriber { conn: conn.clone(), info });
    }

    /// Removes a subscriber; the others get a `leave` event. Whether it was subscribed.
    pub(crate) fn leave(&mut self, connection_id: &str) -> bool {
        if self.subscribers.remove(connection_id).is_none() {
            return false;
        }
        let event = wire::Presence { kind: "leave", channel: &self.name, connection_id, info: None };
        let message = PreparedMessage::text(serde_json::to_string(&event).expect("serializable"));
        self.broadcast(&message);
        true
    }

    pub(crate) fn members(&self) -> Vec<Member> {
        self.subscribers.iter().map(|(id, s)| Member { connection_id: id.clone(), info: s.info.clone() }).collect()
    }
}
