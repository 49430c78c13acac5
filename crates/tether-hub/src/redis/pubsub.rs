//! The node's one pub/sub connection to Redis, multiplexed over every channel it has subscribers
//! in, plus the control channel (commands to every node) and its own node channel (replies).
//!
//! A channel is subscribed in Redis while at least one local join holds it ([`PubSub::acquire`],
//! [`PubSub::release`]); both go through one async lock, so a SUBSCRIBE is confirmed before any
//! join that relies on it reads the history, and an UNSUBSCRIBE racing a new join cannot leave the
//! node deaf to a channel it has subscribers in.
//!
//! The reader ([`run`]) reconnects with backoff (250 ms doubling to 5 s, with jitter) when the
//! connection drops, subscribes again to everything wanted, and then fills in the publications a
//! channel's subscribers missed meanwhile (`channels.rs`), before it reads new ones: live delivery
//! goes on in order, and what Redis still holds is not lost to a reconnect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use super::{RedisEngine, CALL_TIMEOUT};
use crate::error::HubError;
use crate::hub::HubInner;

/// The live connection's subscribing half and what the node wants to hear.
#[derive(Default)]
pub(crate) struct PubSub {
    state: tokio::sync::Mutex<State>,
    up: AtomicBool,
}

#[derive(Default)]
struct State {
    /// `None` while disconnected.
    sink: Option<redis::aio::PubSubSink>,
    /// Local joins holding each channel's pub/sub channel.
    wanted: HashMap<String, usize>,
}

impl PubSub {
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Holds `channel` once more, subscribing in Redis if it is the first hold. `Err(Unavailable)`
    /// (and nothing held) while the connection is down.
    pub(crate) async fn acquire(&self, engine: &RedisEngine, channel: &str) -> Result<(), HubError> {
        let mut state = self.state.lock().await;
        let State { sink, wanted } = &mut *state;
        let Some(sink) = sink.as_mut() else {
            return Err(HubError::Unavailable("the channel engine (Redis) is unavailable: reconnecting".into()));
        };
        let held = wanted.get(channel).copied().unwrap_or(0);
        if held == 0 {
            match tokio::time::timeout(CALL_TIMEOUT, sink.subscribe(channel)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(engine.failed("subscribe", &error.to_string(), true)),
                Err(_) => return Err(engine.failed("subscribe", "no answer in time", true)),
            }
        }
        wanted.insert(channel.to_owned(), held + 1);
        Ok(())
    }

    /// Lets go of one hold of `channel`; the last one unsubscribes in Redis.
    pub(crate) async fn release(&self, channel: &str) {
        let mut state = self.state.lock().await;
        let State { sink, wanted } = &mut *state;
        let Some(held) = wanted.get_mut(channel) else { return };
        *held -= 1;
        if *held > 0 {
            return;
        }
        wanted.remove(channel);
        if let Some(sink) = sink.as_mut() {
            // A failure leaves a subscription Redis forgets at the next reconnect; messages for a
            // channel without local subscribers are dropped on arrival meanwhile.
            let _ = tokio::time::timeout(CALL_TIMEOUT, sink.unsubscribe(channel)).await;
        }
    }
}

/// Reads the pub/sub connection for as long as the hub lives, reconnecting when it drops.
pub(crate) async fn run(engine: Arc<RedisEngine>, hub: Weak<HubInner>) {
    let mut backoff = Duration::from_millis(250);
    let mut logged_down = false;
    loop {
        if hub.strong_count() == 0 {
            return;
        }
        match connect(&engine).await {
            Ok(mut stream) => {
                backoff = Duration::from_millis(250);
                if logged_down {
                    tracing::info!("redis pub/sub connected again");
                }
                engine.pubsub.up.store(true, Ordering::Relaxed);
                if let Some(inner) = hub.upgrade() {
                    crate::hub::Hub { inner }.redis_fill_gaps().await;
                }
                while let Some(message) = stream.next().await {
                    let Some(inner) = hub.upgrade() else { return };
                    let hub = crate::hub::Hub { inner };
                    dispatch(&engine, &hub, &message);
                }
                engine.pubsub.up.store(false, Ordering::Relaxed);
                engine.pubsub.state.lock().await.sink = None;
                engine.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("redis pub/sub connection lost; reconnecting");
                logged_down = true;
            }
            Err(error) => {
                engine.pubsub.up.store(false, Ordering::Relaxed);
                engine.errors.fetch_add(1, Ordering::Relaxed);
                if !logged_down {
                    tracing::warn!(%error, "redis pub/sub cannot connect; retrying with backoff up to 5 s");
                    logged_down = true;
                }
            }
        }
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// A fresh pub/sub connection subscribed to everything wanted; its sink is left in the state.
async fn connect(engine: &RedisEngine) -> Result<redis::aio::PubSubStream, String> {
    let pubsub = tokio::time::timeout(CALL_TIMEOUT, engine.client.get_async_pubsub())
        .await
        .map_err(|_| "no answer in time".to_owned())?
        .map_err(|error| error.to_string())?;
    let (mut sink, stream) = pubsub.split();
    let mut state = engine.pubsub.state.lock().await;
    let mut channels = vec![engine.key("control"), engine.node_channel(&engine.node_id)];
    channels.extend(state.wanted.keys().cloned());
    for chunk in channels.chunks(512) {
        tokio::time::timeout(CALL_TIMEOUT, sink.subscribe(chunk))
            .await
            .map_err(|_| "no answer in time".to_owned())?
            .map_err(|error| error.to_string())?;
    }
    state.sink = Some(sink);
    Ok(stream)
}

fn dispatch(engine: &RedisEngine, hub: &crate::hub::Hub, message: &redis::Msg) {
    let name = message.get_channel_name();
    let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else { return };
    if let Some(channel) = engine.channel_of(name) {
        hub.redis_deliver(channel, payload);
    } else if name == engine.key("control") {
        hub.redis_command(engine, payload);
    } else {
        engine.reply_arrived(payload);
    }
}

/// `base` less up to a quarter, at random: nodes that lost Redis together do not all come back
/// in the same millisecond.
fn jittered(base: Duration) -> Duration {
    let mut random = [0u8; 2];
    let _ = getrandom::fill(&mut random);
    let fraction = f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX);
    base.mul_f64(1.0 - 0.25 * fraction)
}
