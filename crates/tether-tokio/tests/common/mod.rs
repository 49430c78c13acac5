//! A raw WebSocket client for tests that must send exactly the bytes they choose (a frame header
//! without its payload, say) or see every frame the server sends (pings included).

#![allow(dead_code)] // Each test target uses its own part.

use std::time::Duration;

use bytes::BytesMut;
use tether_proto::frame::{encode_frame, FrameDecoder, FrameEvent, OpCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Echoes every message on a listener route.
pub struct Echo;

impl tether_tokio::Listener for Echo {
    async fn message(&self, conn: &tether_tokio::Conn, message: tether_tokio::Message) {
        let _ = conn.send(message);
    }
}

/// Echoes every message on a stream route, until the peer closes.
pub async fn stream_echo(
    mut ws: tether_tokio::WebSocket<tether_tokio::Transport>,
    _request: tether_proto::handshake::server::UpgradeRequest,
) {
    while let Some(Ok(message)) = ws.recv().await {
        if ws.send(&message).await.is_err() {
            break;
        }
    }
}

/// Binds `server` to an ephemeral loopback port, runs it in the background and returns its address.
pub async fn serve(server: tether_tokio::Server) -> String {
    let server = server.bind("127.0.0.1:0").await.expect("binds");
    let addr = server.local_addr().unwrap().to_string();
    tokio::spawn(server.run());
    addr
}

/// A TCP connection on which the opening handshake for `path` is done.
pub struct RawClient {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

impl RawClient {
    /// Connects to `addr` and upgrades `path` (no extensions offered).
    pub async fn connect(addr: &str, path: &str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connects");
        Self::upgrade(stream, BytesMut::new(), addr, path).await
    }

    /// Upgrades `path` on a connection already open (one that served plain HTTP first, say);
    /// `buf` holds what was read from it past the last response.
    pub async fn upgrade(mut stream: TcpStream, mut buf: BytesMut, addr: &str, path: &str) -> Self {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(stream.read_buf(&mut buf).await.unwrap() > 0, "server closed during the handshake");
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let _ = buf.split_to(end);
        Self { stream, buf }
    }

    /// Sends one masked frame.
    pub async fn send(&mut self, opcode: OpCode, payload: &[u8]) {
        let mut frame = BytesMut::new();
        encode_frame(&mut frame, opcode, true, false, payload, Some([1, 2, 3, 4]));
        self.stream.write_all(&frame).await.unwrap();
    }

    /// The next whole frame from the server: its opcode and payload, or `None` when the server
    /// closed TCP.
    pub async fn next_frame(&mut self) -> Option<(OpCode, Vec<u8>)> {
        let mut decoder = FrameDecoder::new();
        let mut opcode = None;
        let mut payload = Vec::new();
        loop {
            while let Some(event) = decoder.decode(&mut self.buf).expect("the server sends valid frames") {
                match event {
                    FrameEvent::Header(header) => {
                        assert!(header.mask.is_none(), "a server frame is unmasked");
                        opcode = Some(header.opcode);
                        if header.payload_len == 0 {
                            return opcode.map(|op| (op, payload));
                        }
                    }
                    FrameEvent::Payload { data, last } => {
                        payload.extend_from_slice(&data);
                        if last {
                            return opcode.map(|op| (op, payload));
                        }
                    }
                }
            }
            if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    /// Whether the server sends nothing (and keeps TCP open) for `wait`.
    pub async fn is_silent_for(&mut self, wait: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        tokio::time::timeout(wait, self.stream.read_buf(&mut self.buf)).await.is_err()
    }
}

/// The close code of a Close frame's payload.
pub fn close_code(payload: &[u8]) -> u16 {
    assert!(payload.len() >= 2, "a Close frame with a code: {payload:?}");
    u16::from_be_bytes([payload[0], payload[1]])
}

/// The close code and reason of a Close frame's payload.
pub fn close_frame(payload: &[u8]) -> (u16, String) {
    let code = close_code(payload);
    (code, String::from_utf8(payload[2..].to_vec()).expect("a UTF-8 reason"))
}

/// A WebSocket upgrade request for `path` with the RFC's sample key and `extra` header lines
/// (each ending in CRLF).
pub fn upgrade_request(path: &str, host: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Reads from `stream` until a whole response head is in `buf`; returns the head (everything past
/// it stays in `buf`), or what came before the server closed.
pub async fn read_head(stream: &mut (impl tokio::io::AsyncRead + Unpin), buf: &mut BytesMut) -> String {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf.split_to(end + 4);
            return String::from_utf8_lossy(&head).into_owned();
        }
        if stream.read_buf(buf).await.unwrap_or(0) == 0 {
            return String::from_utf8_lossy(&buf.split()).into_owned();
        }
    }
}

/// Sends `request` on a new connection and returns the response head.
pub async fn response_head(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_head(&mut stream, &mut BytesMut::new()).await
}

/// The status code of a response head ("" if there is none).
pub fn status_of(head: &str) -> &str {
    head.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.split(' ').next()).unwrap_or("")
}

impl RawClient {
    /// Skips pings and data frames up to the server's Close frame; returns its code and reason.
    /// Panics when TCP ends first.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.next_frame().await {
                Some((OpCode::Close, payload)) => return close_frame(&payload),
                Some(_) => {}
                None => panic!("TCP ended without a Close frame"),
            }
        }
    }
}

/// Waits on a socket under the paused clock without mistaking the kernel's pauses for silence.
///
/// Loopback bytes are not always there at once: with a small receive window the kernel sends a
/// window update after its own delayed-ACK or probe timer, in real time. While every task waits for
/// that, the paused clock jumps to the next timer, so a timeout of virtual time says nothing about
/// whether the peer will ever send. A test that moves much data therefore waits in short virtual
/// timeouts ([`STALL`]) and gives up only after [`STALLED_FOR`] of real time without progress.
pub struct Patience {
    progress_at: std::time::Instant,
}

/// One wait of virtual time.
pub const STALL: Duration = Duration::from_millis(10);
/// Real time without progress before a [`Patience`] gives up.
pub const STALLED_FOR: Duration = Duration::from_secs(5);

impl Default for Patience {
    fn default() -> Self {
        Self { progress_at: std::time::Instant::now() }
    }
}

impl Patience {
    /// Something was read or written.
    pub fn progress(&mut self) {
        self.progress_at = std::time::Instant::now();
    }

    /// A [`STALL`] passed without progress: fails once that has lasted [`STALLED_FOR`] of real
    /// time, and otherwise lets the kernel work for a millisecond rather than spin.
    pub fn stalled(&mut self, what: &str) {
        assert!(self.progress_at.elapsed() < STALLED_FOR, "{what}: no progress for {STALLED_FOR:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl RawClient {
    /// Like [`RawClient::next_frame`], but tolerant of the kernel's pauses (see [`Patience`]);
    /// panics after [`STALLED_FOR`] without a byte.
    pub async fn next_frame_patiently(&mut self) -> Option<(OpCode, Vec<u8>)> {
        let mut decoder = FrameDecoder::new();
        let (mut opcode, mut payload) = (None, Vec::new());
        let mut patience = Patience::default();
        loop {
            while let Some(event) = decoder.decode(&mut self.buf).expect("the server sends valid frames") {
                let last = match event {
                    FrameEvent::Header(header) => {
                        opcode = Some(header.opcode);
                        header.payload_len == 0
                    }
                    FrameEvent::Payload { data, last } => {
                        payload.extend_from_slice(&data);
                        last
                    }
                };
                if last {
                    return opcode.map(|op| (op, payload));
                }
            }
            // `read_buf` is cancel-safe: what it read is in `buf`.
            match tokio::time::timeout(STALL, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(_)) => patience.progress(),
                Err(_) => patience.stalled("waiting for a frame"),
            }
        }
    }
}
