//! Opening benchmark connections and moving their bytes.
//!
//! The bench does its own connection setup rather than going through `ClientBuilder`: a socket is
//! created and, with `--source-ips`, bound to a source address before it connects, then TLS (for
//! `wss://`) and the sans-IO client handshake of `tether_proto` run over it. What comes out is the
//! raw stream and a [`Connection`] with [`Role::Client`], which the modes drive directly.
//!
//! [`step`] is the one I/O primitive of every hot loop: it writes pending output and reads whatever
//! has arrived, in the same poll, so a connection never blocks on a write while the server waits for
//! it to read.

use std::future::{poll_fn, Future};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use rustls_pki_types::ServerName;
use tether_proto::deflate::DeflateConfig;
use tether_proto::handshake::client::{ClientHandshake, ClientHandshakeError, ClientRequest};
use tether_proto::handshake::head::HeadLimits;
use tether_proto::{CloseCode, Config, Connection, Event, Role, State};
use tether_tokio::client::WsUrl;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use super::progress::Ui;
use super::stats::Latencies;

/// What every connection of a run is opened with.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// Accept any server certificate.
    pub insecure: bool,
    /// Extra CA certificates (PEM).
    pub ca_file: Option<std::path::PathBuf>,
    /// Sub-protocols to offer.
    pub protocols: Vec<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Offer permessage-deflate.
    pub deflate: bool,
    /// Bound on TCP connect + TLS + handshake, per connection.
    pub connect_timeout: Duration,
    /// Spread connections over 127.0.0.1..127.0.0.N (0: let the kernel choose).
    pub source_ips: u8,
}

/// A resolved `ws://` or `wss://` URL and everything needed to open connections to it.
pub struct Target {
    addr: SocketAddr,
    host_header: String,
    request_target: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    options: TargetOptions,
}

/// A connection whose handshake is done.
pub struct Opened {
    pub stream: Stream,
    pub conn: Connection,
    /// Bytes read past the handshake response (frames the server sent right behind it).
    pub leftover: BytesMut,
    /// Whether permessage-deflate was agreed.
    pub compressed: bool,
    /// TCP connect + TLS + handshake.
    pub setup_time: Duration,
}

/// The byte stream under a connection.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Target {
    /// Parses and resolves `url`, and prepares TLS for `wss://`.
    pub async fn resolve(url: &str, options: TargetOptions) -> Result<Self, String> {
        let parsed = WsUrl::parse(url).map_err(|why| format!("invalid URL {url:?}: {why}"))?;
        let host_header = parsed.host_header();
        let bare_host = parsed.host.clone();
        let port = parsed.port;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare_host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {bare_host}: {e}"))?
            .collect();
        // Source addresses are IPv4 loopback ones, so they need an IPv4 destination.
        let addr = if options.source_ips > 0 {
            *addrs.iter().find(|a| a.is_ipv4()).ok_or_else(|| {
                format!("--source-ips needs an IPv4 server address; {bare_host} resolves to {addrs:?}")
            })?
        } else {
            *addrs.first().ok_or_else(|| format!("{bare_host} resolves to no address"))?
        };
        let request_target = parsed.target();
        let tls = if parsed.tls {
            let config = tls_config(options.insecure, options.ca_file.as_deref())?;
            let name =
                ServerName::try_from(bare_host.clone()).map_err(|e| format!("invalid TLS name {bare_host}: {e}"))?;
            Some((tokio_rustls::TlsConnector::from(config), name))
        } else {
            None
        };
        Ok(Self { addr, host_header, request_target, tls, options })
    }

    /// The source address of connection number `index`, with `--source-ips`.
    fn source_for(&self, index: usize) -> Option<IpAddr> {
        let n = usize::from(self.options.source_ips);
        (n > 0).then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % n) as u8)))
    }

    /// Opens connection number `index`: TCP (from a bound source address with `--source-ips`),
    /// TLS for `wss://`, then the opening handshake, all within the connect timeout.
    pub async fn open(&self, index: usize) -> Result<Opened, String> {
        let started = Instant::now();
        let opened = tokio::time::timeout(self.options.connect_timeout, self.open_inner(index))
            .await
            .map_err(|_| format!("timed out after {:?}", self.options.connect_timeout))??;
        Ok(Opened { setup_time: started.elapsed(), ..opened })
    }

    async fn open_inner(&self, index: usize) -> Result<Opened, String> {
        let socket = if self.addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
            .map_err(|e| format!("socket: {e}"))?;
        if let Some(source) = self.source_for(index) {
            socket.bind(SocketAddr::new(source, 0)).map_err(|e| format!("bind {source}: {e}"))?;
        }
        let tcp = socket.connect(self.addr).await.map_err(|e| format!("connect {}: {e}", self.addr))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => {
                let mut tcp = tcp;
                let (conn, leftover, compressed) = self.handshake(&mut tcp).await?;
                Ok(Opened { stream: Stream::Plain(tcp), conn, leftover, compressed, setup_time: Duration::ZERO })
            }
            Some((connector, name)) => {
                let mut tls = connector.connect(name.clone(), tcp).await.map_err(|e| format!("TLS: {e}"))?;
                let (conn, leftover, compressed) = self.handshake(&mut tls).await?;
                Ok(Opened {
                    stream: Stream::Tls(Box::new(tls)),
                    conn,
                    leftover,
                    compressed,
                    setup_time: Duration::ZERO,
                })
            }
        }
    }

    async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut S,
    ) -> Result<(Connection, BytesMut, bool), String> {
        let request = ClientRequest {
            host: self.host_header.clone(),
            target: self.request_target.clone(),
            protocols: self.options.protocols.clone(),
            deflate: self.options.deflate.then(DeflateConfig::default),
            headers: self.options.headers.clone(),
            limits: HeadLimits::default(),
        };
        let (mut handshake, bytes) = ClientHandshake::new(&request);
        io.write_all(&bytes).await.map_err(|e| format!("sending the handshake: {e}"))?;
        io.flush().await.map_err(|e| format!("sending the handshake: {e}"))?;
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            match handshake.receive(&buf) {
                Ok(Some((accepted, len))) => {
                    buf.advance(len);
                    let compressed = accepted.deflate.is_some();
                    let conn = Connection::new(Role::Client, Config::default(), accepted.deflate);
                    return Ok((conn, buf, compressed));
                }
                Ok(None) => {}
                Err(ClientHandshakeError::Rejected(head)) => {
                    return Err(format!("server refused the handshake: HTTP {} {}", head.status, head.reason));
                }
                Err(error) => return Err(error.to_string()),
            }
            match io.read_buf(&mut buf).await {
                Ok(0) => return Err("server closed the connection during the handshake".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("reading the handshake response: {e}")),
            }
        }
    }
}

fn tls_config(insecure: bool, ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = match ca_file {
        Some(path) => tether_tokio::client::read_ca_file(path).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    tether_tokio::client::tls_client_config(&roots, insecure).map_err(|e| e.to_string())
}

/// The outcome of a ramp-up.
pub struct Ramp {
    pub opened: usize,
    pub failed: usize,
    /// The first failure's message, for the report.
    pub first_error: Option<String>,
    /// Setup times (connect + TLS + handshake) of the connections that opened.
    pub setup: Latencies,
    /// Wall time of the whole ramp.
    pub elapsed: Duration,
}

/// Opens `count` connections, at most `concurrency` handshakes at a time, numbered from `first`
/// (the number picks the source address). Each one that opens is handed to `on_open` right away.
pub async fn open_many(
    target: &Arc<Target>,
    count: usize,
    first: usize,
    concurrency: usize,
    ui: &Ui,
    label: &str,
    mut on_open: impl FnMut(usize, Opened),
) -> Ramp {
    let started = Instant::now();
    let progress = ui.ramp(label, count as u64);
    let setup = Latencies::new(1);
    let mut samples = Vec::new();
    let mut tasks = JoinSet::new();
    let mut next = 0;
    let (mut opened, mut failed, mut first_error) = (0, 0, None);
    loop {
        while next < count && tasks.len() < concurrency.max(1) {
            let target = Arc::clone(target);
            let index = first + next;
            tasks.spawn(async move { (index, target.open(index).await) });
            next += 1;
        }
        let Some(joined) = tasks.join_next().await else { break };
        match joined {
            Ok((index, Ok(connection))) => {
                opened += 1;
                samples.push(connection.setup_time.as_nanos() as u64);
                on_open(index, connection);
            }
            Ok((_, Err(error))) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
            Err(error) => {
                failed += 1;
                first_error.get_or_insert(error.to_string());
            }
        }
        progress.set(opened as u64, failed as u64);
    }
    setup.record(0, &mut samples);
    progress.finish(opened as u64, failed as u64);
    Ramp { opened, failed, first_error, setup, elapsed: started.elapsed() }
}

/// What [`step`] stopped for.
pub enum Step {
    /// Bytes were read into the buffer.
    Read,
    /// The peer closed the stream.
    Eof,
    /// Reading or writing failed.
    Failed(std::io::Error),
    /// The wake-up future completed (a deadline, a stop signal).
    Woken,
}

impl Step {
    /// Why the connection is lost, for [`Step::Eof`] and [`Step::Failed`]; `None` otherwise.
    pub fn loss(&self) -> Option<String> {
        match self {
            Step::Eof => Some("the server closed TCP".to_owned()),
            Step::Failed(error) => Some(format!("I/O error: {error}")),
            Step::Read | Step::Woken => None,
        }
    }
}

/// Pending output of one connection: what the [`Connection`] produced and is not written yet.
#[derive(Default)]
pub struct Output {
    buf: BytesMut,
    /// Written bytes may sit in a TLS buffer until flushed.
    unflushed: bool,
}

impl Output {
    /// Moves everything the connection queued behind what is pending.
    pub fn take_from(&mut self, conn: &mut Connection) {
        if conn.has_output() {
            let more = conn.take_output();
            if self.buf.is_empty() {
                self.buf = more;
            } else {
                self.buf.unsplit(more);
            }
        }
    }
}

/// Writes pending output and reads what is available, until something was read, the stream ended or
/// failed, or `wake` completed. `chunk` is how much free space the read buffer gets.
pub async fn step<S, F>(io: &mut S, out: &mut Output, rbuf: &mut BytesMut, chunk: usize, mut wake: Pin<&mut F>) -> Step
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future,
{
    poll_fn(|cx| {
        while !out.buf.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, &out.buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Step::Failed(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    out.buf.advance(n);
                    out.unflushed = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Step::Failed(e)),
                Poll::Pending => break,
            }
        }
        if out.buf.is_empty() && out.unflushed {
            match Pin::new(&mut *io).poll_flush(cx) {
                Poll::Ready(Ok(())) => out.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Step::Failed(e)),
                Poll::Pending => {}
            }
        }
        if rbuf.capacity() - rbuf.len() < chunk / 2 {
            rbuf.reserve(chunk);
        }
        let read = std::pin::pin!(io.read_buf(rbuf));
        match read.poll(cx) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Step::Eof),
            Poll::Ready(Ok(_)) => return Poll::Ready(Step::Read),
            Poll::Ready(Err(e)) => return Poll::Ready(Step::Failed(e)),
            Poll::Pending => {}
        }
        match wake.as_mut().poll(cx) {
            Poll::Ready(_) => Poll::Ready(Step::Woken),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Runs the closing handshake (1000) and waits for the server to close TCP, until `deadline`.
/// Returns whether the handshake completed.
pub async fn close<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    conn: &mut Connection,
    out: &mut Output,
    rbuf: &mut BytesMut,
    deadline: Instant,
) -> bool {
    let _ = conn.close(CloseCode::NORMAL, "");
    let mut sleep = std::pin::pin!(tokio::time::sleep_until(deadline.into()));
    loop {
        out.take_from(conn);
        match step(io, out, rbuf, 1024, sleep.as_mut()).await {
            Step::Read => {
                // Only the server's Close matters now; after it the connection reads nothing more.
                while let Ok(Some(event)) = conn.receive(rbuf) {
                    if matches!(event, Event::Close(_)) {
                        break;
                    }
                }
            }
            Step::Eof => break,
            Step::Failed(_) | Step::Woken => return false,
        }
    }
    out.take_from(conn);
    conn.state() == State::Closed
}
