//! Which engine holds a hub's channels, as the rest of the server sees it: [`EngineStatus`] for
//! metrics, and [`NodeInfo`] for the server API's `info` (`cluster.rs` answers both). The engines
//! themselves are `hub.rs` (memory) and `redis/`.

/// What the engine is doing, for metrics and the admin page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineStatus {
    /// Channels live in this process only.
    Memory,
    /// Channels live in Redis.
    Redis {
        /// Both connections (commands and pub/sub) work now.
        up: bool,
        /// Redis calls that failed or timed out since the start.
        errors: u64,
    },
}

/// A live node, as the server API's `info` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeInfo {
    /// Its `node_name`.
    pub name: String,
    /// Its open token-protocol connections.
    pub connections: usize,
    /// Distinct users among them.
    pub users: usize,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// Its Tether version.
    pub version: String,
    /// Whether it is the node answering.
    pub this: bool,
}
