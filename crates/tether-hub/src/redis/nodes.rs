//! The nodes of a Redis-backed cluster: each beats every [`HEARTBEAT`] into a hash (its name,
//! connections, users, uptime), the list of live nodes is read from it, and a node asks the others
//! to act on connections it does not hold (a direct message, a disconnect, a server-side
//! subscribe of a user's connections) by publishing a [`Command`] on the control channel: Redis
//! answers with how many nodes received it, so the asking node knows how many replies to wait
//! for, and waits at most [`REPLY_TIMEOUT`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::engine::RedisEngine;
use super::envelope::{ActionWire, Command, FailedWire, Heartbeat, Op, Reply};
use crate::control::{Action, Affected, Target};
use crate::engine::NodeInfo;
use crate::error::HubError;
use crate::hub::{Hub, HubInner};

/// How often a node says it is alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node whose last heartbeat is older than this is not listed (and is forgotten).
const NODE_TTL: Duration = Duration::from_secs(10);
/// How long a node waits for the others' replies to a command.
/// Longer than a server-side subscribe takes at worst (a SUBSCRIBE and a read, 2 s each).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

impl RedisEngine {
    pub(crate) fn node_channel(&self, node_id: &str) -> String {
        self.key(&format!("node:{node_id}"))
    }

    /// Publishes `op` to every other node and gathers their replies; `.1` is false when some
    /// node did not answer in time.
    async fn ask_others(&self, op: Op) -> Result<(Vec<Reply>, bool), HubError> {
        if !self.pubsub.is_up() {
            // The replies would come on this node's pub/sub connection.
            return Err(HubError::Unavailable("the channel engine (Redis) is unavailable: reconnecting".into()));
        }
        let req = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (sender, mut replies) = tokio::sync::mpsc::unbounded_channel();
        self.waiting.lock().expect("not poisoned").insert(req, sender);
        // Removes the entry however this ends, a caller that gave up waiting included.
        let _waiting = Waiting { engine: self, req };
        let command = serde_json::to_string(&Command { node: self.node_id.clone(), req, op }).expect("serializable");
        let mut connection = self.connection();
        let receivers: usize = self
            .call("command", redis::cmd("PUBLISH").arg(self.key("control")).arg(command).query_async(&mut connection))
            .await?;
        // Every node that received it, this one included (it skips its own).
        let asked = receivers.saturating_sub(1);
        let mut gathered = Vec::with_capacity(asked);
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        while gathered.len() < asked {
            match tokio::time::timeout_at(deadline, replies.recv()).await {
                Ok(Some(reply)) => gathered.push(reply),
                _ => {
                    tracing::warn!(answered = gathered.len(), asked, "some nodes did not answer a command in time");
                    return Ok((gathered, false));
                }
            }
        }
        Ok((gathered, true))
    }

    /// A reply on this node's channel, for the command waiting for it.
    pub(crate) fn reply_arrived(&self, payload: &str) {
        let Ok(reply) = serde_json::from_str::<Reply>(payload) else { return };
        if let Some(waiting) = self.waiting.lock().expect("not poisoned").get(&reply.req) {
            let _ = waiting.send(reply);
        }
    }

    /// Beats once: this node's heartbeat into the nodes hash and its time (Redis's) into the
    /// seen set, forgetting nodes that stopped.
    async fn beat(&self, hub: &Hub) -> Result<(), HubError> {
        let stats = hub.stats();
        let heartbeat = Heartbeat {
            name: self.options.node_name.clone(),
            connections: stats.connections,
            users: stats.users,
            uptime_secs: self.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let heartbeat = serde_json::to_string(&heartbeat).expect("serializable");
        let mut invocation = self.scripts.nodes.prepare_invoke();
        invocation
            .key(self.key("nodes"))
            .key(self.key("nodes-seen"))
            .arg(NODE_TTL.as_millis() as u64)
            .arg(&self.node_id)
            .arg(heartbeat);
        let mut connection = self.connection();
        let _: Vec<(String, String)> = self.call("heartbeat", invocation.invoke_async(&mut connection)).await?;
        Ok(())
    }
}

impl Hub {
    /// The live nodes, from their heartbeats.
    pub(crate) async fn redis_nodes(&self, engine: &RedisEngine) -> Result<Vec<NodeInfo>, HubError> {
        let mut invocation = engine.scripts.nodes.prepare_invoke();
        invocation.key(engine.key("nodes")).key(engine.key("nodes-seen")).arg(NODE_TTL.as_millis() as u64);
        let mut connection = engine.connection();
        let pairs: Vec<(String, String)> = engine.call("nodes", invocation.invoke_async(&mut connection)).await?;
        let mut nodes: Vec<NodeInfo> = pairs
            .into_iter()
            .filter_map(|(id, heartbeat)| {
                let heartbeat: Heartbeat = serde_json::from_str(&heartbeat).ok()?;
                Some(NodeInfo {
                    name: heartbeat.name,
                    connections: heartbeat.connections,
                    users: heartbeat.users,
                    uptime_secs: heartbeat.uptime_secs,
                    version: heartbeat.version,
                    this: id == engine.node_id,
                })
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    /// Sends a `direct` frame to a connection on another node. `Err(NotFound)` if none has it.
    pub(crate) async fn redis_send(&self, engine: &RedisEngine, to: &str, text: String) -> Result<(), HubError> {
        let (replies, all) = engine.ask_others(Op::Send { to: to.to_owned(), text }).await?;
        if replies.iter().any(|reply| reply.found) {
            Ok(())
        } else if all {
            Err(HubError::NotFound(to.to_owned()))
        } else {
            Err(HubError::Unavailable("some nodes did not answer in time".into()))
        }
    }

    /// Runs `action` on `target` on every other node; their replies, merged.
    pub(crate) async fn redis_act(
        &self,
        engine: &RedisEngine,
        target: &Target,
        action: &Action,
    ) -> Result<Affected, HubError> {
        let (user, connection) = match target {
            Target::User(user) => (Some(user.clone()), None),
            Target::Connection(id) => (None, Some(id.clone())),
        };
        let action_wire = match action {
            Action::Disconnect { code, reason } => ActionWire::Disconnect { code: *code, reason: reason.clone() },
            Action::Subscribe { channel } => ActionWire::Subscribe { channel: channel.clone() },
            Action::Unsubscribe { channel } => ActionWire::Unsubscribe { channel: channel.clone() },
        };
        let (replies, all) = engine.ask_others(Op::Act { user, connection, action: action_wire }).await?;
        let settled = matches!(target, Target::Connection(_)) && replies.iter().any(|reply| reply.found);
        if !all && !settled {
            return Err(HubError::Unavailable("some nodes did not answer in time".into()));
        }
        let mut affected = Affected::default();
        for reply in replies {
            if let Target::Connection(id) = target {
                if !reply.found {
                    continue;
                }
                if let Some(failed) = reply.failed.first() {
                    return Err(HubError::from_wire(&failed.code, &failed.message, subject(id, action, &failed.code)));
                }
                affected.found = true;
            }
            affected.connections += reply.connections;
            affected.failed.extend(reply.failed.into_iter().map(|failed| {
                let error = HubError::from_wire(
                    &failed.code,
                    &failed.message,
                    subject(&failed.connection, action, &failed.code),
                );
                (failed.connection, error)
            }));
        }
        Ok(affected)
    }

    /// A command from another node: runs it here and replies to that node.
    pub(crate) fn redis_command(&self, engine: &RedisEngine, payload: &str) {
        let Ok(command) = serde_json::from_str::<Command>(payload) else { return };
        if command.node == engine.node_id {
            return;
        }
        let hub = self.clone();
        tokio::spawn(async move {
            let Some(engine) = hub.redis().cloned() else { return };
            let reply = match command.op {
                Op::Send { to, text } => {
                    let found = hub.connection(&to).is_some_and(|conn| conn.send_text(text).is_ok());
                    Reply { req: command.req, found, connections: usize::from(found), failed: Vec::new() }
                }
                Op::Act { user, connection, action } => {
                    let target = match (user, connection) {
                        (Some(user), _) => Target::User(user),
                        (None, Some(id)) => Target::Connection(id),
                        (None, None) => return,
                    };
                    let action = match action {
                        ActionWire::Disconnect { code, reason } => Action::Disconnect { code, reason },
                        ActionWire::Subscribe { channel } => Action::Subscribe { channel },
                        ActionWire::Unsubscribe { channel } => Action::Unsubscribe { channel },
                    };
                    let done = hub.act_locally(&target, &action).await;
                    let failed = done
                        .failed
                        .into_iter()
                        .map(|(connection, error)| FailedWire {
                            connection,
                            code: error.code().to_owned(),
                            message: error.to_string(),
                        })
                        .collect();
                    Reply { req: command.req, found: done.found, connections: done.connections, failed }
                }
            };
            let reply = serde_json::to_string(&reply).expect("serializable");
            let mut connection = engine.connection();
            let channel = engine.node_channel(&command.node);
            let _: Result<(), _> = engine
                .call("command reply", redis::cmd("PUBLISH").arg(channel).arg(reply).query_async(&mut connection))
                .await;
        });
    }
}

/// What a remote error names: the connection for `not_found`, else the channel of a
/// subscription error.
fn subject<'a>(connection: &'a str, action: &'a Action, code: &str) -> &'a str {
    match action {
        Action::Unsubscribe { channel } | Action::Subscribe { channel } if code != "not_found" => channel,
        _ => connection,
    }
}

/// An entry of the `waiting` map, removed when dropped.
struct Waiting<'a> {
    engine: &'a RedisEngine,
    req: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.engine.waiting.lock().expect("not poisoned").remove(&self.req);
    }
}

/// Beats and keeps presence entries alive for as long as the hub lives.
pub(crate) async fn run(engine: Arc<RedisEngine>, hub: Weak<HubInner>) {
    let refresh_every = (engine.options.presence_ttl / 3).max(Duration::from_millis(500));
    let mut last_refresh = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(HEARTBEAT.min(refresh_every));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = None::<tokio::time::Instant>;
    loop {
        ticks.tick().await;
        let Some(inner) = hub.upgrade() else { return };
        let hub = Hub { inner };
        let now = tokio::time::Instant::now();
        if last_beat.is_none_or(|at| now - at >= HEARTBEAT) {
            last_beat = Some(now);
            let _ = engine.beat(&hub).await;
            engine.pubsub.check().await;
        }
        if now - last_refresh >= refresh_every {
            last_refresh = now;
            hub.redis_refresh_presence(&engine).await;
        }
    }
}
