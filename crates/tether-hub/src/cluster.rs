//! A hub as one node of several: built on the Redis engine ([`Hub::with_redis`]), what the
//! engine is doing ([`Hub::engine_status`]), and the live nodes ([`Hub::nodes`]). On the memory
//! engine there is one node, this one.

#[cfg(feature = "redis")]
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{EngineStatus, NodeInfo};
use crate::error::HubError;
use crate::hub::{Engine, Hub};
#[cfg(feature = "redis")]
use crate::redis::engine::RedisEngine;

impl Hub {
    /// A hub whose channels live in Redis, shared by every node with the same Redis and prefix.
    /// Starts the engine's tasks (so it needs a tokio runtime); a Redis that is down now is
    /// retried with backoff meanwhile. `Err` only for options that can never work (a bad URL).
    #[cfg(feature = "redis")]
    pub fn with_redis(
        config: crate::HubConfig,
        connections: tether_tokio::Registry,
        options: crate::redis::RedisOptions,
    ) -> Result<Self, HubError> {
        let engine = Arc::new(RedisEngine::new(options)?);
        let hub = Self::with_engine(config, connections, Engine::Redis(Arc::clone(&engine)));
        crate::redis::start(engine, Arc::downgrade(&hub.inner));
        Ok(hub)
    }

    /// Whether the channels live in Redis, and how that goes.
    pub fn engine_status(&self) -> EngineStatus {
        match &self.inner.engine {
            Engine::Memory => EngineStatus::Memory,
            #[cfg(feature = "redis")]
            Engine::Redis(engine) => engine.status(),
        }
    }

    /// Calls `observer` with the round trip of every publish script (Redis engine only; a
    /// metrics histogram, say). Set once: a later call, or one on the memory engine, returns false.
    pub fn on_redis_publish(&self, observer: impl Fn(Duration) + Send + Sync + 'static) -> bool {
        match &self.inner.engine {
            Engine::Memory => {
                let _ = observer;
                false
            }
            #[cfg(feature = "redis")]
            Engine::Redis(engine) => engine.set_publish_observer(Box::new(observer)),
        }
    }

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
