//! The direct path: a socket the server reads and answers itself, without an HTTP library. TLS (if
//! configured), the first request head under the handshake timeout and head limits, then either
//! the 101 (the connection goes to its route), a refusal written on the raw socket, or — for plain
//! HTTP — the hand-over to [`super::hyper`]. Clients past `max_connections` are answered here too.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tether_proto::handshake::head::{HeadLimits, HeadReader, RequestHead};
use tether_proto::handshake::server::{is_upgrade_request, Rejection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::accept::{approve, upgrade, Refusal};
use super::registry::Active;
use super::routes::{Route, Upgrade};
use super::shared::Shared;
use crate::deadline::deadline_after;
use crate::transport::{write_and_close, Rewind, Transport};

/// The first task of every socket: the handshake (or plain HTTP). A WebSocket connection then
/// moves to a task of its own, started by its route, and this one ends, freeing all the
/// handshake's state.
pub(crate) async fn serve_socket(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, active: Active) {
    if let Some((route, upgrade)) = handshake(&shared, stream, peer).await {
        route.start(upgrade, active);
    }
}

/// Why a handshake did not produce a connection.
enum HandshakeFailure {
    Refuse(Refusal),
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
            Err(error) => return Err(HandshakeFailure::Refuse(Rejection::from(error).into())),
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
pub(crate) struct Refusing(Arc<Shared>);

impl Refusing {
    pub(crate) fn enter(shared: &Arc<Shared>) -> Option<Self> {
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
pub(crate) async fn refuse(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, _refusing: Refusing) {
    let deadline = tokio::time::Instant::now() + REFUSE_HEAD_TIMEOUT;
    let Some(mut transport) = accept_transport(&shared, stream, peer, deadline).await else { return };
    let limits = shared.config().head_limits;
    let read = tokio::time::timeout_at(deadline, read_head(&mut transport, limits)).await;
    if let Ok(Ok((head, _, buf))) = read {
        if !is_upgrade_request(&head) && shared.http.is_some() {
            let tls = shared.tls.is_some();
            let served = super::hyper::serve_one(Arc::clone(&shared), Rewind::new(buf.freeze(), transport), peer, tls);
            let _ = tokio::time::timeout(REFUSE_HEAD_TIMEOUT, served).await;
            return;
        }
    }
    shared.lifecycle.stats.rejected(Refusal::Unavailable.status());
    respond_and_close(&mut transport, &Refusal::Unavailable).await;
}

async fn respond_and_close<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, refusal: &Refusal) {
    let bytes = refusal.response().to_bytes();
    let _ = tokio::time::timeout(Duration::from_secs(1), write_and_close(stream, [bytes], true)).await;
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
    let config = shared.config();
    let tls = shared.tls.is_some();
    let deadline = deadline_after(tokio::time::Instant::now(), config.handshake_timeout);
    let mut transport = accept_transport(shared, stream, peer, deadline).await?;
    let (head, head_len, mut buf) =
        match tokio::time::timeout_at(deadline, read_head(&mut transport, config.head_limits)).await {
            Ok(Ok(read)) => read,
            Ok(Err(HandshakeFailure::Refuse(refusal))) => {
                shared.refused(peer, &refusal);
                respond_and_close(&mut transport, &refusal).await;
                return None;
            }
            Ok(Err(HandshakeFailure::Gone)) => return None,
            Err(_) => {
                tracing::info!(%peer, "handshake timeout: 408");
                shared.lifecycle.stats.rejected(Refusal::Timeout.status());
                respond_and_close(&mut transport, &Refusal::Timeout).await;
                return None;
            }
        };
    if !is_upgrade_request(&head) {
        if shared.http.is_some() {
            super::hyper::serve(Arc::clone(shared), Rewind::new(buf.freeze(), transport), peer, tls).await;
        } else {
            respond_and_close(&mut transport, &Rejection::UpgradeRequired.into()).await;
        }
        return None;
    }
    let _ = buf.split_to(head_len);
    match approve(shared, head, tls, peer, deadline).await {
        Ok((route, approved)) => {
            transport.write_all(&approved.accepted.response.to_bytes()).await.ok()?;
            // Frames that came in with the head are kept; otherwise no buffer is carried over.
            let leftover = if buf.is_empty() { BytesMut::new() } else { BytesMut::from(&buf[..]) };
            let upgrade = upgrade(shared, &route, transport, leftover, approved, peer);
            Some((route, upgrade))
        }
        Err(refusal) => {
            shared.refused(peer, &refusal);
            respond_and_close(&mut transport, &refusal).await;
            None
        }
    }
}
