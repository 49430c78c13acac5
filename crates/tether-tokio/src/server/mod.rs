//! Accepting connections: TCP and TLS, the opening handshake, the Origin policy, routing, plain
//! HTTP on the same port, connection limits and graceful shutdown.
//!
//! Each accepted socket gets its own task. The task reads the first request head under the
//! handshake timeout and the head limits. A WebSocket upgrade is validated, checked against the
//! Origin policy and the route's sub-protocol rules, answered with 101 and handed to the route; a
//! bad one gets its HTTP status (400, 403, 404, 408, 426, 431, 503) and the socket is closed. A
//! plain HTTP request goes to the configured axum router (static files, health checks), which keeps
//! the connection alive and can still upgrade a later request on it. One connection's failure never
//! touches another's.
//!
//! This module is the public face: [`Server`] (the builder), [`BoundServer`] (the accept loop) and
//! [`ServerHandle`]. The work is in its children, each one job, each importing only those before
//! it in this list (no cycles):
//! - `authorize`: a route's authorize hook and the [`AuthRequest`] it sees;
//! - `config`: [`ServerConfig`] and [`RouteOptions`], plain data;
//! - `registry`: the public [`Registry`] of open connections, and what every connection task
//!   shares with the server (open count, shutdown flag, settings);
//! - `routes`: what a route does with an accepted upgrade (listener or stream API);
//! - `stats`: the public [`ServerStats`], the server's counters, and their [`StatsSnapshot`];
//! - `shared`: what the handshakes share (routes, router, TLS);
//! - `accept`: the decision pipeline validate → route → Origin → sub-protocol → accept, and the
//!   server's own [`Refusal`]s (403, 404, 408, 503);
//! - `hyper`: plain HTTP through hyper and the axum router, and upgrades that come after it;
//! - `direct`: TLS, reading the head and answering on the raw socket, and refusing clients past
//!   `max_connections`.

mod accept;
mod authorize;
mod config;
mod direct;
mod hyper;
mod registry;
mod routes;
mod shared;
mod stats;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use tether_proto::handshake::server::UpgradeRequest;
use tokio::net::{TcpListener, ToSocketAddrs};

pub use self::accept::Refusal;
pub use self::authorize::AuthRequest;
pub use self::config::{RouteOptions, ServerConfig};
use self::direct::{refuse, serve_socket, Refusing};
pub use self::hyper::CountedConnection;
pub use self::registry::Registry;
use self::registry::{Active, Lifecycle};
use self::routes::{Route, Routes};
use self::shared::Shared;
pub use self::stats::{RouteStats, ServerStats, StatsSnapshot};
use crate::listener::{Conn, Listener};
use crate::transport::Transport;
use crate::websocket::WebSocket;

/// A WebSocket server: configuration, routes, and optionally a router for plain HTTP.
///
/// A clone is another server with the same configuration and routes (to bind the same service on
/// a second address, say) and a [`Registry`] and [`ServerStats`] of its own: shutting one down
/// closes its own connections only.
pub struct Server {
    config: ServerConfig,
    routes: Routes,
    http: Option<axum::Router>,
    registry: Registry,
    stats: ServerStats,
}

impl Default for Server {
    fn default() -> Self {
        Self::new(ServerConfig::default())
    }
}

impl Clone for Server {
    fn clone(&self) -> Self {
        let registry = Registry::default();
        Self {
            config: self.config.clone(),
            routes: self.routes.clone(),
            http: self.http.clone(),
            stats: ServerStats::new(registry.clone()),
            registry,
        }
    }
}

impl Server {
    /// A server with the given configuration and no routes.
    pub fn new(config: ServerConfig) -> Self {
        let registry = Registry::default();
        Self { config, routes: Routes::default(), http: None, stats: ServerStats::new(registry.clone()), registry }
    }

    /// Serves WebSocket connections to `path` with a [`Listener`].
    pub fn route<L: Listener>(self, path: &str, listener: L) -> Self {
        self.route_with(path, RouteOptions::default(), listener)
    }

    /// Like [`Server::route`], with sub-protocol rules.
    pub fn route_with<L: Listener>(mut self, path: &str, options: RouteOptions, listener: L) -> Self {
        self.routes.insert(path.to_owned(), Arc::new(Route::listener(path, options, listener)));
        self
    }

    /// Serves WebSocket connections to `path` with the lower-level [`WebSocket`] API: the handler
    /// owns the connection and calls `recv`/`send` itself.
    pub fn route_stream<F, Fut>(mut self, path: &str, options: RouteOptions, handler: F) -> Self
    where
        F: Fn(WebSocket<Transport>, UpgradeRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.routes.insert(path.to_owned(), Arc::new(Route::stream(options, handler)));
        self
    }

    /// Serves requests that are not WebSocket upgrades with this router. Without one they get 426.
    pub fn http(mut self, router: axum::Router) -> Self {
        self.http = Some(router);
        self
    }

    /// The registry this server fills with its open listener-style connections. Available before
    /// binding, so that whatever needs to find connections by id can hold it from the start; it is
    /// the same one [`ServerHandle::registry`] returns once the server runs.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// This server's counters (connections, messages and bytes by route, refusals, closes),
    /// available before binding like [`Server::registry`]; routes appear in them once bound.
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
    }

    /// Binds the listening socket.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> std::io::Result<BoundServer> {
        let listener = TcpListener::bind(addr).await?;
        let Self { config, routes, http, registry, stats } = self;
        stats.set_routes(routes.keys().map(String::as_str));
        let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let shared = Arc::new(Shared {
            lifecycle: Arc::new(Lifecycle::new(config, registry, stats)),
            routes,
            http,
            tls,
            refusing: AtomicUsize::new(0),
        });
        Ok(BoundServer { listener, shared })
    }
}

/// A server with its listening socket.
pub struct BoundServer {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// A handle to a running server: its open connections by id, and shutdown.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    /// The open listener-style connection with this id.
    pub fn connection(&self, id: &str) -> Option<Conn> {
        self.shared.lifecycle.registry.get(id)
    }

    /// All open listener-style connections.
    pub fn connections(&self) -> Vec<Conn> {
        self.shared.lifecycle.registry.connections()
    }

    /// The registry of open listener-style connections (the one [`Server::registry`] gave).
    pub fn registry(&self) -> Registry {
        self.shared.lifecycle.registry.clone()
    }

    /// The server's counters (the ones [`Server::stats`] gave).
    pub fn stats(&self) -> ServerStats {
        self.shared.lifecycle.stats.clone()
    }

    /// Open sockets (WebSocket and HTTP, including those still in their handshake).
    pub fn active_connections(&self) -> usize {
        self.shared.lifecycle.active()
    }

    /// Whether a new connection would be accepted now: not shutting down and under
    /// `max_connections` (a readiness probe's answer).
    pub fn is_accepting(&self) -> bool {
        self.is_accepting_besides(0)
    }

    /// Like [`ServerHandle::is_accepting`], not counting `own` open sockets: a readiness probe
    /// answered on one of the server's own connections passes 1 when that connection is counted
    /// (the request's [`crate::CountedConnection`] says), so that it does not find the
    /// server full because of itself.
    pub fn is_accepting_besides(&self, own: usize) -> bool {
        let lifecycle = &self.shared.lifecycle;
        let open = lifecycle.active().saturating_sub(own);
        !lifecycle.is_shutting_down() && open < lifecycle.config.max_connections
    }

    /// Starts a graceful shutdown: stop accepting, close every connection with 1001.
    pub fn shutdown(&self) {
        self.shared.lifecycle.begin_shutdown();
    }
}

impl BoundServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle for looking up connections and shutting down.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle { shared: Arc::clone(&self.shared) }
    }

    /// Accepts connections until `shutdown` completes (or [`ServerHandle::shutdown`] is called),
    /// then shuts down gracefully: stops accepting, sends 1001 to every connection, and waits up to
    /// the drain timeout for them to close.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Self { listener, shared } = self;
        let lifecycle = Arc::clone(&shared.lifecycle);
        let max_connections = lifecycle.config.max_connections;
        let mut stop = shared.subscribe_shutdown();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                // (The borrow `wait_for` returns is not Send: drop it inside the block.)
                () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let shared = Arc::clone(&shared);
                        if lifecycle.active() >= max_connections {
                            match Refusing::enter(&shared) {
                                Some(refusing) => {
                                    tracing::warn!(%peer, limit = max_connections, "at connection limit: 503");
                                    tokio::spawn(refuse(shared, stream, peer, refusing));
                                }
                                // Even the answers are at their limit: drop the socket unanswered
                                // rather than hold another one open.
                                None => drop(stream),
                            }
                        } else {
                            let active = Active::new(&lifecycle);
                            tokio::spawn(async move { serve_socket(shared, stream, peer, active).await });
                        }
                    }
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        drop(listener);
        tracing::info!(open = lifecycle.active(), "shutting down: closing connections with 1001");
        lifecycle.begin_shutdown();
        let drained = async {
            while lifecycle.active() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(lifecycle.config.drain_timeout, drained).await.is_err() {
            tracing::warn!(open = lifecycle.active(), "drain timeout: dropping remaining connections");
        }
        Ok(())
    }

    /// Accepts connections until [`ServerHandle::shutdown`].
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }
}
