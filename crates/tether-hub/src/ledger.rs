//! The hub's history ledger: every history entry of every channel, in the order it was recorded,
//! so the byte budget ([`crate::HubConfig::max_history_bytes`]) drops the oldest entries of the
//! whole hub at O(1) each instead of scanning the channels on every publish.
//!
//! The ledger is in recording order, which (one time to live for all) is also expiry order, so the
//! sweeper finds what expired at its front, without visiting every channel.
//!
//! An entry is `(channel, offset, recorded at)`. Channels drop entries on their own too (age, count), so the
//! ledger may name entries that are gone: popping one of those costs nothing, and when stale
//! entries outnumber live ones (`compact_if_stale`) they are filtered out, which keeps the ledger
//! at most about twice the live history plus a constant, at O(1) amortized per publish.
//! A channel is named by a `Weak` handle: a forgotten channel's entries are stale by definition,
//! even if a channel of the same name exists again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::channel::Channel;

type Entry = (Weak<Mutex<Channel>>, u64, Instant);

/// Stale entries tolerated before a compaction, on top of as many as there are live ones.
const SLACK: usize = 1024;

#[derive(Default)]
pub(crate) struct Ledger {
    entries: Mutex<VecDeque<Entry>>,
    /// One compaction at a time: two would each put their kept entries first, out of order.
    compacting: AtomicBool,
}

impl Ledger {
    /// Records the newest entry; `live` is how many entries the hub's channels hold now.
    /// Must not be called with a channel's lock held (compaction takes channel locks).
    /// `at` is taken after the channel recorded its entry, so when the ledger's entry has expired,
    /// the channel's has too.
    pub(crate) fn push(&self, channel: Weak<Mutex<Channel>>, offset: u64, live: usize) {
        let len = {
            let mut entries = self.entries.lock().expect("not poisoned");
            entries.push_back((channel, offset, Instant::now()));
            entries.len()
        };
        if len > 2 * live + SLACK {
            self.compact();
        }
    }

    /// The oldest entry, taken off the ledger. `None` while a compaction runs: the ledger then
    /// holds only the entries recorded since it began, the newest, which the byte budget must not
    /// take for the oldest. The budget is enforced again on the next publish.
    pub(crate) fn pop_oldest(&self) -> Option<Entry> {
        if self.compacting.load(Ordering::Acquire) {
            return None;
        }
        self.entries.lock().expect("not poisoned").pop_front()
    }

    /// The oldest entry if it is older than `ttl` at `now`, taken off the ledger.
    pub(crate) fn pop_expired(&self, now: Instant, ttl: Duration) -> Option<Entry> {
        let mut entries = self.entries.lock().expect("not poisoned");
        let expired = entries.front().is_some_and(|(_, _, at)| now.saturating_duration_since(*at) > ttl);
        if expired {
            entries.pop_front()
        } else {
            None
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().expect("not poisoned").len()
    }

    /// Keeps only the entries their channel still holds. The ledger's lock is not held while the
    /// channels are asked, so publishers keep recording meanwhile; their entries go after the
    /// kept ones, which is still oldest first.
    fn compact(&self) {
        if self.compacting.swap(true, Ordering::Acquire) {
            return;
        }
        let old = std::mem::take(&mut *self.entries.lock().expect("not poisoned"));
        let kept: VecDeque<Entry> = old
            .into_iter()
            .filter(|(channel, offset, _)| {
                channel.upgrade().is_some_and(|channel| channel.lock().expect("not poisoned").holds(*offset))
            })
            .collect();
        let mut entries = self.entries.lock().expect("not poisoned");
        let newer = std::mem::replace(&mut *entries, kept);
        entries.extend(newer);
        self.compacting.store(false, Ordering::Release);
    }
}
