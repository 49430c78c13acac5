//! A raw WebSocket client for tests that must send exactly the bytes they choose (a frame header
//! without its payload, say) or see every frame the server sends (pings included).

#![allow(dead_code)] // Each test target uses its own part.

use std::time::Duration;

use bytes::BytesMut;
use tether_proto::frame::{encode_frame, FrameDecoder, FrameEvent, OpCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
