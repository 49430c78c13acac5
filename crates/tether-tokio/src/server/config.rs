//! What a server is configured with: [`ServerConfig`] for the whole server and [`RouteOptions`]
//! for one route. Plain data with safe defaults, kept apart from the code that reads it so that
//! every other module of the server can depend on it without depending on each other.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tether_proto::handshake::head::HeadLimits;
use tether_proto::handshake::response::Response;
use tether_proto::Config;

use super::authorize::{AuthRequest, Authorizer};
use crate::identity::Identity;
use crate::origin::OriginPolicy;

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

/// Per-route handshake rules, built with the methods below (`RouteOptions::protocols([..])
/// .require_protocol().authorize(..)`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
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
    /// The application's decision on each upgrade, set with [`RouteOptions::authorize`].
    pub(crate) authorize: Option<Authorizer>,
}

impl RouteOptions {
    /// Options accepting these sub-protocols, in this order of preference.
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(protocols: I) -> Self {
        Self { protocols: protocols.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// Refuses (400) a handshake that offers none of this route's sub-protocols.
    pub fn require_protocol(mut self) -> Self {
        self.require_protocol = true;
        self
    }

    /// Limits messages on this route to `bytes` (after decompression).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = Some(bytes);
        self
    }

    /// Runs `hook` on every upgrade of this route once the server's own checks passed (handshake
    /// rules, route, Origin, sub-protocol) and before the 101. `Ok(identity)` accepts: the
    /// connection carries it ([`crate::Conn::user`], [`crate::Conn::info`],
    /// [`crate::Conn::expires_at`], typed data through [`crate::Conn::data`]). `Err(response)`
    /// refuses with that HTTP answer (`Response::new(401).header("WWW-Authenticate", ...)`), and
    /// no WebSocket is opened. The hook runs under the server's handshake timeout; past it the
    /// client gets 503.
    ///
    /// ```
    /// use tether_tokio::server::{AuthRequest, RouteOptions};
    /// use tether_tokio::Identity;
    /// use tether_proto::handshake::response::Response;
    ///
    /// let options = RouteOptions::protocols(["json"]).authorize(|request: AuthRequest| async move {
    ///     match request.query_param("token").as_deref() {
    ///         Some("s3cret") => Ok(Identity::user("ada").with_info(r#"{"name":"Ada"}"#)),
    ///         _ => Err(Response::new(401).header("WWW-Authenticate", r#"Bearer error="invalid_token""#)),
    ///     }
    /// });
    /// # let _ = options;
    /// ```
    pub fn authorize<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Identity, Response>> + Send + 'static,
    {
        self.authorize = Some(Authorizer::new(hook));
        self
    }

    /// Limits frame payloads on this route to `bytes`.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = Some(bytes);
        self
    }
}
