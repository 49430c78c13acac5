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

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tether_proto::{CloseCode, CloseFrame, Connection, Event, Role, State};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use crate::listener::{Command, Conn, Listener};
use crate::websocket::{Closed, Error};

/// Timers and limits of a connection's task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DriverSettings {
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub close_timeout: Duration,
    pub max_queue_bytes: usize,
}

const READ_CHUNK: usize = 8 * 1024;

/// Runs one connection to its end, then calls [`Listener::closed`].
#[allow(clippy::too_many_arguments)]
pub(crate) async fn drive<S, L>(
    io: S,
    mut protocol: Connection,
    mut read_buf: BytesMut,
    conn: Conn,
    mut commands: mpsc::UnboundedReceiver<Command>,
    listener: Arc<L>,
    settings: DriverSettings,
    mut shutdown: watch::Receiver<bool>,
) -> Closed
where
    S: AsyncRead + AsyncWrite + Unpin,
    L: Listener,
{
    listener.opened(&conn).await;
    // Reading and writing wait side by side in one select, so each needs its own half.
    let (mut reader, mut writer) = tokio::io::split(io);
    let shared = conn.shared();
    // Bytes to write, in order: encoded frames, some shared with other connections.
    let mut out = Outbox::default();
    // Frames produced while a write is in flight (prepared frames, and the protocol output they
    // must follow), moved to `out` at the top of the loop.
    let mut staged = Outbox::default();
    let mut idle_deadline = Instant::now() + settings.idle_timeout;
    let mut next_ping = Instant::now() + settings.ping_interval;
    let mut close_deadline: Option<Instant> = None;
    let mut peer_gone = false;
    let mut shutting_down = *shutdown.borrow();
    let mut result: Option<Closed> = None;

    if shutting_down {
        let _ = protocol.close(CloseCode::GOING_AWAY, "server shutting down");
    }

    'connection: loop {
        // 1. Everything the buffered input holds.
        loop {
            match protocol.receive(&mut read_buf) {
                Ok(Some(Event::Message(message))) => {
                    listener.message(&conn, message).await;
                    // What the callback sent goes out before anything later in the input is
                    // processed: an answer must not lose the race against a protocol error that
                    // follows its question.
                    while let Ok(command) = commands.try_recv() {
                        apply(&mut protocol, &mut staged, &conn, command, &mut close_deadline, settings.close_timeout);
                    }
                }
                Ok(Some(Event::Ping(_) | Event::Pong(_))) => {}
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
                    let closed = Closed { code: error.close_code(), reason: error.to_string(), clean: false };
                    tracing::info!(id = conn.id(), peer = %conn.remote_addr(), %error, "protocol error");
                    listener.error(&conn, &Error::Protocol(error)).await;
                    result = Some(closed);
                    break;
                }
            }
        }
        // 2. Commands queued by handles (the callbacks above may have sent some).
        while let Ok(command) = commands.try_recv() {
            apply(&mut protocol, &mut staged, &conn, command, &mut close_deadline, settings.close_timeout);
        }
        out.append(&mut staged);
        if protocol.has_output() {
            out.push(protocol.take_output().freeze());
        }
        if protocol.state() == State::Closed {
            break 'connection;
        }
        if peer_gone {
            break 'connection;
        }

        let can_read = out.len <= settings.max_queue_bytes;
        if can_read && read_buf.capacity() - read_buf.len() < READ_CHUNK {
            read_buf.reserve(READ_CHUNK);
        }
        let close_at = close_deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
        let slice_count = out.io_slices(&mut slices);
        tokio::select! {
            read = reader.read_buf(&mut read_buf), if can_read => match read {
                Ok(0) => peer_gone = true,
                Ok(_) => idle_deadline = Instant::now() + settings.idle_timeout,
                Err(error) => {
                    listener.error(&conn, &Error::Io(error)).await;
                    peer_gone = true;
                }
            },
            written = writer.write_vectored(&slices[..slice_count]), if slice_count > 0 => match written {
                Ok(n) => {
                    out.advance(n);
                    let _ = shared.queued_bytes.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| Some(q.saturating_sub(n)));
                }
                Err(error) => {
                    listener.error(&conn, &Error::Io(error)).await;
                    peer_gone = true;
                }
            },
            command = commands.recv() => {
                if let Some(command) = command {
                    apply(&mut protocol, &mut staged, &conn, command, &mut close_deadline, settings.close_timeout);
                }
            }
            () = sleep_until(next_ping) => {
                next_ping = Instant::now() + settings.ping_interval;
                let _ = protocol.ping(b"");
            }
            () = sleep_until(idle_deadline), if close_deadline.is_none() => {
                tracing::info!(id = conn.id(), peer = %conn.remote_addr(), "idle timeout");
                let _ = protocol.close(CloseCode::GOING_AWAY, "idle timeout");
                close_deadline = Some(Instant::now() + settings.close_timeout);
            }
            changed = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                if changed.is_ok() && *shutdown.borrow() {
                    let _ = protocol.close(CloseCode::GOING_AWAY, "server shutting down");
                    close_deadline.get_or_insert(Instant::now() + settings.close_timeout);
                }
            }
            () = sleep_until(close_at), if close_deadline.is_some() => {
                result.get_or_insert(Closed { code: CloseCode::ABNORMAL, reason: "close timeout".into(), clean: false });
                break 'connection;
            }
        }
        if protocol.state() == State::Closing && close_deadline.is_none() {
            close_deadline = Some(Instant::now() + settings.close_timeout);
        }
    }

    shared.closed.store(true, Ordering::Release);
    if !peer_gone {
        // Write what is left (our Close among it), send FIN, read until the peer's FIN.
        // RFC 6455 §7.1.1: the server closes TCP first; a client waits for it.
        let server = protocol.role() == Role::Server;
        let linger = async {
            out.append(&mut staged);
            for chunk in &out.chunks {
                writer.write_all(chunk).await?;
            }
            if server {
                writer.shutdown().await?;
            }
            let mut sink = [0u8; 1024];
            while reader.read(&mut sink).await? > 0 {}
            if !server {
                writer.shutdown().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let _ = tokio::time::timeout(settings.close_timeout, linger).await;
    }
    let closed = result.unwrap_or(Closed { code: CloseCode::ABNORMAL, reason: String::new(), clean: false });
    listener.closed(&conn, &closed).await;
    closed
}

fn apply(
    protocol: &mut Connection,
    staged: &mut Outbox,
    conn: &Conn,
    command: Command,
    close_deadline: &mut Option<Instant>,
    close_timeout: Duration,
) {
    let shared = conn.shared();
    match command {
        Command::Send(message) => {
            let len = message.as_bytes().len();
            let before = protocol.output_len();
            let _ = protocol.send(&message);
            // The queue now holds the encoded frame instead of the message.
            let encoded = protocol.output_len() - before;
            let _ = shared
                .queued_bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| Some(q.saturating_sub(len) + encoded));
        }
        Command::SendPrepared(frame) => {
            // A frame encoded once for many connections goes out as is, after whatever the
            // protocol has produced so far. Nothing may follow our Close frame.
            if protocol.state() == State::Open {
                if protocol.has_output() {
                    staged.push(protocol.take_output().freeze());
                }
                staged.push(frame);
            } else {
                let _ = shared
                    .queued_bytes
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| Some(q.saturating_sub(frame.len())));
            }
        }
        Command::Ping(payload) => {
            let _ = protocol.ping(&payload);
        }
        Command::Close(code, reason) => {
            if protocol.close(code, &reason).is_ok() {
                close_deadline.get_or_insert(Instant::now() + close_timeout);
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

    fn append(&mut self, other: &mut Outbox) {
        self.len += other.len;
        self.chunks.append(&mut other.chunks);
        other.len = 0;
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
