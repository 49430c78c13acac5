//! The close timeout (`ServerConfig::close_timeout`), on tokio's paused clock: once the server has
//! sent its Close frame, a peer that never answers is dropped (the server ends TCP) after the
//! close timeout, not before, and the listener hears of an unclean 1006 end; a peer that answers
//! gets a clean close at once. Listener API and stream API.

mod common;

use std::time::Duration;

use common::RawClient;
use tether_proto::frame::OpCode;
use tether_tokio::{
    CloseCode, Closed, Conn, Listener, Message, RouteOptions, Server, ServerConfig, Transport, WebSocket,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
const SLACK: Duration = Duration::from_millis(50);

/// Closes with 1000 "bye" when asked to; reports how each connection ended.
struct Bye(mpsc::UnboundedSender<Closed>);

impl Listener for Bye {
    async fn message(&self, conn: &Conn, message: Message) {
        if message.as_bytes() == b"bye" {
            let _ = conn.close(CloseCode::NORMAL, "bye");
        }
    }

    async fn closed(&self, _conn: &Conn, closed: &Closed) {
        let _ = self.0.send(closed.clone());
    }
}

async fn stream_bye(mut ws: WebSocket<Transport>, _request: tether_proto::handshake::server::UpgradeRequest) {
    while let Some(Ok(message)) = ws.recv().await {
        if message.as_bytes() == b"bye" {
            let _ = ws.close(CloseCode::NORMAL, "bye").await;
        }
    }
}

const PATHS: [&str; 2] = ["/listener", "/stream"];

async fn server() -> (String, mpsc::UnboundedReceiver<Closed>) {
    // No pings, no idle timeout: nothing but the close timeout ends a connection here.
    let config = ServerConfig {
        close_timeout: CLOSE_TIMEOUT,
        ping_interval: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        ..ServerConfig::default()
    };
    let (closed, closings) = mpsc::unbounded_channel();
    let server = Server::new(config).route("/listener", Bye(closed)).route_stream(
        "/stream",
        RouteOptions::default(),
        stream_bye,
    );
    (common::serve(server).await, closings)
}

/// Asks the server to close and returns when its Close frame arrived.
async fn server_closes(client: &mut RawClient, path: &str) -> Instant {
    client.send(OpCode::Text, b"bye").await;
    let frame = tokio::time::timeout(SLACK, client.next_frame()).await.expect("the Close at once");
    let (opcode, payload) = frame.expect("a Close frame");
    assert_eq!(opcode, OpCode::Close, "{path}");
    assert_eq!(common::close_frame(&payload), (1000, "bye".to_owned()), "{path}");
    Instant::now()
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_answers_our_close_is_dropped_after_the_close_timeout() {
    let (addr, mut closings) = server().await;
    for path in PATHS {
        let mut client = RawClient::connect(&addr, path).await;
        let sent = server_closes(&mut client, path).await;
        // Never answered: TCP stays up for the close timeout...
        assert!(client.is_silent_for(CLOSE_TIMEOUT - SLACK).await, "{path}: TCP ended before the close timeout");
        // ... and then the server ends it.
        let end = tokio::time::timeout(SLACK * 2, client.next_frame()).await.expect("TCP ends at the close timeout");
        assert_eq!(end, None, "{path}: no frame after the Close");
        let after = sent.elapsed();
        assert!(after >= CLOSE_TIMEOUT && after < CLOSE_TIMEOUT + SLACK, "{path}: dropped after {after:?}");
    }
    // The listener is told the closing handshake did not complete.
    let closed = tokio::time::timeout(CLOSE_TIMEOUT * 2, closings.recv()).await.expect("closed is called");
    let closed = closed.unwrap();
    assert_eq!((closed.code, closed.clean), (CloseCode::ABNORMAL, false), "{closed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_answers_our_close_gets_a_clean_close_at_once() {
    let (addr, mut closings) = server().await;
    for path in PATHS {
        let mut client = RawClient::connect(&addr, path).await;
        let sent = server_closes(&mut client, path).await;
        client.send(OpCode::Close, &1000u16.to_be_bytes()).await;
        let end = tokio::time::timeout(SLACK, client.next_frame()).await.expect("TCP ends at once");
        assert_eq!(end, None, "{path}");
        assert!(sent.elapsed() < SLACK, "{path}: {:?}", sent.elapsed());
        // Our FIN lets the server's side end too.
        tokio::io::AsyncWriteExt::shutdown(&mut client.stream).await.unwrap();
    }
    let closed = tokio::time::timeout(SLACK, closings.recv()).await.expect("closed is called at once").unwrap();
    assert_eq!((closed.code, closed.clean), (CloseCode::NORMAL, true), "{closed:?}");
}
