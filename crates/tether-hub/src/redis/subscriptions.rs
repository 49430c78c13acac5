//! Which channels the node's pub/sub connection is subscribed to: a channel while at least one
//! local join holds it ([`PubSub::acquire`], [`PubSub::release`]). Both go through one async
//! lock, so a SUBSCRIBE is confirmed before any join that relies on it reads the history, and an
//! UNSUBSCRIBE racing a new join cannot leave the node deaf to a channel it has subscribers in.
//! The connection itself, and getting it back, is `pubsub.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long Redis may take to confirm a subscription.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

/// The live connection's subscribing half and what the node wants to hear.
#[derive(Default)]
pub(crate) struct PubSub {
    pub(crate) state: tokio::sync::Mutex<State>,
    pub(crate) up: AtomicBool,
    /// Told when the connection stopped answering though it did not close (a Redis that hangs,
    /// a network that drops packets): the reader then drops it and connects again.
    pub(crate) broken: tokio::sync::Notify,
    /// Which connection `broken` is about (a wake-up stored for an older one is ignored).
    pub(crate) broken_generation: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
pub(crate) struct State {
    /// `None` while disconnected.
    pub(crate) sink: Option<redis::aio::PubSubSink>,
    /// Counts the connections made: the current one's number.
    pub(crate) generation: u64,
    /// Local joins holding each channel's pub/sub channel.
    pub(crate) wanted: HashMap<String, usize>,
}

/// Why [`PubSub::acquire`] held nothing.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The connection is down (the reader is reconnecting).
    Down,
    /// Redis did not confirm the subscription.
    Failed(String),
}

impl PubSub {
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Holds `channel` once more, subscribing in Redis if it is the first hold. `Err(Unavailable)`
    /// (and nothing held) while the connection is down.
    pub(crate) async fn acquire(&self, channel: &str) -> Result<(), Refused> {
        let mut state = self.state.lock().await;
        let State { sink: slot, wanted, generation } = &mut *state;
        let Some(sink) = slot.as_mut() else {
            return Err(Refused::Down);
        };
        let held = wanted.get(channel).copied().unwrap_or(0);
        if held == 0 {
            let failed = match tokio::time::timeout(CONFIRM_TIMEOUT, sink.subscribe(channel)).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some("no answer in time".to_owned()),
            };
            if let Some(why) = failed {
                // A connection that cannot subscribe is no use (and a late confirmation would
                // leave a subscription nobody counts): give it up, so the joins queued behind
                // this one are answered at once and the reader connects again.
                *slot = None;
                self.give_up(*generation);
                return Err(Refused::Failed(why));
            }
        }
        wanted.insert(channel.to_owned(), held + 1);
        Ok(())
    }

    /// Pings Redis over the pub/sub connection (the heartbeat does, every 2 s); when it does not
    /// answer in time, the connection is given up and the reader told to connect again.
    pub(crate) async fn check(&self) {
        let mut state = self.state.lock().await;
        let Some(sink) = state.sink.as_mut() else { return };
        if !matches!(tokio::time::timeout(CONFIRM_TIMEOUT, sink.ping::<redis::Value>()).await, Ok(Ok(_))) {
            let generation = state.generation;
            state.sink = None;
            self.give_up(generation);
        }
    }

    /// Marks connection number `generation` broken, for the reader to drop.
    fn give_up(&self, generation: u64) {
        self.up.store(false, Ordering::Relaxed);
        self.broken_generation.store(generation, Ordering::Relaxed);
        self.broken.notify_one();
    }

    /// Whether the reader of connection `generation` was told to drop it.
    pub(crate) fn is_broken(&self, generation: u64) -> bool {
        self.broken_generation.load(Ordering::Relaxed) == generation
    }

    /// Ends the reader (the hub is gone).
    pub(crate) fn shut_down(&self) {
        self.broken_generation.store(u64::MAX, Ordering::Relaxed);
        self.broken.notify_one();
    }

    /// Lets go of one hold of `channel`; the last one unsubscribes in Redis.
    pub(crate) async fn release(&self, channel: &str) {
        let mut state = self.state.lock().await;
        let State { sink, wanted, .. } = &mut *state;
        let Some(held) = wanted.get_mut(channel) else { return };
        *held -= 1;
        if *held > 0 {
            return;
        }
        wanted.remove(channel);
        if let Some(sink) = sink.as_mut() {
            // A failure leaves a subscription Redis forgets at the next reconnect; messages for a
            // channel without local subscribers are dropped on arrival meanwhile.
            let _ = tokio::time::timeout(CONFIRM_TIMEOUT, sink.unsubscribe(channel)).await;
        }
    }
}
