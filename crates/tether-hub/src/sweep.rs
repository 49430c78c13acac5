//! The sweeper: a task that, every [`crate::HubConfig::sweep_interval`], drops expired history and
//! forgets the channels that leaves with no subscribers and no history. Without it, history would
//! be pruned only when its channel is touched again, and a client that publishes to many channels
//! once and leaves would keep their memory held forever.
//!
//! A sweep does not visit every channel: the hub's ledger lists history entries in the order they
//! were recorded, which is the order they expire in, so a sweep takes the expired entries off its
//! front and prunes just their channels, O(entries expired) with no lock held for long. Channels
//! left unused any other way are forgotten on the spot (see `hub.rs`).
//!
//! [`Hub::new`] is synchronous and may run outside a runtime, so the task starts on the hub's
//! first use from inside a tokio runtime (a channel fetched or a connection registered). It holds
//! the hub only weakly and ends when the hub is dropped; if its runtime shuts down first, the next
//! use from a runtime starts a new one.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::channel::Freed;
use crate::expiry::{TOKEN_EXPIRED, TOKEN_EXPIRED_REASON};
use crate::hub::{Hub, HubInner};

impl Hub {
    /// Drops expired history and forgets the channels left with no subscribers and no history.
    /// The sweeper task calls this every `sweep_interval`; call it yourself when the hub is used
    /// outside a tokio runtime.
    pub fn sweep(&self) {
        let inner = &self.inner;
        let now = tokio::time::Instant::now();
        let mut freed = Freed::default();
        // Entries older than the longest time to live have expired in every channel; a channel
        // with a shorter one prunes the rest when it is next touched.
        let ttl = inner.config.namespaces.longest_ttl(inner.config.history_ttl);
        while let Some((handle, _, _)) = inner.ledger.pop_expired(now, ttl) {
            let Some(handle) = handle.upgrade() else { continue }; // Forgotten already.
            let mut channel = handle.lock().expect("not poisoned");
            // Prunes every expired entry of the channel; their later ledger entries are stale.
            let pruned = channel.prune(now);
            inner.release(pruned);
            freed += pruned;
            if channel.is_unused() && !channel.forgotten {
                let name = channel.name().to_owned();
                drop(channel);
                self.forget_if_unused(&name);
            }
        }
        crate::trim::after_sweep(freed.bytes);
        self.close_expired(std::time::SystemTime::now());
    }

    /// Closes (4001) every connection whose token expired at or before `now` (`expiry.rs`).
    fn close_expired(&self, now: std::time::SystemTime) {
        for id in self.inner.expiries.take_expired(now) {
            if let Some(conn) = self.connection(&id) {
                let _ = conn.close(TOKEN_EXPIRED, TOKEN_EXPIRED_REASON);
            }
        }
    }

    /// Starts the sweeper if none runs and this is called from inside a tokio runtime.
    pub(crate) fn start_sweeper(&self) {
        if self.inner.sweeping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.inner.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        runtime.spawn(run(Arc::downgrade(&self.inner)));
    }
}

/// Marks the hub as without a sweeper when the task ends (hub dropped, runtime shut down).
struct Running(Weak<HubInner>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.sweeping.store(false, Ordering::Release);
        }
    }
}

async fn run(hub: Weak<HubInner>) {
    let running = Running(hub);
    let Some(period) = running.0.upgrade().map(|inner| inner.config.sweep_interval) else { return };
    // A zero interval would be a busy loop (and tokio's interval refuses it).
    let mut ticks = tokio::time::interval(period.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // The first tick is immediate; nothing has expired yet.
    loop {
        ticks.tick().await;
        let Some(inner) = running.0.upgrade() else { return };
        Hub { inner }.sweep();
    }
}
