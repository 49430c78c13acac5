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

    /// Names this node, as [`Hub::nodes`] shows it on the memory engine (`local` until named; a
    /// Redis node has the name of its [`crate::RedisOptions`]). Set once: false after.
    pub fn name_node(&self, name: &str) -> bool {
        self.inner.node_name.set(name.to_owned()).is_ok()
    }

    /// The live nodes: this one alone on the memory engine (named `local`), every node that
    /// beat in the last 10 s on the Redis engine (`Err(Unavailable)` while Redis is down).
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, HubError> {
        #[cfg(feature = "redis")]
        if let Some(engine) = self.redis() {
            return self.redis_nodes(engine).await;
        }
        Ok(vec![self.this_node()])
    }

    /// This node, from its own counts (what [`Hub::nodes`] lists for it).
    pub fn this_node(&self) -> NodeInfo {
        let stats = self.stats();
        #[cfg(feature = "redis")]
        let redis_name = self.redis().map(|engine| engine.options.node_name.as_str());
        #[cfg(not(feature = "redis"))]
        let redis_name = None;
        let name = redis_name.or(self.inner.node_name.get().map(String::as_str)).unwrap_or("local");
        NodeInfo {
            name: name.to_owned(),
            connections: stats.connections,
            users: stats.users,
            uptime_secs: self.inner.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            this: true,
        }
    }
}

#[cfg(feature = "redis")]
impl Drop for crate::hub::HubInner {
    fn drop(&mut self) {
        // The engine's reader would otherwise wait on an idle connection for good.
        if let Engine::Redis(engine) = &self.engine {
            engine.pubsub.shut_down();
        }
    }
}
