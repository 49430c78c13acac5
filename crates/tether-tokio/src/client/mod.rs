//! The client: `ws://` and `wss://` connections with the same [`WebSocket`] and [`Listener`] APIs
//! the server uses.
//!
//! [`ClientBuilder`] resolves and connects (with a timeout), does TLS for `wss://` (the bundled
//! Mozilla roots, plus any private CA given, or no verification at all when explicitly asked for),
//! sends the handshake with a fresh key, and checks the answer. A response other than 101 is an
//! error carrying its status and the start of its body; redirects are reported, never followed
//! silently.
//!
//! [`WsUrl`] is the one place a `ws://` URL is taken apart into TLS or not, the address to connect
//! to, the `Host` header and the request target; `tether connect` and `tether bench` use it too, so
//! the three agree on every URL. [`ClientBuilder::observe_handshake`] hands out the handshake bytes
//! exactly as they cross the socket, for tools that show them (`tether connect --show-handshake`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rustls_pki_types::{CertificateDer, ServerName};
use tether_proto::deflate::DeflateConfig;
use tether_proto::handshake::client::{ClientHandshake, ClientHandshakeError, ClientRequest};
use tether_proto::handshake::head::{HeadLimits, ResponseHead};
use tether_proto::{Config, Connection, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::conn::Conn;
use crate::driver::{drive, Driver, DriverSettings};
use crate::info::{CompactHeaders, ConnId, ConnInfo};
use crate::listener::Listener;
use crate::transport::Transport;
use crate::websocket::{KeepAlive, WebSocket};

mod error;
mod tls;
mod url;

pub use error::ClientError;
pub use tls::{read_ca_file, tls_client_config};
pub use url::{WsUrl, WsUrlError};

/// The opening handshake's bytes as they cross the socket, for [`ClientBuilder::observe_handshake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeBytes<'a> {
    /// The request, exactly as written: request line, headers, the blank line.
    Request(&'a [u8]),
    /// The response head exactly as read, up to and including its blank line; given for a refusal
    /// (any status) as much as for the 101.
    Response(&'a [u8]),
}

/// The function behind [`ClientBuilder::observe_handshake`]; shared, so the builder stays `Clone`.
#[derive(Clone)]
struct HandshakeObserver(Arc<dyn Fn(HandshakeBytes<'_>) + Send + Sync>);

impl fmt::Debug for HandshakeObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandshakeObserver")
    }
}

/// What the server answered.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    /// The 101 response head.
    pub head: ResponseHead,
    /// The chosen sub-protocol.
    pub protocol: Option<String>,
    /// Whether permessage-deflate was agreed.
    pub compressed: bool,
}

/// Connects with default settings.
pub async fn connect(url: &str) -> Result<(WebSocket<Transport>, ClientResponse), ClientError> {
    ClientBuilder::new(url).connect().await
}

/// Client settings. Every limit has a default; see each method.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
    deflate: Option<DeflateConfig>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    close_timeout: Duration,
    ping_interval: Option<Duration>,
    config: Config,
    extra_roots: Vec<CertificateDer<'static>>,
    insecure: bool,
    observer: Option<HandshakeObserver>,
}

impl ClientBuilder {
    /// A client for `url` (`ws://` or `wss://`).
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            protocols: Vec::new(),
            headers: Vec::new(),
            deflate: Some(DeflateConfig::default()),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            ping_interval: None,
            config: Config::default(),
            extra_roots: Vec::new(),
            insecure: false,
            observer: None,
        }
    }

    /// Offers a sub-protocol (call again for more, in order of preference).
    pub fn protocol(mut self, protocol: &str) -> Self {
        self.protocols.push(protocol.to_owned());
        self
    }

    /// Adds a request header (`Authorization`, `Cookie`, ...).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends an `Origin` header, as a browser would.
    pub fn origin(self, origin: &str) -> Self {
        self.header("Origin", origin)
    }

    /// Offers permessage-deflate with these parameters, or not at all with `None`. Default: offered
    /// with [`DeflateConfig::default`].
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.deflate = deflate;
        self
    }

    /// Time to resolve and connect TCP. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time for TLS and the opening handshake. Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Time the server has to answer our Close and close TCP. Default 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Ping the server this often (pongs are always sent automatically). Default: never; `None`
    /// and `Some(Duration::ZERO)` both mean no pings.
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self
    }

    /// The largest message accepted (after decompression); larger ones fail with 1009. Default 64 MiB.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self.config.max_frame_size = self.config.max_frame_size.min(bytes).max(1);
        self
    }

    /// Trusts the CA certificates in a PEM file, besides the bundled roots.
    pub fn ca_file(mut self, path: &Path) -> Result<Self, ClientError> {
        self.extra_roots.extend(read_ca_file(path)?);
        Ok(self)
    }

    /// Trusts this CA certificate, besides the bundled roots.
    pub fn ca_certificate(mut self, cert: CertificateDer<'static>) -> Self {
        self.extra_roots.push(cert);
        self
    }

    /// Accepts any server certificate. For testing only: it disables TLS's protection entirely.
    pub fn danger_accept_invalid_certificates(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Calls `observe` with the request as soon as it has been written and with the response head
    /// as soon as it has been read: the real bytes, key included, so a tool that shows the
    /// handshake shows what happened, also when the answer is a refusal or never comes.
    pub fn observe_handshake(mut self, observe: impl Fn(HandshakeBytes<'_>) + Send + Sync + 'static) -> Self {
        self.observer = Some(HandshakeObserver(Arc::new(observe)));
        self
    }

    /// Connects and completes the handshake.
    pub async fn connect(self) -> Result<(WebSocket<Transport>, ClientResponse), ClientError> {
        let url = WsUrl::parse(&self.url)?;
        let (transport, protocol, leftover, response) = self.open(&url).await?;
        let keepalive = KeepAlive {
            ping_interval: self.ping_interval.unwrap_or(Duration::ZERO),
            idle_timeout: Duration::ZERO,
            shutdown: None,
        };
        let ws = WebSocket::from_parts(transport, protocol, leftover, self.close_timeout).with_keepalive(keepalive);
        Ok((ws, response))
    }

    /// Connects and runs the connection with a [`Listener`] in a task of its own; returns the handle.
    pub async fn spawn<L: Listener>(self, listener: L) -> Result<(Conn, ClientResponse), ClientError> {
        let url = WsUrl::parse(&self.url)?;
        let (transport, protocol, leftover, response) = self.open(&url).await?;
        let info = ConnInfo {
            id: ConnId::new(),
            remote_addr: peer_addr(&transport).unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
            protocol: response.protocol.clone(),
            path: url.path.as_str().into(),
            query: url.query,
            headers: CompactHeaders::for_application(&response.head.headers),
            identity: None,
        };
        let conn = Conn::new(info, usize::MAX / 2);
        let settings = Arc::new(DriverSettings::new(
            self.ping_interval.unwrap_or(Duration::ZERO),
            Duration::ZERO,
            self.close_timeout,
            usize::MAX / 2,
        ));
        let mut driver = Box::new(Driver { io: transport, protocol, read_buf: leftover, conn: conn.clone(), settings });
        tokio::spawn(async move {
            drive(&mut driver, &listener).await;
        });
        Ok((conn, response))
    }

    /// TCP, TLS for `wss://`, and the handshake to `url` (this builder's URL, parsed once by the
    /// caller, which also needs its parts).
    async fn open(&self, url: &WsUrl) -> Result<(Transport, Connection, BytesMut, ClientResponse), ClientError> {
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect((url.host.as_str(), url.port)))
            .await
            .map_err(|_| ClientError::Timeout("connecting"))??;
        let _ = tcp.set_nodelay(true);
        let observe = |bytes: HandshakeBytes<'_>| {
            if let Some(observer) = &self.observer {
                (observer.0)(bytes);
            }
        };
        let handshake = async {
            let mut transport = if url.tls {
                let connector = tokio_rustls::TlsConnector::from(self.tls_config()?);
                let name = ServerName::try_from(url.host.clone()).map_err(|e| ClientError::Url(e.to_string()))?;
                let stream = connector.connect(name, tcp).await.map_err(|e| ClientError::Tls(e.to_string()))?;
                Transport::ClientTls(Box::new(stream))
            } else {
                Transport::Tcp(tcp)
            };
            let request = ClientRequest {
                host: url.host_header(),
                target: url.target(),
                protocols: self.protocols.clone(),
                deflate: self.deflate.clone(),
                headers: self.headers.clone(),
                limits: HeadLimits::default(),
            };
            let (mut handshake, bytes) = ClientHandshake::new(&request);
            transport.write_all(&bytes).await?;
            observe(HandshakeBytes::Request(&bytes));
            let mut buf = BytesMut::with_capacity(4096);
            loop {
                let received = handshake.receive(&buf);
                if let (false, Some(end)) = (matches!(received, Ok(None)), find_body(&buf)) {
                    observe(HandshakeBytes::Response(&buf[..end]));
                }
                match received {
                    Ok(Some((accepted, len))) => {
                        let _ = buf.split_to(len);
                        let response = ClientResponse {
                            protocol: accepted.protocol.clone(),
                            compressed: accepted.deflate.is_some(),
                            head: accepted.response,
                        };
                        let protocol = Connection::new(Role::Client, self.config.clone(), accepted.deflate);
                        return Ok((transport, protocol, buf, response));
                    }
                    Ok(None) => {}
                    Err(ClientHandshakeError::Rejected(head)) => {
                        return Err(rejected(&mut transport, head, &mut buf).await);
                    }
                    Err(ClientHandshakeError::InvalidResponse(why)) => return Err(ClientError::InvalidResponse(why)),
                    Err(ClientHandshakeError::Head(error)) => {
                        return Err(ClientError::InvalidResponse(error.to_string()))
                    }
                }
                if transport.read_buf(&mut buf).await? == 0 {
                    return Err(ClientError::InvalidResponse(
                        "the server closed the connection during the handshake".into(),
                    ));
                }
            }
        };
        tokio::time::timeout(self.handshake_timeout, handshake).await.map_err(|_| ClientError::Timeout("handshake"))?
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        tls_client_config(&self.extra_roots, self.insecure)
    }
}
/// Builds the error for a non-101 answer, with up to 512 bytes of its body (read briefly).
async fn rejected(transport: &mut Transport, head: ResponseHead, buf: &mut BytesMut) -> ClientError {
    let length = head.headers.get_one("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(512).min(512);
    // The head was parsed from the front of `buf`; whatever follows it is the body's start.
    let body_start = find_body(buf).unwrap_or(buf.len());
    let mut body = buf.split_off(body_start);
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while body.len() < length {
            if transport.read_buf(&mut body).await.unwrap_or(0) == 0 {
                break;
            }
        }
    })
    .await;
    body.truncate(length);
    ClientError::Rejected {
        status: head.status,
        reason: head.reason.clone(),
        location: head.headers.get_one("location").map(str::to_owned),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn find_body(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn peer_addr(transport: &Transport) -> Option<std::net::SocketAddr> {
    match transport {
        Transport::Tcp(tcp) => tcp.peer_addr().ok(),
        Transport::ClientTls(tls) => tls.get_ref().0.peer_addr().ok(),
        _ => None,
    }
}
