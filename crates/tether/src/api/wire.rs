//! The request bodies of the server API's methods and the answers they get, as serde shapes.
//! Unknown fields are refused (400): a misspelt `conection` must not turn a targeted call into
//! one that silently does something else.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::ErrorBody;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    pub channel: String,
    pub data: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broadcast {
    pub channels: Vec<String>,
    pub data: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    pub connection: String,
    pub data: Box<RawValue>,
}

/// Whom `disconnect`, `subscribe` and `unsubscribe` act on: exactly one of the two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {
    pub user: Option<String>,
    pub connection: Option<String>,
    pub code: Option<u16>,
    pub reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub user: Option<String>,
    pub connection: Option<String>,
    pub channel: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presence {
    pub channel: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    pub channel: String,
    pub limit: Option<usize>,
    pub since: Option<u64>,
    pub epoch: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    pub prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Info {}

/// Every successful answer: `{"result": ...}`.
#[derive(Serialize)]
pub struct Answer<T> {
    pub result: T,
}

#[derive(Serialize)]
pub struct Published<'a> {
    pub offset: u64,
    pub epoch: &'a str,
}

/// One channel of a `broadcast` answer: its offset and epoch, or why it was not published.
#[derive(Serialize)]
#[serde(untagged)]
pub enum BroadcastResponse<'a> {
    Published { channel: &'a str, offset: u64, epoch: String },
    Failed { channel: &'a str, error: ErrorBody },
}

#[derive(Serialize)]
pub struct Responses<'a> {
    pub responses: Vec<BroadcastResponse<'a>>,
}

/// How many connections a `disconnect`, `subscribe` or `unsubscribe` acted on; for a user, also
/// those of its connections it failed on and why (absent when none).
#[derive(Serialize)]
pub struct Affected {
    pub connections: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Failure>,
}

#[derive(Serialize)]
pub struct Failure {
    pub connection: String,
    pub error: ErrorBody,
}

#[derive(Serialize)]
pub struct Members<'a> {
    pub members: Vec<Member<'a>>,
}

/// A presence member. `user` and `info` are `null` when the connection has none (the token
/// protocol leaves them out; an API client is better served by a fixed shape).
#[derive(Serialize)]
pub struct Member<'a> {
    #[serde(rename = "connectionId")]
    pub connection_id: &'a str,
    pub user: Option<&'a str>,
    pub info: Option<&'a RawValue>,
}

#[derive(Serialize)]
pub struct HistoryPage<'a> {
    pub offset: u64,
    pub epoch: &'a str,
    pub publications: Vec<Publication<'a>>,
    pub truncated: bool,
}

/// A publication of a history answer; `from` is `null` for what the server published.
#[derive(Serialize)]
pub struct Publication<'a> {
    pub offset: u64,
    pub data: &'a RawValue,
    pub from: Option<&'a str>,
}

#[derive(Serialize)]
pub struct ChannelList<'a> {
    pub channels: Vec<ChannelEntry<'a>>,
}

#[derive(Serialize)]
pub struct ChannelEntry<'a> {
    pub name: &'a str,
    pub subscribers: usize,
}

/// `info`: this node's counts, the engine (`memory` or `redis`) and every live node.
#[derive(Serialize)]
pub struct ServerInfo {
    #[serde(rename = "uptimeSecs")]
    pub uptime_secs: u64,
    pub connections: usize,
    pub users: usize,
    pub channels: usize,
    pub version: &'static str,
    pub engine: &'static str,
    pub nodes: Vec<Node>,
}

/// A live node of `info` (from its heartbeat in Redis; on the memory engine, this one). Its keys
/// are snake_case as the engine's contract names them (`uptime_secs`), unlike the older
/// top-level `uptimeSecs`.
#[derive(Serialize)]
pub struct Node {
    pub name: String,
    pub connections: usize,
    pub users: usize,
    pub uptime_secs: u64,
    pub version: String,
    /// The node that answered.
    pub this: bool,
}
