//! The channel's side of the Redis engine, whose offsets and history live in Redis: this node's
//! subscribers, the live publications handed to them in order, and the subscribers that wait for
//! their history read before they receive live (`redis/channels.rs` says why that is exact).

use serde_json::value::RawValue;
use tether_tokio::{Conn, PreparedMessage};

use super::{Channel, Subscriber};

/// Publications a joining subscriber may have waiting while its history read runs (a read takes
/// a Redis round trip: this is hundreds of times what a busy channel gets meanwhile).
const MAX_PENDING: usize = 10_000;

/// What [`Channel::activate`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// It receives live now.
    Active,
    /// It left while its read ran (the connection closed).
    Gone,
    /// More arrived during its read than it may keep: it was taken out of the channel.
    Overflowed,
}

impl Channel {
    /// Adds a subscriber that waits for its history read ([`Channel::activate`]); live
    /// publications meanwhile are kept for it. Nobody is told (the join event goes through Redis).
    /// False (and nothing changed) if the connection is in the channel already.
    pub(crate) fn join_pending(&mut self, conn: &Conn, info: Option<Box<RawValue>>) -> bool {
        if self.subscribers.contains_key(conn.id()) {
            return false;
        }
        self.subscribers.insert(conn.id().to_owned(), Subscriber::new(conn, info, Some(Vec::new())));
        true
    }

    /// The pending subscriber's read is done: queues its ack, then what arrived live after `top`
    /// (the offset the ack names) in `epoch`, and from now on it receives live.
    pub(crate) fn activate(&mut self, connection_id: &str, ack: String, top: u64, epoch: &str) -> Activation {
        let nothing_live = self.subscribers.values().all(|s| s.pending.as_ref().is_none_or(Vec::is_empty));
        if self.dispatched == 0 && nothing_live && epoch != self.epoch {
            // Nothing arrived live yet: the channel's epoch is Redis's, from this read. If it
            // changed (the channel started again in Redis while quiet), the others' acks named
            // offsets of the old life: they skip nothing of the new one.
            epoch.clone_into(&mut self.epoch);
            self.subscribers.values_mut().for_each(|s| s.skip_through = 0);
        }
        let same_epoch = epoch == self.epoch;
        let Some(subscriber) = self.subscribers.get_mut(connection_id) else { return Activation::Gone };
        let Some(waiting) = subscriber.pending.take() else {
            // Joined by a subscribe that ran at the same time (a client's and a server-side one):
            // this one is answered too.
            let _ = subscriber.conn.send_text(ack);
            return Activation::Active;
        };
        if waiting.len() >= MAX_PENDING {
            self.subscribers.remove(connection_id);
            return Activation::Overflowed;
        }
        let _ = subscriber.conn.send_text(ack);
        for (offset, message) in waiting {
            if !same_epoch || offset > top {
                let _ = subscriber.conn.send_prepared(&message);
            }
        }
        subscriber.skip_through = if same_epoch { top } else { 0 };
        Activation::Active
    }

    /// Removes a subscriber without telling the others (the leave event goes through Redis).
    pub(crate) fn leave_quietly(&mut self, connection_id: &str) -> bool {
        self.subscribers.remove(connection_id).is_some()
    }

    /// Replaces a subscriber's presence info (a subscribe of a connection already in).
    pub(crate) fn set_info(&mut self, connection_id: &str, info: Option<Box<RawValue>>) {
        if let Some(subscriber) = self.subscribers.get_mut(connection_id) {
            subscriber.info = info;
        }
    }

    /// Hands a live publication to the node's subscribers: those reading their history keep it
    /// for later, the others get it unless their ack covered it. A copy (at or below the last
    /// offset handed out in this epoch) is dropped. How many got it now.
    pub(crate) fn dispatch(&mut self, offset: u64, epoch: &str, message: &PreparedMessage) -> usize {
        if epoch != self.epoch {
            // The channel started again in Redis (its meta expired): offsets start over.
            epoch.clone_into(&mut self.epoch);
            self.dispatched = 0;
            self.subscribers.values_mut().for_each(|s| s.skip_through = 0);
        }
        if offset <= self.dispatched {
            return 0;
        }
        self.dispatched = offset;
        self.last_offset = offset;
        let mut delivered = 0;
        for subscriber in self.subscribers.values_mut() {
            match &mut subscriber.pending {
                // Full: its activation fails (it could only be handed a hole).
                Some(waiting) if waiting.len() >= MAX_PENDING => {}
                Some(waiting) => waiting.push((offset, message.clone())),
                None if offset > subscriber.skip_through => {
                    delivered += usize::from(subscriber.conn.send_prepared(message).is_ok());
                }
                None => {}
            }
        }
        delivered
    }

    /// A join or leave event from Redis, for every subscriber receiving live but `except`.
    pub(crate) fn dispatch_presence(&self, except: &str, message: &PreparedMessage) {
        for (id, subscriber) in &self.subscribers {
            if id != except && subscriber.pending.is_none() {
                let _ = subscriber.conn.send_prepared(message);
            }
        }
    }

    /// Where a refill after a pub/sub reconnect starts, and in which epoch: the last offset
    /// handed out live, or, before any was, the oldest offset a subscriber's ack named. `None`
    /// without subscribers receiving live.
    pub(crate) fn refill_from(&self) -> Option<(u64, &str)> {
        let live = self.subscribers.values().filter(|s| s.pending.is_none());
        let from = if self.dispatched > 0 { Some(self.dispatched) } else { live.map(|s| s.skip_through).min() };
        from.map(|from| (from, self.epoch.as_str()))
    }

    /// The members receiving live (not those still reading their history), for presence.
    pub(crate) fn live_members(&self) -> Vec<crate::channel::Member> {
        let live = self.subscribers.iter().filter(|(_, s)| s.pending.is_none());
        live.map(|(id, s)| crate::channel::Member {
            connection_id: id.clone(),
            user: s.conn.user().map(str::to_owned),
            info: s.info.clone(),
        })
        .collect()
    }
}
