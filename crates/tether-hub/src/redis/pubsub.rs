//! The node's one pub/sub connection to Redis, multiplexed over every channel it has subscribers
//! in (`subscriptions.rs`), plus the control channel (commands to every node) and its own node
//! channel (replies).
//!
//! The reader ([`run`]) reconnects with backoff (250 ms doubling to 5 s, with jitter) when the
//! connection drops, subscribes again to everything wanted, and then fills in the publications a
//! channel's subscribers missed meanwhile (`channels.rs`), before it reads new ones: live delivery
//! goes on in order, and what Redis still holds is not lost to a reconnect.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use super::engine::{RedisEngine, CALL_TIMEOUT};
use crate::hub::HubInner;

/// Reads the pub/sub connection for as long as the hub lives, reconnecting when it drops.
pub(crate) async fn run(engine: Arc<RedisEngine>, hub: Weak<HubInner>) {
    let mut backoff = Duration::from_millis(250);
    let mut logged_down = false;
    loop {
        if hub.strong_count() == 0 {
            return;
        }
        match connect(&engine).await {
            Ok((mut stream, generation)) => {
                backoff = Duration::from_millis(250);
                if logged_down {
                    tracing::info!("redis pub/sub connected again");
                }
                engine.pubsub.up.store(true, Ordering::Relaxed);
                if let Some(inner) = hub.upgrade() {
                    crate::hub::Hub { inner }.redis_fill_gaps().await;
                }
                loop {
                    let message = tokio::select! {
                        message = stream.next() => message,
                        () = engine.pubsub.broken.notified() => {
                            if engine.pubsub.is_broken(u64::MAX) {
                                return;
                            }
                            if !engine.pubsub.is_broken(generation) {
                                continue; // About a connection before this one.
                            }
                            None
                        }
                    };
                    let Some(message) = message else { break };
                    let Some(inner) = hub.upgrade() else { return };
                    let hub = crate::hub::Hub { inner };
                    dispatch(&engine, &hub, &message);
                }
                engine.pubsub.up.store(false, Ordering::Relaxed);
                {
                    let mut state = engine.pubsub.state.lock().await;
                    if state.generation == generation {
                        state.sink = None;
                    }
                }
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
async fn connect(engine: &RedisEngine) -> Result<(redis::aio::PubSubStream, u64), String> {
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
    state.generation += 1;
    Ok((stream, state.generation))
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
