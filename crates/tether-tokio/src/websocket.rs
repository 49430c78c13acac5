//! One upgraded WebSocket connection over any async byte stream.
//!
//! [`WebSocket::recv`] returns the next message; pings are answered and the closing handshake is
//! completed inside it. Outgoing frames are queued by [`WebSocket::feed`] and written in one go
//! before the next read waits for the socket, so a handler that answers each message with
//! `feed` produces one write per batch of input rather than one per message.
//!
//! Every method is cancel-safe (see [`WebSocket`]): `recv` can sit in a `tokio::select!` beside
//! other work, and a cancelled call loses no input and leaves no frame half-written.
//!
//! The transport is closed the way RFC 6455 §7 asks: after the Close frames are exchanged (or the
//! connection failed), the server shuts down its sending side first and then reads until the peer
//! closes too, for at most the close timeout; a client reads until the server has closed. Reading to the end keeps the kernel from answering
//! unread data with a reset, which could destroy the Close frame on its way to the peer.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tether_proto::{CloseCode, CloseFrame, Connection, Event, Message, ProtocolError, Role, State};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use crate::deadline::{deadline_after, period_or_off, FAR_FUTURE};
use crate::identity::Identity;
// The results of every method; `tether_tokio::websocket::{Closed, Error}` stays a valid path.
pub use crate::error::{Closed, Error};
use crate::transport::poll_read_lean;

/// The reason of the 1001 Close frame a graceful server shutdown sends.
pub(crate) const SHUTDOWN_REASON: &str = "server shutting down";

/// Queued output beyond this is written at once by [`WebSocket::feed`] rather than at the next read.
const FLUSH_THRESHOLD: usize = 64 * 1024;

/// Keepalive and shutdown for a [`WebSocket`]: the server sets these for its connections.
#[derive(Debug, Clone)]
pub struct KeepAlive {
    /// Send a ping this often. `Duration::ZERO` means no pings; any value is safe (a huge one
    /// is as good as off).
    pub ping_interval: Duration,
    /// Close with 1001 after this long without receiving anything. `Duration::ZERO` means no idle
    /// timeout; any value is safe.
    pub idle_timeout: Duration,
    /// When this turns true, close with 1001 (graceful server shutdown).
    pub shutdown: Option<watch::Receiver<bool>>,
}

/// An upgraded connection.
///
/// # Cancel safety
///
/// Every method keeps its progress in the `WebSocket` itself, never in the future it returns, so
/// any of them can be cancelled (dropped inside `tokio::select!`, or by a timeout) without losing
/// or corrupting anything:
/// - [`WebSocket::recv`] is cancel-safe: a message is returned by the call that completes, bytes
///   read so far stay buffered, and output it was writing (pongs, the Close echo) is resumed where
///   it stopped by the next call. So is the closing handshake: a cancelled call that was waiting
///   for the peer to close resumes that wait (within the same close timeout), and a protocol error
///   is still reported once.
/// - [`WebSocket::flush`] is cancel-safe: what it did not write is written by the next call that
///   writes.
/// - [`WebSocket::send`], [`WebSocket::feed`], [`WebSocket::ping`] and [`WebSocket::close`] queue
///   their frame whole on their first poll; cancelling them afterwards only postpones writing it
///   (the next `recv`, `flush` or send writes it). Nothing is ever half-sent.
pub struct WebSocket<S> {
    io: S,
    protocol: Connection,
    read_buf: BytesMut,
    /// Output taken from the protocol and not yet written, from its first unwritten byte on: a
    /// write that was cancelled halfway resumes here.
    pending: BytesMut,
    /// Bytes were written since the stream was last flushed.
    unflushed: bool,
    close_timeout: Duration,
    closed: Option<Closed>,
    /// The closing of the transport, once the closing handshake is over or the connection failed.
    ending: Option<Box<Ending>>,
    keepalive: Option<KeepAlive>,
    idle_deadline: Instant,
    next_ping: Instant,
    close_deadline: Option<Instant>,
    /// What the route's authorize hook said (`None` without a hook): one pointer when absent.
    identity: Option<Box<Identity>>,
}

/// Closing the transport after the closing handshake (RFC 6455 §7.1.1): the steps left, kept in
/// the `WebSocket` so a cancelled `recv` resumes them.
#[derive(Debug)]
struct Ending {
    /// The whole ending is bounded by the close timeout, however often it is resumed.
    deadline: Instant,
    /// The protocol error to report once the transport is closed.
    error: Option<ProtocolError>,
    step: EndStep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndStep {
    /// Writing the last output (the Close frame).
    Write,
    /// Sending our FIN: a server's first, a client's last.
    Shutdown,
    /// Reading until the peer's FIN.
    Drain,
    Done,
}

impl<S> fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket").field("state", &self.protocol.state()).field("closed", &self.closed).finish()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a stream on which the handshake is done. `leftover` holds bytes read past the
    /// handshake (frames the peer sent right behind it).
    pub fn from_parts(io: S, protocol: Connection, leftover: BytesMut, close_timeout: Duration) -> Self {
        let far = deadline_after(Instant::now(), FAR_FUTURE);
        Self {
            io,
            protocol,
            read_buf: leftover,
            pending: BytesMut::new(),
            unflushed: false,
            close_timeout,
            closed: None,
            ending: None,
            keepalive: None,
            identity: None,
            idle_deadline: far,
            next_ping: far,
            close_deadline: None,
        }
    }

    /// Carries `identity` (what a route's authorize hook decided) for [`WebSocket::identity`].
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Some(Box::new(identity));
        self
    }

    /// Who is on this connection, as [`crate::RouteOptions::authorize`] said; `None` without it.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// Adds pings, an idle timeout and a shutdown signal, all handled inside [`WebSocket::recv`].
    ///
    /// A zero `ping_interval` or `idle_timeout` turns that timer off.
    pub fn with_keepalive(mut self, mut keepalive: KeepAlive) -> Self {
        keepalive.ping_interval = period_or_off(keepalive.ping_interval);
        keepalive.idle_timeout = period_or_off(keepalive.idle_timeout);
        let now = Instant::now();
        self.idle_deadline = deadline_after(now, keepalive.idle_timeout);
        self.next_ping = deadline_after(now, keepalive.ping_interval);
        self.keepalive = Some(keepalive);
        self
    }

    /// How the connection ended, once it has.
    pub fn closed(&self) -> Option<&Closed> {
        self.closed.as_ref()
    }

    /// The next message, or `None` once the connection is closed (see [`WebSocket::closed`]).
    ///
    /// A protocol error is returned once, after the connection was failed with its close code.
    ///
    /// Cancel-safe (see [the type's docs](WebSocket#cancel-safety)): cancelled, it loses no input
    /// and leaves no output half-written for good; call it again to go on.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        if self.ending.is_some() {
            return self.end().await.map(|error| Err(Error::Protocol(error)));
        }
        if self.closed.is_some() {
            return None;
        }
        loop {
            match self.protocol.receive(&mut self.read_buf) {
                Ok(Some(Event::Message(message))) => return Some(Ok(message)),
                Ok(Some(Event::Ping(_) | Event::Pong(_))) => continue,
                Ok(Some(Event::Close(frame))) => {
                    let closed = match frame {
                        Some(CloseFrame { code, reason }) => Closed { code, reason, clean: true },
                        None => Closed { code: CloseCode::NO_STATUS, reason: String::new(), clean: true },
                    };
                    self.begin_end(closed, None);
                    return self.end().await.map(|error| Err(Error::Protocol(error)));
                }
                Ok(None) => {}
                Err(error) => {
                    let closed = Closed { code: error.close_code(), reason: error.to_string(), clean: false };
                    self.begin_end(closed, Some(error));
                    return self.end().await.map(|error| Err(Error::Protocol(error)));
                }
            }
            let unwritten = !self.pending.is_empty() || self.protocol.has_output() || self.unflushed;
            if unwritten {
                if let Err(error) = self.flush().await {
                    self.abort();
                    return Some(Err(error));
                }
            }
            let closing = self.protocol.state() == State::Closing;
            let stopping = self.keepalive.as_ref().and_then(|k| k.shutdown.as_ref()).is_some_and(|rx| *rx.borrow());
            if stopping && !closing {
                let _ = self.protocol.close(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
                continue;
            }
            if closing && self.close_deadline.is_none() {
                self.close_deadline = Some(deadline_after(Instant::now(), self.close_timeout));
            }
            let close_deadline = self.close_deadline.unwrap_or(self.idle_deadline);
            let mut shutdown = self.keepalive.as_ref().and_then(|k| k.shutdown.clone());
            let read_hint = self.protocol.read_hint();
            let (io, read_buf) = (&mut self.io, &mut self.read_buf);
            // Every branch is cancel-safe: the read puts what it gets straight into `read_buf`,
            // and the timers are made again from the deadlines kept in `self`.
            let read = tokio::select! {
                // No read buffer is held while waiting (docs/memory-per-connection.md, rule 1).
                read = poll_fn(|cx| poll_read_lean(io, cx, read_buf, read_hint)) => read,
                // We sent a Close: the peer has the close timeout to answer it.
                () = sleep_until(close_deadline), if closing => {
                    self.abort();
                    return None;
                }
                () = sleep_until(self.next_ping), if !closing => {
                    let interval = self.keepalive.as_ref().map_or(FAR_FUTURE, |k| k.ping_interval);
                    self.next_ping = deadline_after(Instant::now(), interval);
                    let _ = self.protocol.ping(b"");
                    continue;
                }
                () = sleep_until(self.idle_deadline), if !closing => {
                    let _ = self.protocol.close(CloseCode::GOING_AWAY, "idle timeout");
                    continue;
                }
                Ok(()) = wait_for_shutdown(&mut shutdown), if !closing && shutdown.is_some() => continue,
            };
            if let Some(keepalive) = &self.keepalive {
                self.idle_deadline = deadline_after(Instant::now(), keepalive.idle_timeout);
            }
            match read {
                Ok(0) => {
                    self.abort();
                    return None;
                }
                Ok(_) => {}
                Err(error) => {
                    self.abort();
                    return Some(Err(Error::Io(error)));
                }
            }
        }
    }

    /// Queues a message; it is written before the next read, or now if much output is queued.
    pub async fn feed(&mut self, message: &Message) -> Result<(), Error> {
        self.protocol.send(message)?;
        if self.protocol.output_len() >= FLUSH_THRESHOLD {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends a message now.
    pub async fn send(&mut self, message: &Message) -> Result<(), Error> {
        self.protocol.send(message)?;
        self.flush().await
    }

    /// Sends a ping.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.protocol.ping(payload)?;
        self.flush().await
    }

    /// Starts the closing handshake; keep calling [`WebSocket::recv`] until it returns `None` to
    /// let the peer answer.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.protocol.close(code, reason)?;
        self.flush().await
    }

    /// Writes all queued output. Cancel-safe: what is left is written by the next call that writes.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_write_out(cx)).await.map_err(Error::Io)
    }

    /// Writes `pending`, then the protocol's output, recording progress in `self` after every
    /// write, then flushes the stream if anything was written (TLS may keep records buffered
    /// otherwise); with nothing to write it costs two checks.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        loop {
            if self.pending.is_empty() {
                if !self.protocol.has_output() {
                    break;
                }
                self.pending = self.protocol.take_output();
            }
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(written);
            self.unflushed = true;
            if self.pending.is_empty() {
                // Everything written: no output buffer is kept (docs/memory-per-connection.md, rule 1).
                self.pending = BytesMut::new();
            }
        }
        if self.unflushed {
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// The closing handshake is over or the connection failed: from now on `recv` only closes the
    /// transport (see [`WebSocket::end`]).
    fn begin_end(&mut self, closed: Closed, error: Option<ProtocolError>) {
        debug_assert_eq!(self.protocol.state(), State::Closed);
        self.closed = Some(closed);
        self.read_buf = BytesMut::new();
        let deadline = deadline_after(Instant::now(), self.close_timeout);
        self.ending = Some(Box::new(Ending { deadline, error, step: EndStep::Write }));
    }

    /// Ends the connection after the closing handshake or a failure: write what is queued, send our
    /// FIN, then read until the peer's FIN (bounded by the close timeout); a client reads first
    /// and sends its FIN last. Returns the protocol error to report, if any. Resumable: the steps
    /// and the deadline live in `self.ending`.
    async fn end(&mut self) -> Option<ProtocolError> {
        let deadline = self.ending.as_ref()?.deadline;
        let _ = tokio::time::timeout_at(deadline, poll_fn(|cx| self.poll_end(cx))).await;
        self.pending = BytesMut::new();
        self.ending.take().and_then(|ending| ending.error)
    }

    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let server = self.protocol.role() == Role::Server;
        loop {
            let Some(step) = self.ending.as_ref().map(|ending| ending.step) else { return Poll::Ready(()) };
            let next = match step {
                EndStep::Write => match ready!(self.poll_write_out(cx)) {
                    Ok(()) if server => EndStep::Shutdown,
                    Ok(()) => EndStep::Drain,
                    Err(_) => EndStep::Done,
                },
                EndStep::Shutdown => match ready!(Pin::new(&mut self.io).poll_shutdown(cx)) {
                    Ok(()) if server => EndStep::Drain,
                    _ => EndStep::Done,
                },
                EndStep::Drain => {
                    let mut sink = [0u8; 1024];
                    let mut sink = ReadBuf::new(&mut sink);
                    match ready!(Pin::new(&mut self.io).poll_read(cx, &mut sink)) {
                        Ok(()) if !sink.filled().is_empty() => EndStep::Drain,
                        Ok(()) if !server => EndStep::Shutdown,
                        _ => EndStep::Done,
                    }
                }
                EndStep::Done => return Poll::Ready(()),
            };
            if let Some(ending) = self.ending.as_mut() {
                ending.step = next;
            }
        }
    }

    /// The transport ended or failed without a closing handshake.
    fn abort(&mut self) {
        if self.closed.is_none() {
            self.closed = Some(Closed { code: CloseCode::ABNORMAL, reason: String::new(), clean: false });
        }
        self.read_buf = BytesMut::new();
        self.pending = BytesMut::new();
    }

    /// The protocol state machine (for inspection).
    pub fn protocol(&self) -> &Connection {
        &self.protocol
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

async fn wait_for_shutdown(shutdown: &mut Option<watch::Receiver<bool>>) -> Result<(), watch::error::RecvError> {
    match shutdown {
        Some(rx) => rx.wait_for(|stopping| *stopping).await.map(|_| ()),
        None => std::future::pending().await,
    }
}
