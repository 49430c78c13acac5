//! The server's open connections: the public [`Registry`] of listener-style connections by id, and
//! the [`Lifecycle`] every connection task shares with the accept loop (the registry, the count of
//! open sockets, the shutdown flag and the settings a connection runs with).
//!
//! This is the leaf the rest of the server builds on: a connection task needs these and nothing of
//! the handshake, so a route can start one without knowing the server's other parts.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tether_proto::CloseCode;
use tokio::sync::watch;

use super::config::ServerConfig;
use super::stats::ServerStats;
use crate::conn::Conn;
use crate::driver::DriverSettings;
use crate::info::ConnId;
use crate::websocket::SHUTDOWN_REASON;

/// The open listener-style connections of a server, by id.
///
/// A cheap handle (an `Arc` inside): clones see the same connections. [`crate::Server::registry`]
/// gives it before the server is bound, so an application can keep it from the start; the server
/// adds each connection once its handshake is done and removes it when it closes. Connections of
/// [`crate::Server::route_stream`] routes are not in it (their handler owns them).
#[derive(Clone, Default)]
pub struct Registry {
    connections: Arc<Mutex<HashMap<ConnId, Conn>>>,
}

impl Registry {
    /// The open connection whose [`Conn::id`] is `id`.
    pub fn get(&self, id: &str) -> Option<Conn> {
        self.get_by_id(ConnId::parse(id)?)
    }

    /// The open connection with this id. (Crate-only while [`ConnId`] is.)
    pub(crate) fn get_by_id(&self, id: ConnId) -> Option<Conn> {
        self.lock().get(&id).cloned()
    }

    /// All open connections, as a snapshot: the lock is not held while the caller uses them.
    pub fn connections(&self) -> Vec<Conn> {
        self.lock().values().cloned().collect()
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub(crate) fn insert(&self, conn: &Conn) {
        self.lock().insert(conn.conn_id(), conn.clone());
    }

    /// Removes the connection and, under the same lock, runs `retire` (which moves its counts into
    /// its route's totals): a reader walking the open connections under that lock
    /// ([`Registry::walk`]) sees the counts exactly once, live or retired, never both or
    /// neither, so the server's counters never step back.
    pub(crate) fn remove_and(&self, id: ConnId, retire: impl FnOnce()) {
        let mut connections = self.lock();
        connections.remove(&id);
        retire();
    }

    /// Calls `each` on every open connection and then `then`, all under the registry's lock: keep
    /// them short (they hold up connections opening and closing).
    pub(crate) fn walk<T>(&self, mut each: impl FnMut(&Conn), then: impl FnOnce() -> T) -> T {
        let connections = self.lock();
        connections.values().for_each(&mut each);
        then()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Conn>> {
        self.connections.lock().expect("not poisoned")
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("len", &self.len()).finish()
    }
}

/// What the accept loop and every connection task share for the server's whole life.
pub(crate) struct Lifecycle {
    pub(crate) config: ServerConfig,
    /// The timers and limits of every listener-style connection, shared rather than copied into
    /// each.
    pub(crate) driver_settings: Arc<DriverSettings>,
    pub(crate) registry: Registry,
    /// The server's counters (their own handle on the same registry).
    pub(crate) stats: ServerStats,
    pub(crate) shutdown: watch::Sender<bool>,
    active: AtomicUsize,
}

impl Lifecycle {
    pub(crate) fn new(config: ServerConfig, registry: Registry, stats: ServerStats) -> Self {
        let driver_settings = Arc::new(DriverSettings::new(
            config.ping_interval,
            config.idle_timeout,
            config.close_timeout,
            config.max_queue_bytes,
        ));
        let (shutdown, _) = watch::channel(false);
        Self { config, driver_settings, registry, stats, shutdown, active: AtomicUsize::new(0) }
    }

    /// Open sockets (WebSocket and HTTP, including those still in their handshake).
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Starts the graceful shutdown: tasks that wait on the flag see it (the accept loop, plain HTTP
    /// and stream-API connections), and every registered listener-style connection is asked to
    /// close with 1001.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
        for conn in self.registry.connections() {
            let _ = conn.close(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
        }
    }
}

/// Counts a connection as open for as long as it lives.
pub(crate) struct Active(Arc<Lifecycle>);

impl Active {
    pub(crate) fn new(lifecycle: &Arc<Lifecycle>) -> Self {
        lifecycle.active.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(lifecycle))
    }

    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.0
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn {
        Conn::for_tests(1 << 20)
    }

    #[test]
    fn clones_share_the_connections_and_ids_find_them() {
        let registry = Registry::default();
        let seen_by_the_server = registry.clone();
        let conn = conn();
        seen_by_the_server.insert(&conn);
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.get(conn.id()).map(|c| c.conn_id()), Some(conn.conn_id()));
        assert!(registry.get_by_id(conn.conn_id()).is_some());
        assert!(registry.get("not an id").is_none());
        assert_eq!(registry.connections().len(), 1);
        seen_by_the_server.remove_and(conn.conn_id(), || ());
        assert!(registry.is_empty());
    }

    #[tokio::test]
    async fn the_server_fills_the_registry_it_gave_out_before_binding() {
        let server = crate::Server::default();
        let before = server.registry();
        let bound = server.bind("127.0.0.1:0").await.unwrap();
        let conn = conn();
        bound.handle().registry().insert(&conn);
        assert_eq!(before.get(conn.id()).map(|c| c.conn_id()), Some(conn.conn_id()));
        assert!(bound.handle().connection(conn.id()).is_some());
    }
}
