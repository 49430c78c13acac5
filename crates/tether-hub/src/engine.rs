//! Which engine holds a hub's channels, as the rest of the server sees it: [`EngineStatus`] for
//! metrics, and the list of nodes ([`Hub::nodes`]) for the server API's `info`. The engines
//! themselves are `hub.rs` (memory) and `redis/`.

use crate::error::HubError;
use crate::hub::Hub;

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

impl Hub {
    /// The live nodes: this one alone on the memory engine (named `local`), every node that
    /// beat in the last 10 s on the Redis engine (`Err(Unavailable)` while Redis is down).
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, HubError> {
        #[cfg(feature = "redis")]
        if let Some(engine) = self.redis() {
            return self.redis_nodes(engine).await;
        }
        let stats = self.stats();
        Ok(vec![NodeInfo {
            name: "local".to_owned(),
            connections: stats.connections,
            users: stats.users,
            uptime_secs: self.inner.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            this: true,
        }])
    }
}
