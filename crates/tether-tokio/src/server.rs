//! Accepting connections: TCP, the opening handshake, and routing to handlers by path.
//!
//! Each accepted socket gets its own task. The task reads the request head under the handshake
//! timeout and the head limits, answers a bad request with its HTTP status (400, 404, 408, 426, 431)
//! and closes, or answers 101 and hands a [`WebSocket`] to the handler registered for the path.
//! One connection's failure never touches another's.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tether_proto::handshake::head::{HeadLimits, HeadReader, RequestHead};
use tether_proto::handshake::server::{accept, validate, AcceptOptions, Rejection, UpgradeRequest};
use tether_proto::{Config, Connection, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use crate::websocket::WebSocket;

/// Server settings. Every limit has a safe default.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Time a client has to send its complete handshake request. Default 10 s; then it gets 408.
    pub handshake_timeout: Duration,
    /// Time the peer has to answer our Close frame, and to close TCP after the closing handshake.
    /// Default 5 s.
    pub close_timeout: Duration,
    /// Bounds on the request head (default 16 KiB, 64 headers); over them the client gets 431.
    pub head_limits: HeadLimits,
    /// Frame and message size limits and compression settings of each connection.
    pub connection: Config,
    /// Negotiate permessage-deflate when a client offers it. Default true.
    pub compression: bool,
    /// Supported sub-protocols, in order of preference.
    pub protocols: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            head_limits: HeadLimits::default(),
            connection: Config::default(),
            compression: true,
            protocols: Vec::new(),
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Serves one upgraded connection; gets the request it was upgraded with.
pub type Handler = Arc<dyn Fn(WebSocket<TcpStream>, UpgradeRequest) -> BoxFuture + Send + Sync>;

/// A WebSocket server: configuration plus routes.
#[derive(Clone, Default)]
pub struct Server {
    config: ServerConfig,
    routes: HashMap<String, Handler>,
}

impl Server {
    /// A server with the given configuration and no routes.
    pub fn new(config: ServerConfig) -> Self {
        Self { config, routes: HashMap::new() }
    }

    /// Serves WebSocket connections to `path` with `handler`.
    pub fn route<F, Fut>(mut self, path: &str, handler: F) -> Self
    where
        F: Fn(WebSocket<TcpStream>, UpgradeRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ws, request| Box::pin(handler(ws, request)));
        self.routes.insert(path.to_owned(), handler);
        self
    }

    /// Binds the listening socket.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> std::io::Result<BoundServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(BoundServer { listener, server: Arc::new(self) })
    }
}

/// A server with its listening socket.
pub struct BoundServer {
    listener: TcpListener,
    server: Arc<Server>,
}

impl BoundServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown` completes.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let server = Arc::clone(&self.server);
                        tokio::spawn(async move { serve_connection(server, stream, peer).await });
                    }
                    // Out of file descriptors and similar: wait a little instead of spinning.
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }

    /// Accepts connections forever.
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

async fn read_head(stream: &mut TcpStream, limits: HeadLimits) -> Result<(RequestHead, BytesMut), HandshakeFailure> {
    let mut buf = BytesMut::with_capacity(1024);
    let mut reader = HeadReader::new(limits);
    loop {
        match reader.read_request(&buf) {
            Ok(Some((head, len))) => {
                let _ = buf.split_to(len);
                return Ok((head, buf));
            }
            Ok(None) => {}
            Err(error) => return Err(HandshakeFailure::Reject(error.into())),
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Err(HandshakeFailure::Gone),
            Ok(_) => {}
        }
    }
}

async fn handshake(
    server: &Server,
    stream: &mut TcpStream,
) -> Result<(UpgradeRequest, Connection, BytesMut, Handler, Option<String>), HandshakeFailure> {
    let config = &server.config;
    let (head, leftover) =
        match tokio::time::timeout(config.handshake_timeout, read_head(stream, config.head_limits)).await {
            Ok(result) => result?,
            Err(_) => return Err(HandshakeFailure::Reject(Rejection::Timeout)),
        };
    let request = validate(head).map_err(HandshakeFailure::Reject)?;
    let Some(handler) = server.routes.get(request.path()) else {
        return Err(HandshakeFailure::Reject(Rejection::NotFound(request.path().to_owned())));
    };
    let deflate = config.compression.then_some(&config.connection.deflate);
    let accepted = accept(&request, &AcceptOptions { protocols: &config.protocols, deflate });
    stream.write_all(&accepted.response).await.map_err(|_| HandshakeFailure::Gone)?;
    let connection = Connection::new(Role::Server, config.connection.clone(), accepted.deflate);
    Ok((request, connection, leftover, Arc::clone(handler), accepted.protocol))
}

async fn serve_connection(server: Arc<Server>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    match handshake(&server, &mut stream).await {
        Ok((request, connection, leftover, handler, protocol)) => {
            let path = request.path().to_owned();
            tracing::info!(%peer, %path, protocol = protocol.as_deref().unwrap_or(""), compressed = connection.is_compressed(), "open");
            let ws = WebSocket::from_parts(stream, connection, leftover, server.config.close_timeout);
            handler(ws, request).await;
            tracing::info!(%peer, %path, duration_ms = started.elapsed().as_millis() as u64, "closed");
        }
        Err(HandshakeFailure::Reject(rejection)) => {
            tracing::info!(%peer, status = rejection.status(), %rejection, "handshake refused");
            let linger = async {
                stream.write_all(&rejection.response()).await?;
                stream.shutdown().await?;
                let mut sink = [0u8; 1024];
                while stream.read(&mut sink).await? > 0 {}
                Ok::<(), std::io::Error>(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), linger).await;
        }
        Err(HandshakeFailure::Gone) => {}
    }
}
