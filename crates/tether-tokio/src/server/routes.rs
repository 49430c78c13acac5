//! Routes: what the server does with an accepted upgrade on a path. A [`Route`] pairs the path's
//! [`RouteOptions`] with the handler that starts the connection's task, for the listener API
//! ([`Route::listener`]) or the stream API ([`Route::stream`]).
//!
//! A handler gets the finished handshake ([`Upgrade`]) and the [`Active`] count of its socket, and
//! nothing else of the server: what a connection needs for its life is in the [`Lifecycle`] the
//! count points to.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tether_proto::handshake::server::UpgradeRequest;
use tether_proto::{CloseCode, Config, Connection};

use super::config::RouteOptions;
use super::registry::{Active, Lifecycle};
use crate::conn::Conn;
use crate::driver::{drive, Driver};
use crate::identity::Identity;
use crate::info::{CompactHeaders, ConnId, ConnInfo};
use crate::listener::Listener;
use crate::transport::Transport;
use crate::websocket::{KeepAlive, WebSocket, SHUTDOWN_REASON};

/// The routes of a server by exact path.
pub(crate) type Routes = HashMap<String, Arc<Route>>;

/// What a route's handler receives: the socket after the 101, the connection's state machine,
/// bytes that came in with the head, and what the request said.
pub(crate) struct Upgrade {
    pub(crate) transport: Transport,
    pub(crate) protocol: Connection,
    pub(crate) leftover: BytesMut,
    pub(crate) request: UpgradeRequest,
    pub(crate) subprotocol: Option<String>,
    pub(crate) remote_addr: SocketAddr,
    /// What the route's authorize hook said (anonymous without one).
    pub(crate) identity: Identity,
}

/// Starts a route's connection: spawns the task that serves it for its whole life. The task is
/// spawned by the route (which knows the listener type), so its future is stored in the task
/// itself, sized for that listener, with nothing of the handshake left in it. `Active` counts the
/// connection as open until the task ends.
type RouteHandler = Arc<dyn Fn(Box<Upgrade>, Active) + Send + Sync>;

pub(crate) struct Route {
    handler: RouteHandler,
    pub(crate) options: RouteOptions,
}

impl Route {
    /// A route served by a [`Listener`] at `path`.
    pub(crate) fn listener<L: Listener>(path: &str, options: RouteOptions, listener: L) -> Self {
        let listener = Arc::new(listener);
        let route_path: Arc<str> = path.into();
        let handler: RouteHandler = Arc::new(move |upgrade, active| {
            let driver = prepare_listener(upgrade, active.lifecycle(), &route_path);
            tokio::spawn(run_listener(driver, Arc::clone(&listener), active));
        });
        Self { handler, options }
    }

    /// A route whose handler owns each connection as a [`WebSocket`].
    pub(crate) fn stream<F, Fut>(options: RouteOptions, handler: F) -> Self
    where
        F: Fn(WebSocket<Transport>, UpgradeRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let route_has_hook = options.authorize.is_some();
        let route_handler: RouteHandler = Arc::new(move |upgrade: Box<Upgrade>, active: Active| {
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let lifecycle = active.lifecycle();
                let config = &lifecycle.config;
                let keepalive = KeepAlive {
                    ping_interval: config.ping_interval,
                    idle_timeout: config.idle_timeout,
                    shutdown: Some(lifecycle.shutdown.subscribe()),
                };
                let Upgrade { transport, protocol, leftover, request, subprotocol, remote_addr: peer, identity } =
                    *upgrade;
                let mut ws = WebSocket::from_parts(transport, protocol, leftover, config.close_timeout)
                    .with_keepalive(keepalive);
                if route_has_hook {
                    ws = ws.with_identity(identity);
                }
                let path = request.path().to_owned();
                let started = Instant::now();
                lifecycle.stats.opened(&path);
                tracing::info!(%peer, route = %path, protocol = subprotocol.as_deref().unwrap_or(""), "open");
                handler(ws, request).await;
                active.lifecycle().stats.stream_closed(&path);
                tracing::info!(%peer, route = %path, duration_ms = started.elapsed().as_millis() as u64, "close");
                drop(active);
            });
        });
        Self { handler: route_handler, options }
    }

    /// Hands an accepted upgrade to this route, which starts its connection's task.
    pub(crate) fn start(&self, upgrade: Box<Upgrade>, active: Active) {
        (self.handler)(upgrade, active);
    }

    /// The connection settings of an upgrade on this route: the server's, with the route's own size
    /// limits in their place where it sets them (so a route can refuse large frames at their header).
    pub(crate) fn connection_config(&self, server: &Config) -> Config {
        let mut config = server.clone();
        if let Some(limit) = self.options.max_message_size {
            config.max_message_size = limit;
        }
        if let Some(limit) = self.options.max_frame_size {
            config.max_frame_size = limit;
        }
        config
    }
}

/// Turns an upgrade into a connection's driver state and handle. A plain function, so the upgrade's
/// box and the request are freed here rather than kept in the connection's task.
///
/// `path` is the route's: equal to the request's path (routes match exactly) and shared by all of
/// its connections.
fn prepare_listener(upgrade: Box<Upgrade>, lifecycle: &Lifecycle, path: &Arc<str>) -> Box<Driver> {
    let Upgrade { transport, protocol, leftover, request, subprotocol, remote_addr, identity } = *upgrade;
    let (identity, data) = identity.into_parts();
    let info = ConnInfo {
        id: ConnId::new(),
        remote_addr,
        protocol: subprotocol,
        path: Arc::clone(path),
        query: request.query().map(str::to_owned),
        headers: CompactHeaders::for_application(&request.headers),
        identity,
    };
    let conn = Conn::with_data(info, lifecycle.config.max_queue_bytes, data);
    let settings = Arc::clone(&lifecycle.driver_settings);
    Box::new(Driver { io: transport, protocol, read_buf: leftover, conn, settings })
}

/// Runs a listener-style connection, registered by id while it is open.
///
/// A plain function returning an `async move` block, not an async fn, so the task stores each
/// argument once (`docs/memory-per-connection.md`, rule 3).
#[allow(clippy::manual_async_fn)] // On purpose: see above.
fn run_listener<L: Listener>(
    mut driver: Box<Driver>,
    listener: Arc<L>,
    active: Active,
) -> impl Future<Output = ()> + Send {
    async move {
        let conn = &driver.conn;
        let lifecycle = active.lifecycle();
        lifecycle.registry.insert(conn);
        lifecycle.stats.opened(conn.path());
        // Registered first, checked second: a shutdown that began before the registration (and so
        // missed this connection) is seen here; one that begins after it finds it in the registry.
        if lifecycle.is_shutting_down() {
            let _ = conn.close(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
        }
        let started = Instant::now();
        tracing::info!(
            id = conn.id(),
            user = conn.user().unwrap_or(""),
            route = conn.path(),
            peer = %conn.remote_addr(),
            protocol = conn.protocol().unwrap_or(""),
            compressed = driver.protocol.is_compressed(),
            "open"
        );
        let ended = drive(&mut driver, &*listener).await;
        let conn = &driver.conn;
        let lifecycle = active.lifecycle();
        lifecycle.stats.retire(conn, &ended);
        tracing::info!(
            id = conn.id(),
            user = conn.user().unwrap_or(""),
            route = conn.path(),
            peer = %conn.remote_addr(),
            code = ended.code.0,
            initiator = ended.initiator.as_str(),
            clean = ended.closed.clean,
            duration_ms = started.elapsed().as_millis() as u64,
            "close"
        );
        drop(active);
    }
}
