//! Presence on the Redis engine: a hash per channel (connection id -> its user and info) and a
//! sorted set of each entry's expiry, since Redis 7.0 has no expiry per hash field. The node that
//! holds a connection keeps its entries alive every third of `presence_ttl`; a read drops the
//! entries whose node stopped (it crashed), so they are gone within the TTL. Expiries are counted
//! on Redis's clock (`scripts.rs`), so the nodes' clocks need not agree. Join and leave events go
//! to every node's subscribers through the channel's pub/sub channel.
//!
//! Every presence write of a node goes through one queue ([`PresenceWriter`]) in the order the
//! channel's lock saw them: a join, its leave and a refresh reach Redis in that order, so a quick
//! subscribe and unsubscribe leaves no ghost member and nobody gets `leave` before `join`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tether_tokio::Conn;

use super::engine::RedisEngine;
use super::envelope::ChannelEvent;
use super::writes::Write;
use crate::channel::{Channel, Member};
use crate::error::HubError;
use crate::hub::Hub;
use crate::wire;

/// A member as kept in the presence hash.
#[derive(Serialize, Deserialize)]
struct MemberWire<'a> {
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    user: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    info: Option<&'a RawValue>,
}

/// Makes the writes in order, for as long as the engine lives.
pub(crate) async fn run(engine: Arc<RedisEngine>, mut writes: tokio::sync::mpsc::Receiver<Write>) {
    let ttl_ms = engine.options.presence_ttl.as_millis() as u64;
    while let Some(write) = writes.recv().await {
        let mut connection = engine.connection();
        let _: Result<(), HubError> = match write {
            Write::Keep { channel, members } => {
                let mut invocation = engine.scripts.presence_keep.prepare_invoke();
                invocation
                    .key(engine.channel_key("presence", &channel))
                    .key(engine.channel_key("presence-exp", &channel))
                    .arg(ttl_ms);
                for (id, member) in &members {
                    invocation.arg(id).arg(member);
                }
                engine.call("presence", invocation.invoke_async::<()>(&mut connection)).await
            }
            Write::Remove { channel, id } => {
                let mut pipe = redis::pipe();
                pipe.hdel(engine.channel_key("presence", &channel), &id).ignore();
                pipe.zrem(engine.channel_key("presence-exp", &channel), &id).ignore();
                engine.call("presence", pipe.query_async::<()>(&mut connection)).await
            }
            Write::Event { channel, payload } => {
                let publish = redis::cmd("PUBLISH").arg(engine.channel_key("ch", &channel)).arg(payload).to_owned();
                engine.call("presence event", publish.query_async::<()>(&mut connection)).await
            }
        };
    }
}

impl RedisEngine {
    /// Queues a presence write; never waits (a full queue drops it, counted).
    pub(crate) fn write_presence(&self, write: Write) {
        if self.presence.0.try_send(write).is_err() {
            self.failed("presence", "the presence queue is full", false);
        }
    }
}

impl Hub {
    /// Queues, under the channel's lock (which orders them), the presence writes of `conn`
    /// joining (`info`) or leaving the channel.
    pub(crate) fn redis_announce(
        &self,
        engine: &RedisEngine,
        channel: &Channel,
        conn: &Conn,
        info: Option<&RawValue>,
        kind: &'static str,
    ) {
        let name = channel.name();
        let policy = self.config().namespaces.policy_for(name);
        if policy.presence {
            let id = conn.id().to_owned();
            engine.write_presence(match kind {
                "join" => Write::Keep { channel: name.to_owned(), members: vec![(id, member_json(conn.user(), info))] },
                _ => Write::Remove { channel: name.to_owned(), id },
            });
        }
        if policy.join_leave {
            let event = wire::Presence {
                kind,
                channel: name,
                connection_id: conn.id(),
                user: conn.user(),
                info: info.filter(|_| kind == "join"),
            };
            let payload = ChannelEvent::presence(conn.id(), &serde_json::to_string(&event).expect("serializable"));
            engine.write_presence(Write::Event { channel: name.to_owned(), payload });
        }
    }

    /// Replaces the presence info of a member already in the channel (a subscribe again).
    pub(crate) fn redis_update_member(
        &self,
        engine: &RedisEngine,
        channel: &str,
        conn: &Conn,
        info: Option<&RawValue>,
    ) {
        if self.config().namespaces.policy_for(channel).presence {
            let members = vec![(conn.id().to_owned(), member_json(conn.user(), info))];
            engine.write_presence(Write::Keep { channel: channel.to_owned(), members });
        }
    }

    /// The channel's members on every node: Redis's, and this node's own (whose entries may
    /// still be on their way to Redis).
    pub(crate) async fn redis_presence(&self, engine: &RedisEngine, channel: &str) -> Result<Vec<Member>, HubError> {
        let mut invocation = engine.scripts.presence.prepare_invoke();
        invocation.key(engine.channel_key("presence", channel)).key(engine.channel_key("presence-exp", channel));
        let mut connection = engine.connection();
        let pairs: Vec<(String, String)> = engine.call("presence", invocation.invoke_async(&mut connection)).await?;
        let mut members: Vec<Member> = self
            .existing_channel(channel)
            .map(|handle| handle.lock().expect("not poisoned").live_members())
            .unwrap_or_default();
        for (id, member) in &pairs {
            if members.iter().any(|m| &m.connection_id == id) {
                continue;
            }
            let Ok(member) = serde_json::from_str::<MemberWire<'_>>(member) else { continue };
            members.push(Member {
                connection_id: id.clone(),
                user: member.user.map(Into::into),
                info: member.info.map(ToOwned::to_owned),
            });
        }
        members.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        Ok(members)
    }

    /// Keeps this node's members of every presence channel alive in Redis for another TTL, and
    /// the meta (the epoch) of every channel it has subscribers in, so a channel in use keeps its
    /// epoch however quiet it is.
    pub(crate) async fn redis_refresh_presence(&self, engine: &RedisEngine) {
        let handles: Vec<_> = self.inner.channels.lock().expect("not poisoned").values().cloned().collect();
        let mut metas = Vec::new();
        for handle in handles {
            let channel = handle.lock().expect("not poisoned");
            let members = channel.live_members();
            if members.is_empty() {
                continue;
            }
            metas.push(engine.channel_key("meta", channel.name()));
            if !self.config().namespaces.policy_for(channel.name()).presence {
                continue;
            }
            let members = members
                .iter()
                .map(|member| {
                    (member.connection_id.clone(), member_json(member.user.as_deref(), member.info.as_deref()))
                })
                .collect();
            // Queued under the channel's lock, after any join or leave it saw.
            engine.write_presence(Write::Keep { channel: channel.name().to_owned(), members });
        }
        let seconds = self.config().history_ttl.max(super::channels::META_TTL_MIN).as_secs() as i64;
        for chunk in metas.chunks(1000) {
            let mut pipe = redis::pipe();
            for meta in chunk {
                pipe.expire(meta, seconds).ignore();
            }
            let mut connection = engine.connection();
            let _: Result<(), HubError> = engine.call("meta refresh", pipe.query_async::<()>(&mut connection)).await;
        }
    }
}

fn member_json(user: Option<&str>, info: Option<&RawValue>) -> String {
    serde_json::to_string(&MemberWire { user: user.map(Into::into), info }).expect("serializable")
}
