//! Publishing: [`Hub::publish`] and its kin from the server, a client's publish
//! ([`Hub::publish_queued`]), and on the memory engine the history budget it keeps.
//!
//! A publish takes the channel's lock, assigns the next offset, encodes the `message` frame once
//! and hands the same bytes to every subscriber's queue ([`tether_tokio::PreparedMessage`]), then
//! appends to the history. Holding the lock while handing out the frame is what makes offsets
//! gap-free and identical in order for every subscriber, even with concurrent publishers; handing
//! out is only a reference-count increment and a queue push per subscriber, so the lock is short.
//! On the Redis engine the script does the numbering instead (`redis/channels.rs`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;

use crate::channel::{self, validate_channel, Channel};
use crate::error::HubError;
use crate::hub::Hub;

impl Hub {
    /// Publishes `data` (JSON) to a channel from the server; returns the offset.
    /// `Err(TooManyChannels)` for a new channel when the hub holds [`HubConfig::max_channels`].
    pub async fn publish(&self, channel: &str, data: &impl serde::Serialize) -> Result<u64, HubError> {
        validate_channel(channel)?;
        let json = serde_json::value::to_raw_value(data).map_err(|e| HubError::BadRequest(e.to_string()))?;
        self.publish_raw(channel, &json, None).await
    }

    /// Publishes raw JSON; `from` is the publishing connection, if any.
    pub(crate) async fn publish_raw(
        &self,
        channel: &str,
        data: &RawValue,
        from: Option<&str>,
    ) -> Result<u64, HubError> {
        self.publish_inner(channel, data, from, false).await.map(|(offset, _)| offset)
    }

    /// Publishes raw JSON; also returns the channel's epoch when `with_epoch` (a copy, made only
    /// for callers that answer with it).
    pub(crate) async fn publish_inner(
        &self,
        channel: &str,
        data: &RawValue,
        from: Option<&str>,
        with_epoch: bool,
    ) -> Result<(u64, Option<String>), HubError> {
        #[cfg(feature = "redis")]
        if let Some(engine) = self.redis() {
            let (offset, epoch) = self.redis_publish(engine, channel, data, from).await?;
            self.inner.publications.fetch_add(1, Ordering::Relaxed);
            return Ok((offset, with_epoch.then_some(epoch)));
        }
        self.publish_here(channel, data, from, with_epoch)
    }

    /// A client's publish, answered through `done` (with the offset) rather than awaited: on the
    /// Redis engine the connection's next request is read while this one's script runs, and the
    /// node's publishes go to Redis in the order they were made (`redis/publisher.rs`); on the
    /// memory engine `done` runs before this returns.
    pub(crate) fn publish_queued(
        &self,
        channel: &str,
        data: &RawValue,
        from: Option<&str>,
        done: impl FnOnce(Result<u64, HubError>) + Send + 'static,
    ) {
        #[cfg(feature = "redis")]
        if let Some(engine) = self.redis() {
            return self.redis_publish_queued(engine, channel, data, from, Box::new(done));
        }
        done(self.publish_here(channel, data, from, false).map(|(offset, _)| offset));
    }

    /// A publish on the memory engine.
    fn publish_here(
        &self,
        channel: &str,
        data: &RawValue,
        from: Option<&str>,
        with_epoch: bool,
    ) -> Result<(u64, Option<String>), HubError> {
        let observer = self.inner.fanout_observer.get();
        let started = observer.map(|_| std::time::Instant::now());
        let mut delivered = 0;
        let (offset, epoch, recorded) = self.with_channel(channel, |handle, channel| {
            let (offset, kept, freed) = channel.publish(data, from, &mut delivered);
            self.inner.release(freed);
            if kept {
                // Counted under the channel's lock, before anyone can drop the entry and take
                // it off the counters: they never wrap below zero.
                self.inner.history_entries.fetch_add(1, Ordering::Relaxed);
                self.inner.history_bytes.fetch_add(channel::entry_cost(data, from), Ordering::Relaxed);
            }
            let recorded = if kept { Recorded::InHistory(Arc::downgrade(handle)) } else { Recorded::Not };
            let epoch = with_epoch.then(|| channel.epoch().to_owned());
            (offset, epoch, if channel.is_unused() { Recorded::Unused } else { recorded })
        })?;
        self.inner.publications.fetch_add(1, Ordering::Relaxed);
        if let (Some(observer), Some(started)) = (observer, started.filter(|_| delivered > 0)) {
            observer(started.elapsed());
        }
        match recorded {
            Recorded::InHistory(handle) => {
                // Recorded after the channel's lock is released: the ledger never waits for a
                // channel while a channel waits for the ledger.
                self.inner.ledger.push(handle, offset, self.inner.history_entries.load(Ordering::Relaxed));
                self.enforce_history_budget();
            }
            // No history (`history_size` 0) and nobody listening: nothing will ever expire to
            // bring the sweeper here, so forget the channel now.
            Recorded::Unused => self.forget_if_unused(channel),
            Recorded::Not => {}
        }
        Ok((offset, epoch))
    }

    /// Drops the oldest history entries of any channel until the hub is within its byte budget.
    fn enforce_history_budget(&self) {
        let inner = &self.inner;
        while inner.history_bytes.load(Ordering::Relaxed) > inner.config.max_history_bytes {
            let Some((channel, offset, _)) = inner.ledger.pop_oldest() else { break };
            if let Some(channel) = channel.upgrade() {
                let mut channel = channel.lock().expect("not poisoned");
                let freed = channel.drop_through(offset);
                inner.release(freed);
                if channel.is_unused() && !channel.forgotten {
                    let name = channel.name().to_owned();
                    drop(channel);
                    self.forget_if_unused(&name);
                }
            }
        }
    }
}

/// What a publish left in its channel.
enum Recorded {
    /// An entry in the history, to record in the ledger.
    InHistory(std::sync::Weak<Mutex<Channel>>),
    /// Nothing, and the channel has no subscribers either: to forget.
    Unused,
    /// Nothing (no history kept), but the channel has subscribers.
    Not,
}
