//! The hub's channel operations on the Redis engine: publish, subscribe, leave, presence,
//! history, and the live publications the pub/sub reader hands over.
//!
//! A subscribe is exact, neither missing nor doubling a publication between its history read and
//! the live stream: the node is subscribed in Redis first (confirmed), then the connection joins
//! the channel as pending (whatever arrives live is kept for it), then the read runs, and then,
//! under the channel's lock, the ack (with what was recovered) is queued, followed by the kept
//! publications above the offset the ack named. A publication after the read is in the live
//! stream (the node was subscribed before the read); one before it is in the read; one in both
//! is dropped by its offset, now and when a late live copy arrives (`skip_through`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tether_tokio::{Conn, PreparedMessage};

use super::engine::RedisEngine;
use super::envelope::{frame_around_offset, ChannelEvent};
use crate::channel::{new_epoch, reply_budget, Activation, Publication, Recovery};
use crate::error::HubError;
use crate::history::HistoryPage;
use crate::hub::Hub;
use crate::wire;

/// The channel's meta hash (offset, epoch) outlives its history by this much at least, so a
/// client that comes back after the history expired still learns that its offsets are of the
/// same life of the channel.
pub(crate) const META_TTL_MIN: Duration = Duration::from_secs(3600);

/// A read of a channel's offset, epoch and history.
pub(crate) struct Read {
    pub offset: u64,
    pub epoch: String,
    /// Every publication after `since` is in `publications`.
    pub complete: bool,
    /// Some were left out to stay within the reply budget.
    pub truncated: bool,
    /// Oldest first.
    pub publications: Vec<Publication>,
}

impl Hub {
    /// The channel's history settings from its namespace: entries kept, and for how long.
    fn history_settings(&self, channel: &str) -> (usize, Duration) {
        let config = self.config();
        let policy = config.namespaces.policy_for(channel);
        (policy.history_size.unwrap_or(config.history_size), policy.history_ttl.unwrap_or(config.history_ttl))
    }

    pub(crate) async fn redis_publish(
        &self,
        engine: &RedisEngine,
        channel: &str,
        data: &RawValue,
        from: Option<&str>,
    ) -> Result<(u64, String), HubError> {
        let (history_size, history_ttl) = self.history_settings(channel);
        let frame = serde_json::to_string(&wire::MessageOut { kind: "message", channel, offset: u64::MAX, data, from })
            .expect("serializable");
        let (prefix, suffix) = frame_around_offset(&frame).expect("the frame holds its offset");
        let mut invocation = engine.scripts.publish.prepare_invoke();
        invocation
            .key(engine.channel_key("meta", channel))
            .key(engine.channel_key("stream", channel))
            .arg(engine.channel_key("ch", channel))
            .arg(new_epoch())
            .arg(history_size)
            .arg(history_ttl.as_secs().max(1))
            .arg(history_ttl.max(META_TTL_MIN).as_secs())
            .arg(data.get())
            .arg(from.unwrap_or(""))
            .arg(prefix)
            .arg(suffix);
        let started = Instant::now();
        let mut connection = engine.connection();
        let (offset, epoch): (u64, String) = engine.call("publish", invocation.invoke_async(&mut connection)).await?;
        if let Some(observer) = engine.publish_observer.get() {
            observer(started.elapsed());
        }
        Ok((offset, epoch))
    }

    /// Reads the offset, epoch and history: after `since` (all held when `None`), the newest
    /// `limit` at most, within `budget` bytes (oldest first with `since`, else the newest).
    /// `create`: a subscribe, which keeps the channel's epoch from now on; `entries`: false for
    /// the offset and epoch only.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn redis_read(
        &self,
        engine: &RedisEngine,
        channel: &str,
        since: Option<u64>,
        limit: Option<usize>,
        create: bool,
        entries: bool,
        budget: usize,
    ) -> Result<Read, HubError> {
        let (history_size, history_ttl) = self.history_settings(channel);
        let oldest_first = since.is_some();
        let mut invocation = engine.scripts.read.prepare_invoke();
        invocation
            .key(engine.channel_key("meta", channel))
            .key(engine.channel_key("stream", channel))
            .arg(since.map_or(-1, |since| since.min(i64::MAX as u64) as i64))
            .arg(limit.map_or(-1, |limit| limit.min(i64::MAX as usize) as i64))
            .arg(history_size)
            .arg(history_ttl.as_millis() as u64)
            .arg(new_epoch())
            .arg(history_ttl.max(META_TTL_MIN).as_secs())
            .arg(u8::from(create))
            .arg(budget)
            .arg(u8::from(oldest_first))
            .arg(u8::from(entries));
        let mut connection = engine.connection();
        let values: Vec<redis::Value> = engine.call("history read", invocation.invoke_async(&mut connection)).await?;
        let parsed = parse_read(values, oldest_first);
        parsed.ok_or_else(|| engine.failed("history read", "unexpected answer", false))
    }

    /// Subscribes `conn` through Redis (see the module's comment for why nothing is missed).
    pub(crate) async fn redis_subscribe(
        &self,
        engine: &Arc<RedisEngine>,
        conn: &Conn,
        channel_name: &str,
        info: Option<&RawValue>,
        recovery: Option<(u64, &str)>,
        ack: impl FnOnce(u64, &str, Option<Recovery>) -> String,
    ) -> Result<(), HubError> {
        let pubsub_channel = engine.channel_key("ch", channel_name);
        // Held before the connection is in the channel, so the node hears every publication
        // the read below does not return.
        engine.pubsub.acquire(&pubsub_channel).await.map_err(|refused| engine.refused(&refused))?;
        let joined =
            self.with_channel(channel_name, |_, channel| channel.join_pending(conn, info.map(ToOwned::to_owned)));
        let again = match joined {
            Ok(inserted) => !inserted,
            Err(error) => {
                engine.pubsub.release(&pubsub_channel).await;
                return Err(error);
            }
        };
        if again {
            // In the channel already (one hold per member): only the answer and the info change.
            engine.pubsub.release(&pubsub_channel).await;
        }
        let since = recovery.map(|(since, _)| since);
        let budget = reply_budget(self.config());
        let read = self.redis_read(engine, channel_name, since, None, true, since.is_some(), budget).await;
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                if !again {
                    self.redis_leave(engine, conn, channel_name, false);
                }
                return Err(error);
            }
        };
        let recovered = recovery.map(|(since, epoch)| recovery_of(since, epoch, &read));
        let text = ack(read.offset, &read.epoch, recovered);
        let activation = match self.existing_channel(channel_name) {
            None => Activation::Gone,
            Some(handle) => {
                let mut channel = handle.lock().expect("not poisoned");
                if again {
                    channel.set_info(conn.id(), info.map(ToOwned::to_owned));
                    self.redis_update_member(engine, channel_name, conn, info);
                    let _ = conn.send_text(text);
                    Activation::Active
                } else {
                    let activation = channel.activate(conn.id(), text, read.offset, &read.epoch);
                    if activation == Activation::Active {
                        // Under the channel's lock: its leave, later, is queued after this.
                        self.redis_announce(engine, &channel, conn, info, "join");
                    }
                    activation
                }
            }
        };
        match activation {
            Activation::Active => Ok(()),
            // Its `closed` left the channel (and let go of the node's subscription): nobody to answer.
            Activation::Gone => Ok(()),
            Activation::Overflowed => {
                self.forget_if_unused(channel_name);
                engine.pubsub.release(&pubsub_channel).await;
                Err(HubError::Unavailable("the channel was too busy to join in time; try again".into()))
            }
        }
    }

    /// Takes `conn` out of the channel on this node; Redis learns it in the background (its
    /// presence entry, the others' leave event, the node's subscription). Whether it was in.
    pub(crate) fn redis_leave(
        &self,
        engine: &Arc<RedisEngine>,
        conn: &Conn,
        channel_name: &str,
        announce: bool,
    ) -> bool {
        let Some(handle) = self.existing_channel(channel_name) else { return false };
        let left = {
            let mut channel = handle.lock().expect("not poisoned");
            let left = channel.leave_quietly(conn.id());
            if left && announce {
                self.redis_announce(engine, &channel, conn, None, "leave");
            }
            left
        };
        self.forget_if_unused(channel_name);
        if left {
            let (engine, pubsub_channel) = (Arc::clone(engine), engine.channel_key("ch", channel_name));
            tokio::spawn(async move { engine.pubsub.release(&pubsub_channel).await });
        }
        left
    }

    /// A message from the channel's pub/sub channel, for this node's subscribers.
    pub(crate) fn redis_deliver(&self, channel_name: &str, payload: &str) {
        let Some(handle) = self.existing_channel(channel_name) else { return };
        match ChannelEvent::parse(payload) {
            Some(ChannelEvent::Publication { offset, epoch, frame }) => {
                let message = PreparedMessage::text(frame.to_owned());
                handle.lock().expect("not poisoned").dispatch(offset, epoch, &message);
            }
            Some(ChannelEvent::Presence { except, frame }) => {
                let message = PreparedMessage::text(frame.to_owned());
                handle.lock().expect("not poisoned").dispatch_presence(except, &message);
            }
            None => tracing::debug!(channel = channel_name, "unreadable message from redis pub/sub"),
        }
    }

    /// After the pub/sub connection came back: hands each channel's subscribers what was
    /// published while it was down and Redis still holds, in order, before anything newer (all
    /// the new life holds, if the channel started again meanwhile: a Redis restart).
    pub(crate) async fn redis_fill_gaps(&self) {
        const REFILL_BUDGET: usize = 4 << 20;
        let Some(engine) = self.redis() else { return };
        let handles: Vec<_> = self.inner.channels.lock().expect("not poisoned").values().cloned().collect();
        for handle in handles {
            let (name, from, epoch) = {
                let channel = handle.lock().expect("not poisoned");
                let Some((from, epoch)) = channel.refill_from() else { continue };
                (channel.name().to_owned(), from, epoch.to_owned())
            };
            let Ok(mut read) = self.redis_read(engine, &name, Some(from), None, false, true, REFILL_BUDGET).await
            else {
                continue;
            };
            if read.epoch != epoch {
                let Ok(again) = self.redis_read(engine, &name, Some(0), None, false, true, REFILL_BUDGET).await else {
                    continue;
                };
                read = again;
            }
            let mut channel = handle.lock().expect("not poisoned");
            for publication in read.publications {
                let frame = wire::MessageOut {
                    kind: "message",
                    channel: &name,
                    offset: publication.offset,
                    data: &publication.data,
                    from: publication.from.as_deref(),
                };
                let message = PreparedMessage::text(serde_json::to_string(&frame).expect("serializable"));
                channel.dispatch(publication.offset, &read.epoch, &message);
            }
        }
        // A restarted Redis lost the presence entries: put this node's back now, not in 20 s.
        self.redis_refresh_presence(engine).await;
    }

    pub(crate) async fn redis_history(
        &self,
        engine: &RedisEngine,
        channel: &str,
        since: Option<u64>,
        limit: Option<usize>,
    ) -> Result<HistoryPage, HubError> {
        let read = self.redis_read(engine, channel, since, limit, false, true, reply_budget(self.config())).await?;
        Ok(HistoryPage {
            offset: read.offset,
            epoch: read.epoch,
            publications: read.publications,
            truncated: read.truncated,
        })
    }
}

/// What a subscribe with `since` in `epoch` recovered from `read`, by the memory engine's rules:
/// `since: 0` is the same point in every life of a channel, any other offset only in its epoch.
fn recovery_of(since: u64, epoch: &str, read: &Read) -> Recovery {
    let same_life = since == 0 || epoch == read.epoch;
    let starts_right = read.publications.first().is_none_or(|p| p.offset == since + 1);
    if same_life && read.complete {
        Recovery { recovered: true, truncated: false, publications: read.publications.clone() }
    } else if same_life && read.truncated && starts_right {
        Recovery { recovered: false, truncated: true, publications: read.publications.clone() }
    } else {
        Recovery { recovered: false, truncated: false, publications: Vec::new() }
    }
}

/// The read script's answer: `{offset, epoch, complete, truncated, id, data, from, ...}`.
fn parse_read(values: Vec<redis::Value>, oldest_first: bool) -> Option<Read> {
    let mut values = values.into_iter();
    let mut next = || values.next();
    let offset: u64 = redis::from_redis_value(next()?).ok()?;
    let epoch: String = redis::from_redis_value(next()?).ok()?;
    let complete: u8 = redis::from_redis_value(next()?).ok()?;
    let truncated: u8 = redis::from_redis_value(next()?).ok()?;
    let mut publications = Vec::new();
    while let Some(id) = next() {
        let offset: u64 = redis::from_redis_value(id).ok()?;
        let data: String = redis::from_redis_value(next()?).ok()?;
        let from: String = redis::from_redis_value(next()?).ok()?;
        let data = RawValue::from_string(data).ok()?;
        publications.push(Publication { offset, data, from: Some(from).filter(|f| !f.is_empty()) });
    }
    if !oldest_first {
        publications.reverse();
    }
    Some(Read { offset, epoch, complete: complete == 1, truncated: truncated == 1, publications })
}
