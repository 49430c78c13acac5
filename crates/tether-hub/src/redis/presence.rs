//! Presence on the Redis engine: a hash per channel (connection id -> its user and info) and a
//! sorted set of each entry's expiry, since Redis 7.0 has no expiry per hash field. The node that
//! holds a connection refreshes its entries every third of `presence_ttl`; a read drops the
//! entries whose node stopped (it crashed), so they are gone within the TTL. Join and leave events
//! go to every node's subscribers through the channel's pub/sub channel.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tether_tokio::Conn;

use super::engine::{now_ms, RedisEngine};
use super::envelope::ChannelEvent;
use crate::channel::Member;
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

impl Hub {
    /// Tells the channel's other members, through Redis, that `conn` joined or left, and keeps
    /// its presence entry (in the background: the caller answers without waiting for Redis).
    pub(crate) fn redis_announce(
        &self,
        engine: &Arc<RedisEngine>,
        conn: &Conn,
        channel: &str,
        info: Option<&RawValue>,
        kind: &'static str,
    ) {
        let policy = self.config().namespaces.policy_for(channel);
        let (announce, presence) = (policy.join_leave, policy.presence);
        if !announce && !presence {
            return;
        }
        let event = wire::Presence {
            kind,
            channel,
            connection_id: conn.id(),
            user: conn.user(),
            info: info.filter(|_| kind == "join"),
        };
        let event = ChannelEvent::presence(conn.id(), &serde_json::to_string(&event).expect("serializable"));
        let member =
            serde_json::to_string(&MemberWire { user: conn.user().map(Into::into), info }).expect("serializable");
        let (engine, id, channel) = (Arc::clone(engine), conn.id().to_owned(), channel.to_owned());
        tokio::spawn(async move {
            let mut pipe = redis::pipe();
            let (members, expiries) =
                (engine.channel_key("presence", &channel), engine.channel_key("presence-exp", &channel));
            if presence && kind == "join" {
                let ttl = engine.options.presence_ttl;
                pipe.hset(&members, &id, member).ignore();
                pipe.zadd(&expiries, &id, now_ms() + ttl.as_millis() as u64).ignore();
                pipe.expire(&members, ttl.as_secs() as i64 + 1).ignore();
                pipe.expire(&expiries, ttl.as_secs() as i64 + 1).ignore();
            } else if presence {
                pipe.hdel(&members, &id).ignore();
                pipe.zrem(&expiries, &id).ignore();
            }
            if announce {
                pipe.publish(engine.channel_key("ch", &channel), event).ignore();
            }
            let mut connection = engine.connection();
            let _: Result<(), _> = engine.call("presence", pipe.query_async::<()>(&mut connection)).await;
        });
    }

    pub(crate) async fn redis_presence(&self, engine: &RedisEngine, channel: &str) -> Result<Vec<Member>, HubError> {
        let mut invocation = engine.scripts.presence.prepare_invoke();
        invocation
            .key(engine.channel_key("presence", channel))
            .key(engine.channel_key("presence-exp", channel))
            .arg(now_ms());
        let mut connection = engine.connection();
        let pairs: Vec<(String, String)> = engine.call("presence", invocation.invoke_async(&mut connection)).await?;
        let mut members: Vec<Member> = pairs
            .iter()
            .filter_map(|(id, member)| {
                let member: MemberWire<'_> = serde_json::from_str(member).ok()?;
                Some(Member {
                    connection_id: id.clone(),
                    user: member.user.map(Into::into),
                    info: member.info.map(ToOwned::to_owned),
                })
            })
            .collect();
        members.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        Ok(members)
    }

    /// Keeps this node's members of every presence channel alive in Redis for another TTL.
    pub(crate) async fn redis_refresh_presence(&self, engine: &RedisEngine) {
        let handles: Vec<_> = self.inner.channels.lock().expect("not poisoned").values().cloned().collect();
        let ttl = engine.options.presence_ttl;
        let expiry = now_ms() + ttl.as_millis() as u64;
        let mut pipe = redis::pipe();
        let mut queued = 0;
        for handle in handles {
            let (name, members) = {
                let channel = handle.lock().expect("not poisoned");
                if !self.config().namespaces.policy_for(channel.name()).presence {
                    continue;
                }
                (channel.name().to_owned(), channel.members())
            };
            if members.is_empty() {
                continue;
            }
            let (hash, set) = (engine.channel_key("presence", &name), engine.channel_key("presence-exp", &name));
            for member in &members {
                let wire = MemberWire { user: member.user.as_deref().map(Into::into), info: member.info.as_deref() };
                pipe.hset(&hash, &member.connection_id, serde_json::to_string(&wire).expect("serializable")).ignore();
                pipe.zadd(&set, &member.connection_id, expiry).ignore();
            }
            pipe.expire(&hash, ttl.as_secs() as i64 + 1).ignore();
            pipe.expire(&set, ttl.as_secs() as i64 + 1).ignore();
            queued += members.len();
            if queued > 10_000 {
                let mut connection = engine.connection();
                let _: Result<(), _> = engine.call("presence refresh", pipe.query_async::<()>(&mut connection)).await;
                pipe = redis::pipe();
                queued = 0;
            }
        }
        if queued > 0 {
            let mut connection = engine.connection();
            let _: Result<(), _> = engine.call("presence refresh", pipe.query_async::<()>(&mut connection)).await;
        }
    }
}
