//! One function per method of the server API: parse the body, act on the hub, answer
//! `{"result": ...}`. None of them goes through the namespace policy (the caller is the server);
//! the hub's limits still hold (see `tether_hub::Hub::publish_json` and friends).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tether_hub::{validate_channel, Action, Affected, EngineStatus, Hub, HubError, Target};
use tether_proto::close::MAX_REASON_BYTES;

use super::error::ApiError;
use super::wire;

/// The methods there are, for the 404 that an unknown one gets before its body is read.
pub const METHODS: &[&str] = &[
    "publish",
    "broadcast",
    "send",
    "disconnect",
    "subscribe",
    "unsubscribe",
    "presence",
    "history",
    "channels",
    "info",
];

/// The most channels one `broadcast` may name (docs/server-api.md): each is a publish done on the
/// calling worker, and the answer has an entry per channel, so an unbounded list would hold a
/// worker for seconds, answer megabytes and could fill `max_channels` in one call.
pub const MAX_BROADCAST_CHANNELS: usize = 1000;

/// The close code of a `disconnect` without one, and its reason (docs/protocol.md's list).
pub const DISCONNECT_CODE: u16 = 4000;
pub const DISCONNECT_REASON: &str = "disconnected by server";

/// What the methods act on.
#[derive(Clone)]
pub struct Context {
    pub hub: Hub,
    /// When the server started, for `info`'s uptime.
    pub started: Instant,
}

/// Runs `method` (one of [`METHODS`]) on `body`; the answer's JSON text.
pub async fn call(context: &Context, method: &str, body: &[u8]) -> Result<String, ApiError> {
    let hub = &context.hub;
    match method {
        "publish" => publish(hub, parse(body)?).await,
        "broadcast" => broadcast(hub, parse(body)?).await,
        "send" => send(hub, parse(body)?).await,
        "disconnect" => disconnect(hub, parse(body)?).await,
        "subscribe" => subscribe(hub, parse(body)?).await,
        "unsubscribe" => unsubscribe(hub, parse(body)?).await,
        "presence" => presence(hub, parse(body)?).await,
        "history" => history(hub, parse(body)?).await,
        "channels" => channels(hub, parse(body)?),
        "info" => info(context, parse(body)?).await,
        other => {
            Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, "unknown_method", format!("no method {other:?}")))
        }
    }
}

/// The body as a method's arguments; an empty body is `{}` (so `info` needs none).
fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|error| ApiError::from_json(&error))
}

fn answer(result: impl Serialize) -> Result<String, ApiError> {
    Ok(serde_json::to_string(&wire::Answer { result }).expect("serializable"))
}

async fn publish(hub: &Hub, args: wire::Publish) -> Result<String, ApiError> {
    let published = hub.publish_json(&args.channel, &args.data).await?;
    answer(wire::Published { offset: published.offset, epoch: &published.epoch })
}

/// Publishes to each channel in turn; one channel's refusal does not stop the others, and each
/// gets its own entry, in the order given. A `data` too large for every channel is refused whole,
/// and so are more than [`MAX_BROADCAST_CHANNELS`] channels and a channel named twice (which
/// would publish the same data twice, surely not what the caller meant).
async fn broadcast(hub: &Hub, args: wire::Broadcast) -> Result<String, ApiError> {
    if args.channels.is_empty() {
        return Err(ApiError::bad_request("`channels` is empty"));
    }
    if args.channels.len() > MAX_BROADCAST_CHANNELS {
        return Err(ApiError::bad_request(format!(
            "`channels` has {} channels; a broadcast takes at most {MAX_BROADCAST_CHANNELS}",
            args.channels.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(args.channels.len());
    if let Some(twice) = args.channels.iter().find(|channel| !seen.insert(channel.as_str())) {
        let shown: String = twice.chars().take(64).collect();
        return Err(ApiError::bad_request(format!("`channels` names {shown:?} more than once")));
    }
    let limit = hub.config().max_data_bytes;
    if args.data.get().len() > limit {
        return Err(HubError::TooLarge(limit).into());
    }
    let mut responses = Vec::with_capacity(args.channels.len());
    for channel in &args.channels {
        responses.push(match hub.publish_json(channel, &args.data).await {
            Ok(published) => {
                wire::BroadcastResponse::Published { channel, offset: published.offset, epoch: published.epoch }
            }
            Err(error) => wire::BroadcastResponse::Failed { channel, error: ApiError::from(error).body() },
        });
    }
    answer(wire::Responses { responses })
}

async fn send(hub: &Hub, args: wire::Send) -> Result<String, ApiError> {
    hub.send_json(&args.connection, &args.data).await?;
    answer(serde_json::json!({}))
}

/// Whom a call acts on: a connection or a user's connections, on any node.
fn target(user: &Option<String>, connection: &Option<String>) -> Result<Target, ApiError> {
    match (user.as_deref(), connection.as_deref()) {
        (Some(""), None) | (None, Some("")) => Err(ApiError::bad_request("`user` or `connection` is empty")),
        (Some(user), None) => Ok(Target::User(user.to_owned())),
        (None, Some(connection)) => Ok(Target::Connection(connection.to_owned())),
        _ => Err(ApiError::bad_request("give exactly one of `user` and `connection`")),
    }
}

/// Closes the connection, or every connection of the user (one user may have several tabs
/// open), on whichever nodes they are. A user with no connection is not an error: 0 were closed.
async fn disconnect(hub: &Hub, args: wire::Disconnect) -> Result<String, ApiError> {
    let code = args.code.unwrap_or(DISCONNECT_CODE);
    // 1000 (a normal close) or an application's range; the others are the protocol's or reserved.
    if code != 1000 && !(3000..=4999).contains(&code) {
        return Err(ApiError::bad_request(format!("close code {code}: expected 1000 or 3000..=4999")));
    }
    let reason = args.reason.as_deref().unwrap_or(DISCONNECT_REASON);
    if reason.len() > MAX_REASON_BYTES {
        return Err(ApiError::bad_request(format!(
            "the reason is {} bytes; a Close frame holds at most {MAX_REASON_BYTES}",
            reason.len()
        )));
    }
    let target = target(&args.user, &args.connection)?;
    // Already closing counts as gone: the caller's view of it is out of date either way.
    let done = hub.act(&target, &Action::Disconnect { code, reason: reason.to_owned() }).await?;
    affected(done)
}

/// Subscribes the connection, or every connection of the user, server-side: each gets
/// `subscribed` and then the channel's messages.
async fn subscribe(hub: &Hub, args: wire::Subscription) -> Result<String, ApiError> {
    validate_channel(&args.channel)?;
    let target = target(&args.user, &args.connection)?;
    affected(hub.act(&target, &Action::Subscribe { channel: args.channel }).await?)
}

/// Unsubscribes the connection, or every connection of the user that is subscribed: each gets
/// `unsubscribed`. A user's connections that were not subscribed are not counted; one
/// connection that was not is 409 `not_subscribed`.
async fn unsubscribe(hub: &Hub, args: wire::Subscription) -> Result<String, ApiError> {
    validate_channel(&args.channel)?;
    let target = target(&args.user, &args.connection)?;
    affected(hub.act(&target, &Action::Unsubscribe { channel: args.channel }).await?)
}

/// The connections acted on, and those of a user it failed on with their error.
fn affected(done: Affected) -> Result<String, ApiError> {
    let failed = done
        .failed
        .into_iter()
        .map(|(connection, error)| wire::Failure { connection, error: ApiError::from(error).body() })
        .collect();
    answer(wire::Affected { connections: done.connections, failed })
}

async fn presence(hub: &Hub, args: wire::Presence) -> Result<String, ApiError> {
    validate_channel(&args.channel)?;
    let members = hub.presence(&args.channel).await?;
    let members = members
        .iter()
        .map(|member| wire::Member {
            connection_id: &member.connection_id,
            user: member.user.as_deref(),
            info: member.info.as_deref(),
        })
        .collect();
    answer(wire::Members { members })
}

/// The channel's history. With `epoch`, the answer is only given while the channel is still in
/// that epoch: offsets of another epoch (the channel was forgotten and started again) do not
/// name the same messages, so `since` would silently skip or repeat some (409 `epoch_mismatch`).
async fn history(hub: &Hub, args: wire::History) -> Result<String, ApiError> {
    validate_channel(&args.channel)?;
    let page = hub.history(&args.channel, args.since, args.limit).await?;
    if let Some(epoch) = args.epoch.as_deref().filter(|epoch| *epoch != page.epoch) {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "epoch_mismatch",
            format!("the channel's epoch is {:?}, not {epoch:?}: its offsets started again", page.epoch),
        ));
    }
    let publications = page
        .publications
        .iter()
        .map(|p| wire::Publication { offset: p.offset, data: &p.data, from: p.from.as_deref() })
        .collect();
    answer(wire::HistoryPage { offset: page.offset, epoch: &page.epoch, publications, truncated: page.truncated })
}

fn channels(hub: &Hub, args: wire::Channels) -> Result<String, ApiError> {
    let summaries = hub.channels(args.prefix.as_deref());
    let channels = summaries.iter().map(|c| wire::ChannelEntry { name: &c.name, subscribers: c.subscribers }).collect();
    answer(wire::ChannelList { channels })
}

/// This node's counts, and every live node: on the Redis engine from their heartbeats (503
/// `unavailable` while Redis cannot be reached), on the memory engine this one alone.
async fn info(context: &Context, _: wire::Info) -> Result<String, ApiError> {
    let hub = &context.hub;
    let nodes = hub.nodes().await?;
    let stats = hub.stats();
    let nodes = nodes
        .into_iter()
        .map(|node| wire::Node {
            name: node.name,
            connections: node.connections,
            users: node.users,
            uptime_secs: node.uptime_secs,
            version: node.version,
            this: node.this,
        })
        .collect();
    answer(wire::ServerInfo {
        uptime_secs: context.started.elapsed().as_secs(),
        connections: stats.connections,
        users: stats.users,
        channels: stats.channels,
        version: env!("CARGO_PKG_VERSION"),
        engine: match hub.engine_status() {
            EngineStatus::Memory => "memory",
            _ => "redis",
        },
        nodes,
    })
}
