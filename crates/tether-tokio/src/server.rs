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

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tether_proto::handshake::head::{HeadLimits, HeadReader, RequestHead};
use tether_proto::handshake::server::{
    accept, is_upgrade_request, select_protocol, validate, AcceptOptions, Accepted, Rejection, UpgradeRequest,
};
use tether_proto::{CloseCode, Config, Connection, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::watch;

use crate::driver::{drive, Driver, DriverSettings};
use crate::listener::{CompactHeaders, Conn, ConnId, ConnInfo, Listener};
use crate::origin::OriginPolicy;
use crate::transport::{write_and_close, Rewind, Transport};
use crate::websocket::{deadline_after, KeepAlive, WebSocket, SHUTDOWN_REASON};

/// Server settings. Every limit has a safe default; each field says what happens when it is hit.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Time a client has to complete TLS and send its request head. Default 10 s; then 408.
    pub handshake_timeout: Duration,
    /// Time the peer has to answer our Close frame and then close TCP. Default 5 s.
    pub close_timeout: Duration,
    /// Interval between server pings on an open connection. Default 30 s. `Duration::ZERO` turns
    /// keepalive pings off; any value is safe (one too large to add to the clock is as good as off).
    pub ping_interval: Duration,
    /// A connection that sent nothing (not even a pong) for this long is closed with 1001.
    /// Default 120 s. `Duration::ZERO` turns the idle timeout off; any value is safe.
    pub idle_timeout: Duration,
    /// On shutdown, how long open connections get to finish their closing handshakes. Default 10 s.
    pub drain_timeout: Duration,
    /// Open connections at most; further clients get 503. Default 10 000.
    pub max_connections: usize,
    /// Bytes queued for one connection at most; a client that reads too slowly is closed with 1008
    /// when its queue passes this. Default 16 MiB.
    pub max_queue_bytes: usize,
    /// Bounds on the request head (default 16 KiB, 64 headers); over them the client gets 431.
    pub head_limits: HeadLimits,
    /// Frame and message size limits and compression settings of each connection.
    pub connection: Config,
    /// Negotiate permessage-deflate when a client offers it. Default true.
    pub compression: bool,
    /// Which browser origins may connect. Default: requests without Origin and same-origin ones.
    pub origins: OriginPolicy,
    /// Serve `wss://` and `https://` with this TLS configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            drain_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_queue_bytes: 16 << 20,
            head_limits: HeadLimits::default(),
            connection: Config { deflate: tether_proto::deflate::DeflateConfig::server(), ..Config::default() },
            compression: true,
            origins: OriginPolicy::same_origin(),
            tls: None,
        }
    }
}

/// Per-route handshake rules.
#[derive(Debug, Clone, Default)]
pub struct RouteOptions {
    /// Supported sub-protocols in the server's order of preference. The first one the client also
    /// offered is chosen. If the client offered some and none matches, the handshake succeeds
    /// without `Sec-WebSocket-Protocol` (browsers then fail it themselves) ...
    pub protocols: Vec<String>,
    /// ... unless this is set: then a handshake without a common sub-protocol gets 400.
    pub require_protocol: bool,
    /// Largest message on this route, after decompression; `None` takes the server's
    /// `connection.max_message_size`. Larger messages close with 1009.
    pub max_message_size: Option<usize>,
    /// Largest frame payload on this route; `None` takes the server's `connection.max_frame_size`.
    /// A larger frame closes with 1009 as soon as its header arrives.
    pub max_frame_size: Option<usize>,
}

impl RouteOptions {
    /// Options accepting these sub-protocols, in this order of preference.
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(protocols: I) -> Self {
        Self { protocols: protocols.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// Limits messages on this route to `bytes` (after decompression).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = Some(bytes);
        self
    }

    /// Limits frame payloads on this route to `bytes`.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = Some(bytes);
        self
    }
}

/// What a route's handler receives.
pub(crate) struct Upgrade {
    transport: Transport,
    protocol: Connection,
    leftover: BytesMut,
    request: UpgradeRequest,
    subprotocol: Option<String>,
    remote_addr: SocketAddr,
}

/// Starts a route's connection: spawns the task that serves it for its whole life. The task is
/// spawned by the route (which knows the listener type), so its future is stored in the task
/// itself, sized for that listener, with nothing of the handshake left in it. `Active` counts the
/// connection as open until the task ends.
type RouteHandler = Arc<dyn Fn(Box<Upgrade>, Arc<Shared>, Active) + Send + Sync>;

struct Route {
    handler: RouteHandler,
    options: RouteOptions,
}

/// A WebSocket server: configuration, routes, and optionally a router for plain HTTP.
#[derive(Clone, Default)]
pub struct Server {
    config: ServerConfig,
    routes: HashMap<String, Arc<Route>>,
    http: Option<axum::Router>,
}

impl Server {
    /// A server with the given configuration and no routes.
    pub fn new(config: ServerConfig) -> Self {
        Self { config, routes: HashMap::new(), http: None }
    }

    /// Serves WebSocket connections to `path` with a [`Listener`].
    pub fn route<L: Listener>(self, path: &str, listener: L) -> Self {
        self.route_with(path, RouteOptions::default(), listener)
    }

    /// Like [`Server::route`], with sub-protocol rules.
    pub fn route_with<L: Listener>(mut self, path: &str, options: RouteOptions, listener: L) -> Self {
        let listener = Arc::new(listener);
        let route_path: Arc<str> = path.into();
        let handler: RouteHandler = Arc::new(move |upgrade, shared, active| {
            let driver = prepare_listener(upgrade, &shared, &route_path);
            tokio::spawn(run_listener(driver, Arc::clone(&listener), active));
        });
        self.routes.insert(path.to_owned(), Arc::new(Route { handler, options }));
        self
    }

    /// Serves WebSocket connections to `path` with the lower-level [`WebSocket`] API: the handler
    /// owns the connection and calls `recv`/`send` itself.
    pub fn route_stream<F, Fut>(mut self, path: &str, options: RouteOptions, handler: F) -> Self
    where
        F: Fn(WebSocket<Transport>, UpgradeRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let route_handler: RouteHandler =
            Arc::new(move |upgrade: Box<Upgrade>, shared: Arc<Shared>, active: Active| {
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    let config = &shared.server.config;
                    let keepalive = KeepAlive {
                        ping_interval: config.ping_interval,
                        idle_timeout: config.idle_timeout,
                        shutdown: Some(shared.shutdown.subscribe()),
                    };
                    let ws = WebSocket::from_parts(
                        upgrade.transport,
                        upgrade.protocol,
                        upgrade.leftover,
                        config.close_timeout,
                    )
                    .with_keepalive(keepalive);
                    let peer = upgrade.remote_addr;
                    let path = upgrade.request.path().to_owned();
                    let started = Instant::now();
                    tracing::info!(%peer, %path, protocol = upgrade.subprotocol.as_deref().unwrap_or(""), "open");
                    handler(ws, upgrade.request).await;
                    tracing::info!(%peer, %path, duration_ms = started.elapsed().as_millis() as u64, "close");
                    drop(active);
                });
            });
        self.routes.insert(path.to_owned(), Arc::new(Route { handler: route_handler, options }));
        self
    }

    /// Serves requests that are not WebSocket upgrades with this router. Without one they get 426.
    pub fn http(mut self, router: axum::Router) -> Self {
        self.http = Some(router);
        self
    }

    /// Binds the listening socket.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> std::io::Result<BoundServer> {
        let listener = TcpListener::bind(addr).await?;
        let tls = self.config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let (shutdown, _) = watch::channel(false);
        let config = &self.config;
        let driver_settings = Arc::new(DriverSettings::new(
            config.ping_interval,
            config.idle_timeout,
            config.close_timeout,
            config.max_queue_bytes,
        ));
        let shared = Arc::new(Shared {
            driver_settings,
            server: self,
            tls,
            registry: Mutex::new(HashMap::new()),
            shutdown,
            active: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
        });
        Ok(BoundServer { listener, shared })
    }
}

/// State shared by the accept loop and every connection task.
pub(crate) struct Shared {
    server: Server,
    /// The timers and limits of every listener-style connection, shared rather than copied into
    /// each.
    driver_settings: Arc<DriverSettings>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    registry: Mutex<HashMap<ConnId, Conn>>,
    shutdown: watch::Sender<bool>,
    active: AtomicUsize,
    /// Sockets being answered past `max_connections` (see [`Refusing`]).
    refusing: AtomicUsize,
}

impl Shared {
    pub(crate) fn config(&self) -> &ServerConfig {
        &self.server.config
    }

    pub(crate) fn subscribe_shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Starts the graceful shutdown: tasks that wait on the flag see it (the accept loop, plain HTTP
    /// and stream-API connections), and every registered listener-style connection is asked to
    /// close with 1001.
    fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
        let connections: Vec<Conn> = self.registry.lock().expect("not poisoned").values().cloned().collect();
        for conn in connections {
            let _ = conn.close(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
        }
    }

    pub(crate) fn has_route(&self, path: &str) -> bool {
        self.server.routes.contains_key(path)
    }

    pub(crate) fn http_router(&self) -> Option<&axum::Router> {
        self.server.http.as_ref()
    }
}

/// Counts a connection as open for as long as it lives.
pub(crate) struct Active(Arc<Shared>);

impl Active {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.active.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(shared))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
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
        let id = ConnId::parse(id)?;
        self.shared.registry.lock().expect("not poisoned").get(&id).cloned()
    }

    /// All open listener-style connections.
    pub fn connections(&self) -> Vec<Conn> {
        self.shared.registry.lock().expect("not poisoned").values().cloned().collect()
    }

    /// Open sockets (WebSocket and HTTP, including those still in their handshake).
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
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
        let open = self.shared.active.load(Ordering::Acquire).saturating_sub(own);
        !*self.shared.shutdown.borrow() && open < self.shared.server.config.max_connections
    }

    /// Starts a graceful shutdown: stop accepting, close every connection with 1001.
    pub fn shutdown(&self) {
        self.shared.begin_shutdown();
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
        let mut stop = shared.shutdown.subscribe();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                // (The borrow `wait_for` returns is not Send: drop it inside the block.)
                () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let shared = Arc::clone(&shared);
                        if shared.active.load(Ordering::Acquire) >= shared.server.config.max_connections {
                            match Refusing::enter(&shared) {
                                Some(refusing) => {
                                    tracing::warn!(%peer, limit = shared.server.config.max_connections, "at connection limit: 503");
                                    tokio::spawn(refuse(shared, stream, peer, refusing));
                                }
                                // Even the answers are at their limit: drop the socket unanswered
                                // rather than hold another one open.
                                None => drop(stream),
                            }
                        } else {
                            let active = Active::new(&shared);
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
        let open = shared.active.load(Ordering::Acquire);
        tracing::info!(open, "shutting down: closing connections with 1001");
        shared.begin_shutdown();
        let drained = async {
            while shared.active.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(shared.server.config.drain_timeout, drained).await.is_err() {
            tracing::warn!(
                open = shared.active.load(Ordering::Acquire),
                "drain timeout: dropping remaining connections"
            );
        }
        Ok(())
    }

    /// Accepts connections until [`ServerHandle::shutdown`].
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }
}

/// Why a handshake did not produce a connection.
enum HandshakeFailure {
    Reject(Rejection),
    /// The client went away or the socket failed: nobody to answer.
    Gone,
}

/// Reads a request head; returns it, its length, and the whole buffer (head plus what followed).
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    limits: HeadLimits,
) -> Result<(RequestHead, usize, BytesMut), HandshakeFailure> {
    let mut buf = BytesMut::with_capacity(1024);
    let mut reader = HeadReader::new(limits);
    loop {
        match reader.read_request(&buf) {
            Ok(Some((head, len))) => return Ok((head, len, buf)),
            Ok(None) => {}
            Err(error) => return Err(HandshakeFailure::Reject(error.into())),
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Err(HandshakeFailure::Gone),
            Ok(_) => {}
        }
    }
}

/// Sockets being answered while the server is full, at most; more are dropped unanswered. Each
/// one lives at most [`REFUSE_HEAD_TIMEOUT`] plus one plain-HTTP request, so the work a flood can
/// cause past `max_connections` stays bounded in memory and in time.
const MAX_REFUSING: usize = 256;

/// Time a client arriving at a full server has to send its request head.
const REFUSE_HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// Counts a socket as being answered past the connection limit for as long as it lives.
struct Refusing(Arc<Shared>);

impl Refusing {
    fn enter(shared: &Arc<Shared>) -> Option<Self> {
        let previous = shared.refusing.fetch_add(1, Ordering::AcqRel);
        if previous >= MAX_REFUSING {
            shared.refusing.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(Arc::clone(shared)))
    }
}

impl Drop for Refusing {
    fn drop(&mut self) {
        self.0.refusing.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers a client that arrived while the server was full. A WebSocket upgrade gets 503. A plain
/// HTTP request (a liveness probe, a page) is still served, one request and no keep-alive, so
/// `/healthz` stays 200 under load: being full is not being dead.
///
/// `_refusing` counts the socket against [`MAX_REFUSING`] until this returns.
async fn refuse(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, _refusing: Refusing) {
    let deadline = tokio::time::Instant::now() + REFUSE_HEAD_TIMEOUT;
    let Some(mut transport) = accept_transport(&shared, stream, peer, deadline).await else { return };
    let limits = shared.server.config.head_limits;
    let read = tokio::time::timeout_at(deadline, read_head(&mut transport, limits)).await;
    if let Ok(Ok((head, _, buf))) = read {
        if !is_upgrade_request(&head) && shared.server.http.is_some() {
            let tls = shared.tls.is_some();
            let served = crate::http::serve_one(Arc::clone(&shared), Rewind::new(buf.freeze(), transport), peer, tls);
            let _ = tokio::time::timeout(REFUSE_HEAD_TIMEOUT, served).await;
            return;
        }
    }
    respond_and_close(&mut transport, &Rejection::Unavailable).await;
}

async fn respond_and_close<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, rejection: &Rejection) {
    let _ = tokio::time::timeout(Duration::from_secs(1), write_and_close(stream, [rejection.response()], true)).await;
}

/// The checks and negotiation shared by the direct path and the hyper path.
fn decide(shared: &Shared, head: RequestHead, tls: bool) -> Result<(UpgradeRequest, Arc<Route>, Accepted), Rejection> {
    let config = &shared.server.config;
    let request = validate(head)?;
    let route =
        shared.server.routes.get(request.path()).ok_or_else(|| Rejection::NotFound(request.path().to_owned()))?;
    config.origins.check(request.origin.as_deref(), &request.host, tls).map_err(Rejection::Forbidden)?;
    let options = &route.options;
    if options.require_protocol && select_protocol(&options.protocols, &request.protocols).is_none() {
        return Err(Rejection::BadRequest(format!(
            "this endpoint requires one of the sub-protocols {:?}",
            options.protocols
        )));
    }
    let deflate = config.compression.then_some(&config.connection.deflate);
    let accepted = accept(&request, &AcceptOptions { protocols: &options.protocols, deflate });
    Ok((request, Arc::clone(route), accepted))
}

/// The connection settings of an upgrade on `route`: the server's, with the route's own size
/// limits in their place where it sets them (so a route can refuse large frames at their header).
fn route_config(shared: &Shared, route: &RouteOptions) -> Config {
    let mut config = shared.server.config.connection.clone();
    if let Some(limit) = route.max_message_size {
        config.max_message_size = limit;
    }
    if let Some(limit) = route.max_frame_size {
        config.max_frame_size = limit;
    }
    config
}

fn upgrade(
    shared: &Shared,
    route: &Route,
    transport: Transport,
    leftover: BytesMut,
    request: UpgradeRequest,
    accepted: Accepted,
    remote_addr: SocketAddr,
) -> Box<Upgrade> {
    let protocol = Connection::new(Role::Server, route_config(shared, &route.options), accepted.deflate);
    Box::new(Upgrade { transport, protocol, leftover, request, subprotocol: accepted.protocol, remote_addr })
}

/// The first task of every socket: the handshake (or plain HTTP). A WebSocket connection then
/// moves to a task of its own, started by its route, and this one ends, freeing all the
/// handshake's state.
async fn serve_socket(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, active: Active) {
    if let Some((route, upgrade)) = handshake(&shared, stream, peer).await {
        (route.handler)(upgrade, shared, active);
    }
}

/// The socket as this server speaks it: plain TCP, or TLS once its handshake completes by
/// `deadline`; `None` when the TLS handshake failed or timed out (nobody to answer).
async fn accept_transport(
    shared: &Shared,
    stream: TcpStream,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
) -> Option<Transport> {
    let Some(acceptor) = &shared.tls else { return Some(Transport::Tcp(stream)) };
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(Transport::Tls(Box::new(stream))),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// TLS, the request head and the checks; `None` when the socket was answered (or served as plain
/// HTTP) and is done.
async fn handshake(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) -> Option<(Arc<Route>, Box<Upgrade>)> {
    let _ = stream.set_nodelay(true);
    let config = &shared.server.config;
    let tls = shared.tls.is_some();
    let deadline = deadline_after(tokio::time::Instant::now(), config.handshake_timeout);
    let mut transport = accept_transport(shared, stream, peer, deadline).await?;
    let (head, head_len, mut buf) =
        match tokio::time::timeout_at(deadline, read_head(&mut transport, config.head_limits)).await {
            Ok(Ok(read)) => read,
            Ok(Err(HandshakeFailure::Reject(rejection))) => {
                tracing::info!(%peer, status = rejection.status(), %rejection, "handshake refused");
                respond_and_close(&mut transport, &rejection).await;
                return None;
            }
            Ok(Err(HandshakeFailure::Gone)) => return None,
            Err(_) => {
                tracing::info!(%peer, "handshake timeout: 408");
                respond_and_close(&mut transport, &Rejection::Timeout).await;
                return None;
            }
        };
    if !is_upgrade_request(&head) {
        if shared.server.http.is_some() {
            crate::http::serve(Arc::clone(shared), Rewind::new(buf.freeze(), transport), peer, tls).await;
        } else {
            respond_and_close(&mut transport, &Rejection::UpgradeRequired).await;
        }
        return None;
    }
    let _ = buf.split_to(head_len);
    match decide(shared, head, tls) {
        Ok((request, route, accepted)) => {
            transport.write_all(&accepted.response).await.ok()?;
            // Frames that came in with the head are kept; otherwise no buffer is carried over.
            let leftover = if buf.is_empty() { BytesMut::new() } else { BytesMut::from(&buf[..]) };
            let upgrade = upgrade(shared, &route, transport, leftover, request, accepted, peer);
            Some((route, upgrade))
        }
        Err(rejection) => {
            tracing::info!(%peer, status = rejection.status(), %rejection, "handshake refused");
            respond_and_close(&mut transport, &rejection).await;
            None
        }
    }
}

/// The hyper path: a WebSocket upgrade on a connection that served plain HTTP first.
pub(crate) fn decide_for_hyper(
    shared: &Arc<Shared>,
    head: RequestHead,
    tls: bool,
) -> Result<(Accepted, impl FnOnce(Transport, SocketAddr)), Rejection> {
    let (request, route, accepted) = decide(shared, head, tls)?;
    let shared = Arc::clone(shared);
    let accepted_for_connection = accepted.clone();
    let start = move |transport: Transport, peer: SocketAddr| {
        let active = Active::new(&shared);
        let upgrade = upgrade(&shared, &route, transport, BytesMut::new(), request, accepted_for_connection, peer);
        (route.handler)(upgrade, shared, active);
    };
    Ok((accepted, start))
}

/// Turns an upgrade into a connection's driver state and handle. A plain function, so the upgrade's
/// box and the request are freed here rather than kept in the connection's task.
///
/// `path` is the route's: equal to the request's path (routes match exactly) and shared by all of
/// its connections.
fn prepare_listener(upgrade: Box<Upgrade>, shared: &Shared, path: &Arc<str>) -> Box<Driver> {
    let config = &shared.server.config;
    let Upgrade { transport, protocol, leftover, request, subprotocol, remote_addr } = *upgrade;
    let info = ConnInfo {
        id: ConnId::new(),
        remote_addr,
        protocol: subprotocol,
        path: Arc::clone(path),
        query: request.query().map(str::to_owned),
        headers: CompactHeaders::for_application(&request.headers),
    };
    let conn = Conn::new(info, config.max_queue_bytes);
    let settings = Arc::clone(&shared.driver_settings);
    Box::new(Driver { io: transport, protocol, read_buf: leftover, conn, settings })
}

/// Runs a listener-style connection, registered by id while it is open.
///
/// A plain function returning an `async move` block: an async fn would keep a second copy of each
/// argument in the task (the arguments and the locals they are moved into), in every connection.
#[allow(clippy::manual_async_fn)] // On purpose: see above.
fn run_listener<L: Listener>(
    mut driver: Box<Driver>,
    listener: Arc<L>,
    active: Active,
) -> impl Future<Output = ()> + Send {
    async move {
        let conn = &driver.conn;
        active.0.registry.lock().expect("not poisoned").insert(conn.conn_id(), conn.clone());
        // Registered first, checked second: a shutdown that began before the registration (and so
        // missed this connection) is seen here; one that begins after it finds it in the registry.
        if *active.0.shutdown.borrow() {
            let _ = conn.close(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
        }
        let started = Instant::now();
        tracing::info!(id = conn.id(), peer = %conn.remote_addr(), path = conn.path(), protocol = conn.protocol().unwrap_or(""), compressed = driver.protocol.is_compressed(), "open");
        let closed = drive(&mut driver, &*listener).await;
        let conn = &driver.conn;
        active.0.registry.lock().expect("not poisoned").remove(&conn.conn_id());
        tracing::info!(id = conn.id(), peer = %conn.remote_addr(), protocol = conn.protocol().unwrap_or(""), duration_ms = started.elapsed().as_millis() as u64, code = closed.code.0, clean = closed.clean, "close");
        drop(active);
    }
}
