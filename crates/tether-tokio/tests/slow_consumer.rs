//! Slow consumers (`ServerConfig::max_queue_bytes`): a peer that sends but never reads makes the
//! server's queue for it grow; past the limit, `Conn::send` fails with `QueueFull` and the
//! connection is closed with 1008, while the server's other connections keep their echoes. A peer
//! that reads is never closed, however much it sends, even in bursts larger than the limit: the
//! limit is on bytes the socket would not take, not on traffic.
//!
//! The test waits on the server's own signal (the listener sees `QueueFull`), not on a timer, so it
//! does not depend on how much the kernel's socket buffers hold.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{Patience, RawClient, STALL};
use tether_proto::frame::{encode_frame, OpCode};
use tether_tokio::{Conn, Error, Listener, Message, Server, ServerConfig, ServerStats};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

const MAX_QUEUE: usize = 64 * 1024;
const CHUNK: usize = 16 * 1024;

/// Echoes, and reports the connections whose sends were refused as over the queue limit.
struct Echo(mpsc::UnboundedSender<String>);

impl Listener for Echo {
    async fn message(&self, conn: &Conn, message: Message) {
        if let Err(Error::QueueFull) = conn.send(message) {
            let _ = self.0.send(conn.id().to_owned());
        }
    }
}

async fn server() -> (String, mpsc::UnboundedReceiver<String>, ServerStats) {
    // A long close timeout: the slow peer reads its way to the Close frame, long after it was queued.
    let config = ServerConfig {
        max_queue_bytes: MAX_QUEUE,
        close_timeout: Duration::from_secs(600),
        // No pings among the echoes, no idle Close.
        ping_interval: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        ..ServerConfig::default()
    };
    let (full, fulls) = mpsc::unbounded_channel();
    let server = Server::new(config).route("/echo", Echo(full));
    let stats = server.stats();
    (common::serve(server).await, fulls, stats)
}

fn text_frame(len: usize) -> BytesMut {
    let mut frame = BytesMut::new();
    encode_frame(&mut frame, OpCode::Text, true, false, &vec![b'x'; len], Some([1, 2, 3, 4]));
    frame
}

async fn echoes(client: &mut RawClient, text: &str) {
    client.send(OpCode::Text, text.as_bytes()).await;
    let echo = client.next_frame_patiently().await;
    assert_eq!(echo, Some((OpCode::Text, text.as_bytes().to_vec())));
}

/// Reads frames (echoes, pings) up to the server's Close frame; returns its code and reason.
async fn read_to_close(client: &mut RawClient) -> (u16, String) {
    loop {
        match client.next_frame_patiently().await {
            Some((OpCode::Close, payload)) => return common::close_frame(&payload),
            Some(_) => {}
            None => panic!("TCP ended without a Close frame"),
        }
    }
}

/// A client whose socket has a small, fixed receive buffer: one that does not read stops the
/// server's writes soon, however far the kernel would otherwise grow the buffer.
async fn connect_small_buffer(addr: &str) -> RawClient {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    RawClient::upgrade(stream, BytesMut::new(), addr, "/echo").await
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_is_closed_with_1008_while_others_keep_their_echoes() {
    let (addr, mut fulls, stats) = server().await;
    let mut other = RawClient::connect(&addr, "/echo").await;
    echoes(&mut other, "before").await;

    let mut slow = connect_small_buffer(&addr).await;
    // Send echo requests without reading a byte until the server finds its queue full.
    let frame = text_frame(CHUNK);
    let mut pending = BytesMut::new();
    let mut sent = 0usize;
    let mut patience = Patience::default();
    let overflowed = loop {
        if pending.is_empty() {
            pending.extend_from_slice(&frame);
        }
        tokio::select! {
            id = fulls.recv() => break id.expect("the server runs"),
            // `write_buf` keeps its progress in `pending`: a write cut short by the timeout leaves
            // no half frame behind.
            written = tokio::time::timeout(STALL, slow.stream.write_buf(&mut pending)) => match written {
                Ok(written) => {
                    sent += written.expect("the server keeps the connection while it queues");
                    patience.progress();
                }
                Err(_) => patience.stalled(&format!("no QueueFull after {sent} bytes sent, none read")),
            },
        }
    };
    assert!(sent > MAX_QUEUE, "full after {sent} bytes: the limit is on what is queued");

    // The server is not held up by it: the other connection is served.
    echoes(&mut other, "fine").await;

    // The Close frame comes after the echoes that were queued before it.
    let (code, reason) = read_to_close(&mut slow).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("slow consumer"), "{reason}");
    assert!(fulls.try_recv().is_err(), "one connection overflowed, once: {overflowed}");
    echoes(&mut other, "after").await;

    // Counted once it has ended, as a slow consumer and as a 1008 close.
    drop(slow);
    for _ in 0..1000 {
        if stats.snapshot().slow_consumer_disconnects > 0 {
            break;
        }
        tokio::time::sleep(STALL).await;
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.slow_consumer_disconnects, 1);
    assert_eq!(snapshot.closes, vec![("1008".to_owned(), 1)]);
    assert_eq!(snapshot.routes[0].open, 1, "the other connection");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_reads_is_never_closed_even_in_bursts_larger_than_the_limit() {
    let (addr, mut fulls, stats) = server().await;
    let mut client = RawClient::connect(&addr, "/echo").await;
    let burst = 8; // 128 KiB a burst, twice the queue limit: the kernel's buffers take it.
    let frame = text_frame(CHUNK);
    for _ in 0..32 {
        for _ in 0..burst {
            client.stream.write_all(&frame).await.unwrap();
        }
        for _ in 0..burst {
            let echo = client.next_frame_patiently().await;
            assert_eq!(echo, Some((OpCode::Text, vec![b'x'; CHUNK])));
        }
    }
    assert!(fulls.try_recv().is_err(), "a reading peer's queue overflowed");
    echoes(&mut client, "4 MiB later").await;
    assert_eq!(stats.snapshot().slow_consumer_disconnects, 0);
}
