//! The task behind each listener-style connection.
//!
//! One loop per connection waits on whichever comes first: bytes from the peer, room to write
//! queued output, a command from a [`Conn`] handle, the ping timer, the idle deadline, or server
//! shutdown. Everything protocol-related is decided by the sans-IO core; this loop only moves
//! bytes and calls the listener.
//!
//! Backpressure: while more than `max_queue_bytes` of output waits to be written, the loop stops
//! reading from the peer, so a client that sends without reading is slowed down by TCP itself
//! instead of growing our buffers. Pushes from other tasks are bounded by the same limit in
//! [`Conn::send`].

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tether_proto::{CloseCode, CloseFrame, Connection, Event, Message, PreparedOutput, Role, State};
use tokio::io::AsyncWrite;
use tokio::time::Instant;

use crate::conn::Conn;
use crate::deadline::{deadline_after, period_or_off};
use crate::error::{Closed, Error};
use crate::listener::Listener;
use crate::mailbox::Command;
use crate::transport::{release_if_empty, write_and_close, Transport};

/// Timers and limits of a connection's task. Made by [`DriverSettings::new`], which turns the
/// timers' "off" (zero) into a far future once, so the loop only ever adds (without overflow).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DriverSettings {
    ping_interval: Duration,
    idle_timeout: Duration,
    close_timeout: Duration,
    max_queue_bytes: usize,
}

impl DriverSettings {
    /// `ping_interval` and `idle_timeout` of `Duration::ZERO` mean off (no keepalive pings, no idle
    /// timeout); any duration is safe, however large.
    pub(crate) fn new(
        ping_interval: Duration,
        idle_timeout: Duration,
        close_timeout: Duration,
        max_queue_bytes: usize,
    ) -> Self {
        Self {
            ping_interval: period_or_off(ping_interval),
            idle_timeout: period_or_off(idle_timeout),
            close_timeout,
            max_queue_bytes,
        }
    }
}

/// What the socket did.
enum IoEvent {
    Read(std::io::Result<usize>),
    Written(std::io::Result<usize>),
}

/// Why a waiting connection's task woke up.
enum Wake {
    Io(IoEvent),
    /// Commands were queued by [`Conn`] handles.
    Commands,
    /// The earliest deadline (ping, idle or close timeout) passed.
    Timer,
}

/// Writes queued output if there is any and reads if allowed, whichever is ready first.
fn poll_io(
    cx: &mut Context<'_>,
    io: &mut Transport,
    out: &Outbox,
    read_buf: &mut BytesMut,
    can_read: bool,
    read_hint: usize,
) -> Poll<IoEvent> {
    if out.len > 0 {
        let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
        let count = out.io_slices(&mut slices);
        if let Poll::Ready(result) = Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]) {
            return Poll::Ready(IoEvent::Written(result));
        }
    }
    if can_read {
        if let Poll::Ready(result) = io.poll_read_when_ready(cx, read_buf, read_hint) {
            return Poll::Ready(IoEvent::Read(result));
        }
    }
    Poll::Pending
}

/// Everything a connection's task owns, in one allocation: the task's future holds a pointer, not
/// each field twice (`docs/memory-per-connection.md`, rule 3).
///
/// Server shutdown reaches the connection as a Close command pushed through its [`Conn`], so the
/// task waits on three things only (the socket, its mailbox, one timer), all polled from one
/// `poll_fn` (rule 2).
pub(crate) struct Driver {
    pub io: Transport,
    pub protocol: Connection,
    pub read_buf: BytesMut,
    pub conn: Conn,
    pub settings: Arc<DriverSettings>,
}

/// Runs one connection to its end, then calls [`Listener::closed`].
///
/// The driver is borrowed, not owned, so the caller can still use its [`Conn`] afterwards
/// without keeping a clone of its own in the task.
pub(crate) async fn drive<L: Listener>(driver: &mut Driver, listener: &L) -> Ended {
    let Driver { io, protocol, read_buf, conn, settings } = driver;
    let settings = &*settings;
    listener.opened(conn).await;
    let shared = conn.shared();
    // Bytes to write, in order: encoded frames, some shared with other connections.
    let mut out = Outbox::default();
    let now = Instant::now();
    let mut idle_deadline = deadline_after(now, settings.idle_timeout);
    let mut next_ping = deadline_after(now, settings.ping_interval);
    let mut closing = Closing::default();
    // One timer for all three deadlines, reset only when the earliest one changes.
    let timer = tokio::time::sleep_until(next_ping.min(idle_deadline));
    tokio::pin!(timer);
    let mut peer_gone = false;
    let mut result: Option<Closed> = None;

    'connection: loop {
        // 1. Everything the buffered input holds.
        loop {
            // The message is taken out of the event before its callback is awaited, so the
            // event itself is not kept in the task across that await (the task stays smaller).
            let message = match protocol.receive(read_buf) {
                Ok(Some(Event::Message(message))) => {
                    shared.counters.count_received(matches!(message, Message::Text(_)));
                    message
                }
                Ok(Some(Event::Ping(_))) => continue, // Answered by the protocol core.
                Ok(Some(Event::Pong(payload))) => {
                    listener.pong(conn, payload).await;
                    continue;
                }
                Ok(Some(Event::Close(frame))) => {
                    let (code, reason) = match frame {
                        Some(CloseFrame { code, reason }) => (code, reason),
                        None => (CloseCode::NO_STATUS, String::new()),
                    };
                    result = Some(Closed { code, reason, clean: true });
                    break;
                }
                Ok(None) => break,
                Err(error) => {
                    // The core fails the connection with this code: the server ended it.
                    closing.sent.get_or_insert(error.close_code());
                    result = Some(Closed { code: error.close_code(), reason: error.to_string(), clean: false });
                    tracing::info!(id = conn.id(), peer = %conn.remote_addr(), %error, "protocol error");
                    listener.error(conn, &Error::Protocol(error)).await;
                    break;
                }
            };
            listener.message(conn, message).await;
            // What the callback sent goes out before anything later in the input is processed:
            // an answer must not lose the race against a protocol error that follows its question.
            apply_all(protocol, &mut out, conn, &mut closing, settings.close_timeout);
        }
        // No partial frame: give the buffer back (docs/memory-per-connection.md, rule 1).
        release_if_empty(read_buf);
        // 2. Commands queued by handles.
        apply_all(protocol, &mut out, conn, &mut closing, settings.close_timeout);
        if protocol.has_output() {
            out.push(protocol.take_output().freeze());
        }
        if protocol.state() == State::Closed || peer_gone {
            break 'connection;
        }
        if protocol.state() == State::Closing && closing.deadline.is_none() {
            closing.deadline = Some(deadline_after(Instant::now(), settings.close_timeout));
        }
        let deadline = closing.deadline.unwrap_or_else(|| next_ping.min(idle_deadline));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }

        let can_read = out.len <= settings.max_queue_bytes;
        let read_hint = protocol.read_hint();
        let wake = poll_fn(|cx| {
            if let Poll::Ready(event) = poll_io(cx, io, &out, read_buf, can_read, read_hint) {
                return Poll::Ready(Wake::Io(event));
            }
            if shared.commands.poll_queued(cx).is_ready() {
                return Poll::Ready(Wake::Commands);
            }
            timer.as_mut().poll(cx).map(|()| Wake::Timer)
        })
        .await;
        shared.commands.unpark();
        // When the deadlines were last looked at, after a read or the timer.
        let mut checked_at = None;
        match wake {
            Wake::Io(IoEvent::Read(Ok(0))) => peer_gone = true,
            Wake::Io(IoEvent::Read(Ok(n))) => {
                shared.counters.count_read(n);
                let now = Instant::now();
                idle_deadline = deadline_after(now, settings.idle_timeout);
                checked_at = Some(now);
            }
            Wake::Io(IoEvent::Written(Ok(n))) => {
                shared.counters.count_written(n);
                out.advance(n);
                let _ = shared
                    .queued_bytes
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| Some(q.saturating_sub(n)));
            }
            Wake::Io(IoEvent::Read(Err(error)) | IoEvent::Written(Err(error))) => {
                listener.error(conn, &Error::Io(error)).await;
                peer_gone = true;
            }
            Wake::Commands => {}
            Wake::Timer => {
                let now = Instant::now();
                checked_at = Some(now);
                if closing.deadline.is_none() && now >= idle_deadline {
                    tracing::info!(id = conn.id(), peer = %conn.remote_addr(), "idle timeout");
                    if protocol.close(CloseCode::GOING_AWAY, "idle timeout").is_ok() {
                        closing.sent.get_or_insert(CloseCode::GOING_AWAY);
                    }
                    closing.deadline = Some(deadline_after(now, settings.close_timeout));
                }
                if closing.deadline.is_none() && now >= next_ping {
                    next_ping = deadline_after(now, settings.ping_interval);
                    let _ = protocol.ping(b"");
                }
            }
        }
        // Checked after reads too: a peer that never stops sending keeps the socket ready and the
        // timer unpolled, and must not outlast the close timeout that way.
        if checked_at.zip(closing.deadline).is_some_and(|(now, at)| now >= at) {
            result.get_or_insert(Closed { code: CloseCode::ABNORMAL, reason: "close timeout".into(), clean: false });
            break 'connection;
        }
    }

    shared.closed.store(true, Ordering::Release);
    if !peer_gone {
        // Boxed with its timer: the linger is needed once, at the end (docs/memory-per-connection.md, rule 4).
        let server = protocol.role() == Role::Server;
        // What is left (the Close frame, at least) is counted as it is handed to the socket.
        let rest = out.chunks.into_iter().inspect(|chunk| shared.counters.count_written(chunk.len()));
        let _ = Box::pin(tokio::time::timeout(settings.close_timeout, write_and_close(io, rest, server))).await;
    }
    let closed = result.unwrap_or(Closed { code: CloseCode::ABNORMAL, reason: String::new(), clean: false });
    listener.closed(conn, &closed).await;
    let initiator = match closing.sent {
        Some(_) => Initiator::Server,
        None if closed.code == CloseCode::ABNORMAL => Initiator::None,
        None => Initiator::Peer,
    };
    Ended { code: closing.sent.unwrap_or(closed.code), initiator, closed }
}

/// How a connection ended, for the server's counts and its log line.
pub(crate) struct Ended {
    /// What the listener was told.
    pub closed: Closed,
    /// Who started the end.
    pub initiator: Initiator,
    /// The code of the end: the one the server sent when it started the close (a peer may answer
    /// with another, or never), else the peer's (1005, or 1006 when the transport just ended).
    pub code: CloseCode,
}

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Initiator {
    /// The server: a `close` through a handle, an idle timeout, a protocol error, shutdown.
    Server,
    /// The peer, with a Close frame.
    Peer,
    /// Nobody: the transport ended without a closing handshake.
    None,
}

impl Initiator {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Peer => "client",
            Self::None => "none",
        }
    }
}

/// The server's side of a closing handshake: when it gives up waiting, and what it sent.
#[derive(Debug, Default)]
struct Closing {
    deadline: Option<Instant>,
    /// The code of the Close frame the server started the handshake with.
    sent: Option<CloseCode>,
}

/// Applies every queued command.
fn apply_all(protocol: &mut Connection, out: &mut Outbox, conn: &Conn, closing: &mut Closing, close_timeout: Duration) {
    conn.shared().commands.drain(|command| apply(protocol, out, conn, command, closing, close_timeout));
}

fn apply(
    protocol: &mut Connection,
    out: &mut Outbox,
    conn: &Conn,
    command: Command,
    closing: &mut Closing,
    close_timeout: Duration,
) {
    let shared = conn.shared();
    match command {
        Command::Send(message) => {
            let len = message.as_bytes().len();
            let before = protocol.output_len();
            if protocol.send(&message).is_ok() {
                shared.counters.count_sent();
            }
            // The queue now holds the encoded frame instead of the message.
            let encoded = protocol.output_len() - before;
            let _ = shared
                .queued_bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| Some(q.saturating_sub(len) + encoded));
        }
        Command::SendPrepared(frame) => {
            // Through the core like any message: a server gets the shared bytes back and queues
            // them by reference after whatever the protocol has produced so far; a client's core
            // masks a copy into its output; after our Close frame it is refused.
            let len = frame.len();
            let before = protocol.output_len();
            let encoded = match protocol.send_prepared(frame) {
                Ok(PreparedOutput::Shared(bytes)) => {
                    shared.counters.count_sent();
                    if protocol.has_output() {
                        out.push(protocol.take_output().freeze());
                    }
                    out.push(bytes);
                    return;
                }
                Ok(PreparedOutput::Queued) => {
                    shared.counters.count_sent();
                    protocol.output_len() - before
                }
                Err(_) => 0,
            };
            let _ = shared
                .queued_bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| Some(q.saturating_sub(len) + encoded));
        }
        Command::Ping(payload) => {
            let _ = protocol.ping(&payload);
        }
        Command::Close(code, reason) => {
            if protocol.close(code, &reason).is_ok() {
                closing.sent.get_or_insert(code);
                closing.deadline.get_or_insert_with(|| deadline_after(Instant::now(), close_timeout));
            }
        }
    }
}

/// At most this many chunks go into one vectored write.
const MAX_WRITE_SLICES: usize = 64;

/// A queue of byte chunks to write in order. Chunks are `Bytes`, so a frame shared by many
/// connections is queued by reference, never copied.
#[derive(Debug, Default)]
struct Outbox {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Outbox {
    fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Fills `slices` with the first chunks; returns how many.
    fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut count = 0;
        for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
            count += 1;
        }
        count
    }

    /// Drops the first `n` bytes (they were written).
    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let front = self.chunks.front_mut().expect("advance within the queued bytes");
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        if self.chunks.is_empty() {
            // Give the ring buffer back while idle.
            self.chunks = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_advances_across_chunks() {
        let mut out = Outbox::default();
        out.push(Bytes::from_static(b"abc"));
        out.push(Bytes::new());
        out.push(Bytes::from_static(b"defg"));
        assert_eq!(out.len, 7);
        out.advance(4);
        assert_eq!(out.len, 3);
        let mut slices = [IoSlice::new(&[]); 4];
        let n = out.io_slices(&mut slices);
        assert_eq!(&slices[..n].iter().map(|s| s.to_vec()).collect::<Vec<_>>(), &[b"efg".to_vec()]);
        out.advance(3);
        assert_eq!(out.len, 0);
    }
}
