//! `WebSocket::recv` cancelled over and over while messages stream in: every message must arrive
//! exactly once, in order and intact, and what `recv` writes meanwhile (the pongs to the peer's
//! pings, then the Close echo) must reach the peer whole and in order.
//!
//! The client runs over an in-memory pipe with a small buffer, and the peer reads the client's
//! output a few bytes at a time, so the client's writes often stop halfway: that is where a
//! cancelled `recv` used to drop the rest of its output (the stream then breaks). Messages are
//! text and binary, small and large, compressed, and fragmented into many frames.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tether_proto::deflate::DeflateParams;
use tether_proto::frame::{encode_frame, OpCode};
use tether_proto::{CloseCode, Config, Connection, Event, Message, Role};
use tether_tokio::WebSocket;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf};

const MESSAGES: usize = 150;
/// Pings after each message: their pongs (14 bytes each) are more than the pipe holds, so the
/// client's writes fill it and stop halfway.
const PINGS: usize = 40;

/// Ready after being polled `n` times (waking itself each time): races `recv` for a few polls.
struct PollsThen(u32);

impl Future for PollsThen {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Message `i`: text or binary, 10 B to 200 KB, and how it is sent (0 whole, 1 compressed
/// (the sender's deflate compresses every message), 2 fragmented into 1000-byte frames).
fn message(i: usize) -> (Message, usize) {
    let size = [10, 1_000, 5_000, 70_000, 200_000][i % 5];
    let fill = |j: usize| ((i * 7 + j) % 26) as u8 + b'a';
    let bytes: Vec<u8> = (0..size).map(fill).collect();
    let message = if i.is_multiple_of(2) {
        Message::Text(String::from_utf8(bytes).unwrap().into())
    } else {
        Message::Binary(bytes.into())
    };
    (message, i % 3)
}

fn params() -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    }
}

/// The peer's frames: every message, a burst of pings numbered in order after each, then a Close.
fn peer_output() -> Vec<u8> {
    let mut compressing = Connection::new(Role::Server, Config::default(), Some(params()));
    let mut plain = Connection::new(Role::Server, Config::default(), None);
    let mut wire = Vec::new();
    for i in 0..MESSAGES {
        let (message, how) = message(i);
        match how {
            0 => plain.send(&message).unwrap(),
            1 => compressing.send(&message).unwrap(),
            _ => {
                let (opcode, payload) = match &message {
                    Message::Text(text) => (OpCode::Text, text.as_bytes().as_ref()),
                    Message::Binary(data) => (OpCode::Binary, data.as_ref()),
                };
                let mut frames = BytesMut::new();
                let pieces: Vec<&[u8]> = payload.chunks(1000).collect();
                for (n, piece) in pieces.iter().enumerate() {
                    let op = if n == 0 { opcode } else { OpCode::Continuation };
                    encode_frame(&mut frames, op, n + 1 == pieces.len(), false, piece, None);
                }
                wire.extend_from_slice(&plain.take_output());
                wire.extend_from_slice(&compressing.take_output());
                wire.extend_from_slice(&frames);
            }
        }
        for n in 0..PINGS {
            plain.ping(&((i * PINGS + n) as u64).to_be_bytes()).unwrap();
        }
        wire.extend_from_slice(&compressing.take_output());
        wire.extend_from_slice(&plain.take_output());
    }
    plain.close(CloseCode::NORMAL, "done").unwrap();
    wire.extend_from_slice(&plain.take_output());
    wire
}

/// The peer's side of the client's output: reads it `piece` bytes at a time (so the client's
/// writes stop halfway) and decodes it as a server with `deflate`. Returns the pongs' payloads and
/// the code of the client's Close frame; any other frame, or output that does not decode, fails.
async fn read_client_output(
    mut read: ReadHalf<DuplexStream>,
    deflate: Option<DeflateParams>,
    piece: usize,
) -> (Vec<Bytes>, Option<CloseCode>) {
    let mut peer = Connection::new(Role::Server, Config::default(), deflate);
    let mut input = BytesMut::new();
    let mut pongs = Vec::new();
    loop {
        match peer.receive(&mut input) {
            Ok(Some(Event::Pong(payload))) => {
                pongs.push(payload);
                continue;
            }
            Ok(Some(Event::Close(frame))) => return (pongs, frame.map(|f| f.code)),
            Ok(Some(other)) => panic!("the client sent {other:?}"),
            Ok(None) => {}
            Err(error) => panic!("the client's output is broken after {} pongs: {error}", pongs.len()),
        }
        let mut buf = vec![0u8; piece];
        let n = read.read(&mut buf).await.unwrap();
        assert!(n > 0, "the client closed before its Close frame");
        input.extend_from_slice(&buf[..n]);
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn recv_cancelled_thousands_of_times_loses_and_corrupts_nothing() {
    let (client_io, peer_io) = tokio::io::duplex(256);
    let (peer_read, mut peer_write) = tokio::io::split(peer_io);
    let wire = peer_output();
    let writer = tokio::spawn(async move {
        for chunk in wire.chunks(3_000) {
            peer_write.write_all(chunk).await.unwrap();
        }
    });
    // The peer reads the client's output slowly, 5 bytes at a time, checking every frame. Once both
    // halves are gone (the writer's when it is done, the reader's after the Close), the client sees
    // the end of the stream, which ends its closing.
    let reader = tokio::spawn(read_client_output(peer_read, Some(params()), 5));

    let client = Connection::new(Role::Client, Config::default(), Some(params()));
    let mut ws = WebSocket::from_parts(client_io, client, BytesMut::new(), Duration::from_secs(5));
    let mut received = Vec::new();
    let mut cancelled = 0u32;
    let run = async {
        for round in 0u32..2_000_000 {
            tokio::select! {
                biased;
                next = ws.recv() => match next {
                    Some(Ok(message)) => received.push(message),
                    Some(Err(error)) => panic!("recv failed after {} messages: {error}", received.len()),
                    None => return,
                },
                () = PollsThen(round % 4) => cancelled += 1,
            }
        }
        panic!("no end after 2,000,000 rounds");
    };
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("the stream ends within 60 s");
    assert!(cancelled > 1_000, "recv was cancelled {cancelled} times only");
    assert_eq!(received.len(), MESSAGES, "every message exactly once");
    for (i, got) in received.iter().enumerate() {
        assert!(*got == message(i).0, "message {i} arrived changed");
    }
    let closed = ws.closed().expect("closed");
    assert!(closed.clean && closed.code == CloseCode::NORMAL, "{closed:?}");
    let (pongs, code) = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("peer done").unwrap();
    for (n, payload) in pongs.iter().enumerate() {
        assert_eq!(payload[..], (n as u64).to_be_bytes(), "pongs arrive whole and in order");
    }
    assert_eq!(pongs.len(), MESSAGES * PINGS, "one pong per ping");
    assert_eq!(code, Some(CloseCode::NORMAL), "the Close echo arrives whole");
    writer.await.unwrap();
    println!("recv cancelled {cancelled} times");
}

/// A protocol error in the middle of the stream, with `recv` cancelled all along: the messages
/// before it arrive once each, the error is reported exactly once (then `None`), and the peer gets
/// our whole Close frame with 1002 even though the closing was interrupted again and again.
#[tokio::test]
async fn a_protocol_error_is_reported_once_across_cancellations() {
    let (client_io, peer_io) = tokio::io::duplex(64);
    let (peer_read, mut peer_write) = tokio::io::split(peer_io);
    let mut plain = Connection::new(Role::Server, Config::default(), None);
    let mut wire = Vec::new();
    for i in 0..50 {
        plain.send(&message(i).0).unwrap();
        for n in 0..10u64 {
            plain.ping(&n.to_be_bytes()).unwrap();
        }
        wire.extend_from_slice(&plain.take_output());
    }
    // A masked frame: a server must never send one (1002).
    let mut bad = BytesMut::new();
    encode_frame(&mut bad, OpCode::Text, true, false, b"masked", Some([1, 2, 3, 4]));
    wire.extend_from_slice(&bad);
    let writer = tokio::spawn(async move {
        let _ = peer_write.write_all(&wire).await;
    });
    let reader = tokio::spawn(read_client_output(peer_read, None, 3));

    let client = Connection::new(Role::Client, Config::default(), None);
    let mut ws = WebSocket::from_parts(client_io, client, BytesMut::new(), Duration::from_secs(5));
    let (mut received, mut errors, mut cancelled) = (0, 0, 0u32);
    let run = async {
        for round in 0u32..1_000_000 {
            tokio::select! {
                biased;
                next = ws.recv() => match next {
                    Some(Ok(got)) => {
                        assert!(got == message(received).0, "message {received} arrived changed");
                        received += 1;
                    }
                    Some(Err(tether_tokio::Error::Protocol(_))) => errors += 1,
                    Some(Err(error)) => panic!("unexpected error: {error}"),
                    None => return,
                },
                () = PollsThen(round % 3) => cancelled += 1,
            }
        }
        panic!("no end after 1,000,000 rounds");
    };
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("ends within 60 s");
    assert!(cancelled > 100, "cancelled {cancelled} times only");
    assert_eq!((received, errors), (50, 1), "every message once, then the error once");
    assert!(ws.recv().await.is_none(), "nothing after the error");
    assert_eq!(ws.closed().map(|c| c.code), Some(CloseCode::PROTOCOL_ERROR));
    let (_, code) = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("peer done").unwrap();
    assert_eq!(code, Some(CloseCode::PROTOCOL_ERROR), "our Close arrives whole");
    writer.await.unwrap();
}
