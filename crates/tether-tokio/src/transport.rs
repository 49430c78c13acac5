//! The byte streams a WebSocket can run over: plain TCP, TLS over TCP (either side), or a connection that hyper
//! upgraded after serving plain HTTP requests on it. One enum with static dispatch, so handlers and
//! the connection task have a single concrete stream type.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use hyper_util::rt::TokioIo;
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A connection's byte stream.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP (`ws://`).
    Tcp(TcpStream),
    /// TLS over TCP (`wss://`), server side.
    Tls(Box<TlsStream<TcpStream>>),
    /// TLS over TCP (`wss://`), client side.
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A stream hyper handed over after an HTTP/1.1 upgrade on a kept-alive connection.
    Upgraded(Box<TokioIo<hyper::upgrade::Upgraded>>),
}

macro_rules! delegate {
    ($self:ident, $stream:ident => $call:expr) => {
        match $self.get_mut() {
            Transport::Tcp($stream) => $call,
            Transport::Tls($stream) => $call,
            Transport::ClientTls($stream) => $call,
            Transport::Upgraded($stream) => $call,
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
            Self::ClientTls(s) => s.is_write_vectored(),
            Self::Upgraded(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// How much room a read asks for.
const READ_CHUNK: usize = 8 * 1024;
/// The most room a read asks for when a large frame is coming. 256 KiB measured better than 1 MiB
/// for 1 MiB messages: each fresh large buffer is paid for in page faults.
const MAX_READ_ROOM: usize = 256 << 10;

impl Transport {
    /// Reads into `buf`, allocating its room only once the socket is readable.
    ///
    /// For plain TCP the task waits for readiness with no buffer at all (`buf` stays unallocated;
    /// `docs/memory-per-connection.md`, rule 1). TLS and upgraded streams need the buffer to poll: it
    /// is lent to them for the poll only (see [`poll_read_lean`]).
    ///
    /// `hint` is how many bytes the protocol knows are coming (the rest of a large frame); up to
    /// [`MAX_READ_ROOM`] of it is reserved so a large message arrives in few reads.
    pub(crate) fn poll_read_when_ready(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        hint: usize,
    ) -> Poll<std::io::Result<usize>> {
        match self {
            Self::Tcp(tcp) => loop {
                if let Err(error) = std::task::ready!(tcp.poll_read_ready(cx)) {
                    return Poll::Ready(Err(error));
                }
                reserve_read_room(buf, hint);
                // A read that leaves room in the buffer has drained the socket: its readiness is
                // cleared right away (tokio does that when `try_io`'s closure says WouldBlock, and
                // keeps it if an event came in meanwhile), so the next wait goes straight to the
                // reactor instead of spending a read system call that can only answer EAGAIN.
                // Tokio's own `poll_read` does the same; `try_read_buf` alone does not.
                let spare = buf.capacity() - buf.len();
                let mut read = 0;
                let result = tcp.try_io(Interest::READABLE, || {
                    read = tcp.try_read_buf(buf)?;
                    if read > 0 && read < spare {
                        Err(std::io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(())
                    }
                });
                match result {
                    Ok(()) => return Poll::Ready(Ok(read)),
                    Err(_) if read > 0 => return Poll::Ready(Ok(read)),
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                        // A spurious wake-up: readiness is cleared, don't keep the room we made.
                        release_if_empty(buf);
                    }
                    Err(error) => return Poll::Ready(Err(error)),
                }
            },
            other => poll_read_lean(other, cx, buf, hint),
        }
    }
}

/// Reads into `buf` from any stream, holding room in `buf` only while the read is tried: when the
/// stream has nothing yet and `buf` holds no bytes, the room is given back before waiting, so a
/// connection waiting on its peer keeps no read buffer (`docs/memory-per-connection.md`, rule 1).
///
/// `hint` as for [`Transport::poll_read_when_ready`].
pub(crate) fn poll_read_lean<S: AsyncRead + Unpin>(
    io: &mut S,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    hint: usize,
) -> Poll<std::io::Result<usize>> {
    reserve_read_room(buf, hint);
    let read = tokio_util::io::poll_read_buf(Pin::new(io), cx, buf);
    if read.is_pending() {
        release_if_empty(buf);
    }
    read
}

/// Makes room for a read: when less than [`READ_CHUNK`] is free, reserves `hint` (the rest of a
/// large frame), at least [`READ_CHUNK`] and at most [`MAX_READ_ROOM`].
fn reserve_read_room(buf: &mut BytesMut, hint: usize) {
    if buf.capacity() - buf.len() < READ_CHUNK {
        buf.reserve(hint.clamp(READ_CHUNK, MAX_READ_ROOM));
    }
}

/// Gives back the allocation of a buffer that holds no bytes: a connection waiting on its peer
/// keeps no read buffer.
pub(crate) fn release_if_empty(buf: &mut BytesMut) {
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
}

/// Writes `pending`, then closes the transport the way RFC 6455 §7.1.1 asks: a server sends its FIN
/// first and reads until the peer's, a client reads until the server's FIN and then closes. Reading
/// to the end keeps the kernel from answering unread data with a reset, which could destroy what
/// was just written (our Close frame, or an HTTP error response). Callers bound it with a timeout.
/// `written` is told each chunk's length once the transport has taken it (the connection's byte
/// count: a write cut short by the timeout is not counted as sent).
pub(crate) async fn write_and_close<S, B>(
    io: &mut S,
    pending: impl IntoIterator<Item = B>,
    server: bool,
    mut written: impl FnMut(usize),
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    B: AsRef<[u8]>,
{
    for chunk in pending {
        io.write_all(chunk.as_ref()).await?;
        written(chunk.as_ref().len());
    }
    if server {
        io.shutdown().await?;
    }
    let mut sink = [0u8; 1024];
    while io.read(&mut sink).await? > 0 {}
    if !server {
        io.shutdown().await?;
    }
    Ok(())
}

/// A stream with bytes already read from it put back in front: lets hyper parse a request head that
/// the server read first to decide between WebSocket and plain HTTP.
#[derive(Debug)]
pub(crate) struct Rewind<S> {
    prefix: bytes::Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(prefix: bytes::Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lean_read_holds_no_buffer_while_waiting() {
        let (mut ours, mut theirs) = tokio::io::duplex(64);
        let mut buf = BytesMut::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());

        assert!(poll_read_lean(&mut ours, &mut cx, &mut buf, 0).is_pending());
        assert_eq!(buf.capacity(), 0, "nothing to read: the room was given back");

        theirs.write_all(b"hello").await.unwrap();
        let read = poll_read_lean(&mut ours, &mut cx, &mut buf, 0);
        assert!(matches!(read, Poll::Ready(Ok(5))));
        assert_eq!(&buf[..], b"hello");

        // Bytes already buffered (a partial frame) keep the buffer while waiting for the rest.
        assert!(poll_read_lean(&mut ours, &mut cx, &mut buf, 0).is_pending());
        assert_eq!(&buf[..], b"hello");
        assert!(buf.capacity() >= READ_CHUNK);
    }
}
