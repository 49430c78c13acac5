//! The server's open connections: the public [`Registry`] of listener-style connections by id.
//!
//! This is the leaf the rest of the server builds on: the counters (`stats.rs`) walk it, and the
//! `Lifecycle` every connection task shares (`lifecycle.rs`) holds it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::conn::Conn;
use crate::info::ConnId;

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
