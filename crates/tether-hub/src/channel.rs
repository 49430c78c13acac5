//! One channel: its subscribers, its offset counter and its history.
//!
//! The history holds a contiguous run of offsets (entries are appended at the newest offset and
//! only ever removed from the oldest end: by age, by count, by the hub's byte budget), so "is
//! offset N still here" and "where do the entries after N start" are arithmetic, not a search.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::time::Instant;

use tether_tokio::{Conn, PreparedMessage};

use crate::config::HubConfig;
use crate::error::HubError;
use crate::policy::NamespacePolicy;
use crate::wire;

#[cfg(feature = "redis")]
mod live;
#[cfg(feature = "redis")]
pub(crate) use live::Activation;

/// A connection in a channel's presence.
#[derive(Debug, Clone)]
pub struct Member {
    /// The connection's id.
    pub connection_id: String,
    /// Its user, if it has one.
    pub user: Option<String>,
    /// Its info: the connection's own (from its token) if it has one, else what it subscribed with.
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

/// Bytes a history entry is counted as against [`HubConfig::max_history_bytes`]: its data and
/// publisher id, plus a fixed 256 for the entry's bookkeeping, so a flood of tiny publications is
/// not free either. That figure is counted from the structures, not guessed low: the entry in its
/// channel's deque (about 72 bytes, up to twice that while the deque has grown), the allocator's
/// headers and rounding of the data and `from` blocks (about 32 more) and the ledger's entry
/// (32 bytes, up to twice that before a compaction).
pub(crate) fn entry_cost(data: &RawValue, from: Option<&str>) -> usize {
    const ENTRY_OVERHEAD: usize = 256;
    data.get().len() + from.map_or(0, str::len) + ENTRY_OVERHEAD
}

/// Bytes a publication takes in a `history` answer or a subscribe ack: its data, its `from`, and
/// room for `{"offset":<20 digits>,"data":,"from":""},`.
pub(crate) fn reply_cost(publication: &Publication) -> usize {
    const FIELDS: usize = 50;
    publication.data.get().len() + publication.from.as_deref().map_or(4, str::len) + FIELDS
}

/// History entries removed at once, for the hub's byte and entry counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Freed {
    pub entries: usize,
    pub bytes: usize,
}

impl std::ops::AddAssign for Freed {
    fn add_assign(&mut self, other: Self) {
        self.entries += other.entries;
        self.bytes += other.bytes;
    }
}

struct Entry {
    at: Instant,
    cost: usize,
    publication: Publication,
}

struct Subscriber {
    conn: Conn,
    info: Option<Box<RawValue>>,
    /// Redis engine: publications up to this offset reached the subscriber with its subscribe
    /// ack (recovered, or before the offset the ack named); a copy arriving live is skipped.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    skip_through: u64,
    /// Redis engine: the subscriber is reading the history; what arrives live meanwhile waits
    /// here, to follow the ack ([`Channel::activate`]). `None` once it receives live.
    pending: Option<Vec<(u64, PreparedMessage)>>,
}

pub(crate) struct Channel {
    name: String,
    /// Changes whenever the offsets start over (a new channel, a restarted server), so a client
    /// can tell "nothing new since offset N" from "offset N is from another life of the channel".
    epoch: String,
    last_offset: u64,
    subscribers: HashMap<String, Subscriber>,
    history: VecDeque<Entry>,
    /// From the channel's namespace policy (or the hub's defaults), fixed when it is created.
    history_size: usize,
    history_ttl: Duration,
    join_leave: bool,
    /// Redis engine: the last offset handed to this node's subscribers (from pub/sub, or filled
    /// in after a reconnect), in `epoch`; a publication at or below it is a copy.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    dispatched: u64,
    /// Set when the hub removed the channel from its map. Whoever fetched the handle just before
    /// must fetch (or create) the channel again rather than use this dead one.
    pub(crate) forgotten: bool,
}

impl Channel {
    pub(crate) fn new(name: &str, config: &HubConfig) -> Self {
        let policy: &NamespacePolicy = config.namespaces.policy_for(name);
        Self {
            name: name.to_owned(),
            epoch: new_epoch(),
            last_offset: 0,
            subscribers: HashMap::new(),
            history: VecDeque::new(),
            history_size: policy.history_size.unwrap_or(config.history_size),
            history_ttl: policy.history_ttl.unwrap_or(config.history_ttl),
            join_leave: policy.join_leave,
            dispatched: 0,
            forgotten: false,
        }
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
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

    /// Whether the history still holds the entry at `offset` (one this channel assigned).
    pub(crate) fn holds(&self, offset: u64) -> bool {
        self.history.front().is_some_and(|e| e.publication.offset <= offset)
    }

    fn pop_oldest(&mut self, freed: &mut Freed) {
        if let Some(entry) = self.history.pop_front() {
            *freed += Freed { entries: 1, bytes: entry.cost };
        }
    }

    /// Drops history entries older than the channel's time to live.
    pub(crate) fn prune(&mut self, now: Instant) -> Freed {
        let mut freed = Freed::default();
        while self.history.front().is_some_and(|e| now.saturating_duration_since(e.at) > self.history_ttl) {
            self.pop_oldest(&mut freed);
        }
        freed
    }

    /// Drops the history entries up to and including `offset` (the hub's byte budget).
    pub(crate) fn drop_through(&mut self, offset: u64) -> Freed {
        let mut freed = Freed::default();
        while self.holds(offset) {
            self.pop_oldest(&mut freed);
        }
        freed
    }

    /// Assigns the next offset, sends the message to every subscriber and records it. Returns the
    /// offset, whether it went into the history, and what was pruned to make room; `delivered`
    /// learns how many subscribers had it queued.
    pub(crate) fn publish(&mut self, data: &RawValue, from: Option<&str>, delivered: &mut usize) -> (u64, bool, Freed) {
        let now = Instant::now();
        let mut freed = self.prune(now);
        self.last_offset += 1;
        let offset = self.last_offset;
        let frame = wire::MessageOut { kind: "message", channel: &self.name, offset, data, from };
        let message = PreparedMessage::text(serde_json::to_string(&frame).expect("serializable"));
        *delivered = self.broadcast(&message);
        if self.history_size == 0 {
            return (offset, false, freed);
        }
        let publication = Publication { offset, data: data.to_owned(), from: from.map(str::to_owned) };
        self.history.push_back(Entry { at: now, cost: entry_cost(data, from), publication });
        while self.history.len() > self.history_size {
            self.pop_oldest(&mut freed);
        }
        (offset, true, freed)
    }

    /// Hands the same frame to every subscriber's queue; returns how many got it.
    pub(crate) fn broadcast(&self, message: &PreparedMessage) -> usize {
        self.subscribers.values().filter(|s| s.pending.is_none() && s.conn.send_prepared(message).is_ok()).count()
    }

    /// Where the entries after `since` start in the history, if it still holds all of them.
    pub(crate) fn start_after(&self, since: u64) -> Option<usize> {
        if since > self.last_offset {
            return None; // An offset from the future: from another life of the channel.
        }
        if since == self.last_offset {
            return Some(self.history.len());
        }
        let oldest = self.history.front()?.publication.offset;
        // The history is the contiguous run oldest..=last_offset.
        (since + 1).checked_sub(oldest).map(|skip| skip as usize)
    }

    /// The publications in `range` (indices into the history) whose [`reply_cost`] fits in
    /// `budget`: the oldest ones when `oldest_first`, else the newest; always at least one, so a
    /// client paging through the history always gets further. Also whether any was left out.
    pub(crate) fn select(&self, range: Range<usize>, budget: usize, oldest_first: bool) -> (Vec<Publication>, bool) {
        let entries = self.history.range(range.clone()).map(|e| &e.publication);
        let mut spent = 0;
        let fits = |p: &&Publication| {
            spent += reply_cost(p);
            spent <= budget
        };
        let count =
            if oldest_first { entries.take_while(fits).count() } else { entries.rev().take_while(fits).count() };
        let count = count.max(1).min(range.len());
        let truncated = count < range.len();
        let kept = if oldest_first { range.start..range.start + count } else { range.end - count..range.end };
        (self.history.range(kept).map(|e| e.publication.clone()).collect(), truncated)
    }

    pub(crate) fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Adds (or updates the info of) a subscriber; the others get a `join` event (unless the
    /// namespace turned them off).
    pub(crate) fn join(&mut self, conn: &Conn, info: Option<Box<RawValue>>) {
        if let Some(existing) = self.subscribers.get_mut(conn.id()) {
            existing.info = info;
            return;
        }
        if self.join_leave {
            let event = wire::Presence {
                kind: "join",
                channel: &self.name,
                connection_id: conn.id(),
                user: conn.user(),
                info: info.as_deref(),
            };
            let message = PreparedMessage::text(serde_json::to_string(&event).expect("serializable"));
            self.broadcast(&message);
        }
        self.subscribers.insert(conn.id().to_owned(), Subscriber::new(conn, info, None));
    }

    /// Removes a subscriber; the others get a `leave` event (unless the namespace turned them
    /// off). Whether it was subscribed.
    pub(crate) fn leave(&mut self, connection_id: &str) -> bool {
        let Some(left) = self.subscribers.remove(connection_id) else { return false };
        if self.join_leave {
            let event = wire::Presence {
                kind: "leave",
                channel: &self.name,
                connection_id,
                user: left.conn.user(),
                info: None,
            };
            let message = PreparedMessage::text(serde_json::to_string(&event).expect("serializable"));
            self.broadcast(&message);
        }
        true
    }

    pub(crate) fn members(&self) -> Vec<Member> {
        let member = |(id, s): (&String, &Subscriber)| Member {
            connection_id: id.clone(),
            user: s.conn.user().map(str::to_owned),
            info: s.info.clone(),
        };
        self.subscribers.iter().map(member).collect()
    }
}

impl Subscriber {
    fn new(conn: &Conn, info: Option<Box<RawValue>>, pending: Option<Vec<(u64, PreparedMessage)>>) -> Self {
        Self { conn: conn.clone(), info, skip_through: 0, pending }
    }
}

/// Channel names: 1-128 characters of `A-Z a-z 0-9 _ - . : / @ $ # ,` (`#` and `,` for
/// user-limited channels, `chat:dm#alice,bob`).
pub fn validate_channel(name: &str) -> Result<(), HubError> {
    let valid =
        (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:/@$#,".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(HubError::BadRequest(format!(
            "invalid channel name {name:?}: 1-128 characters of A-Z a-z 0-9 _ - . : / @ $ # ,"
        )))
    }
}

/// A fresh epoch: 8 random URL-safe characters (48 bits), drawn like a connection id's first 8.
/// Made here rather than by tether-tokio, whose connection ids are its own business.
pub(crate) fn new_epoch() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).expect("the operating system's random source works");
    let mut epoch = String::with_capacity(8);
    for chunk in random.chunks(3) {
        let n = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
        epoch.extend([18, 12, 6, 0].map(|shift| char::from(ALPHABET[(n >> shift & 63) as usize])));
    }
    epoch
}

/// What a subscribe with `since` recovered.
pub(crate) struct Recovery {
    /// Every publication after `since` is in `publications`.
    pub recovered: bool,
    /// Some were left out to stay within [`HubConfig::max_history_reply_bytes`].
    pub truncated: bool,
    pub publications: Vec<Publication>,
}

/// Room for the publications of a reply: the cap less the ack's own fields (type, id, channel,
/// offset, epoch, recovered, truncated), so the whole ack stays within the cap.
pub(crate) fn reply_budget(config: &HubConfig) -> usize {
    // The longest ack around the publications: a 128-character channel, a 20-digit id and offset,
    // the epoch, `recovered` and `truncated` come to about 283 bytes.
    const ENVELOPE: usize = 320;
    config.max_history_reply_bytes.saturating_sub(ENVELOPE)
}
