//! Graceful shutdown, on tokio's paused clock: `ServerHandle::shutdown()`, or the future given to
//! `BoundServer::run_until`, stops accepting and sends 1001 "server shutting down" to every open
//! connection (listener API and stream API); the serve future ends as soon as they have all
//! closed, and at the latest after `drain_timeout` when some peer never answers.

mod common;

use std::time::Duration;

use common::{stream_echo, Echo, RawClient};
use tether_proto::frame::OpCode;
use tether_tokio::{BoundServer, RouteOptions, Server, ServerConfig};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const PATHS: [&str; 2] = ["/echo", "/stream"];
const DRAIN: Duration = Duration::from_secs(5);
const SLACK: Duration = Duration::from_millis(50);

/// A close timeout far longer than the drain timeout: a silent peer's connection outlives the
/// drain, so only the drain timeout can end the serve future.
async fn bind() -> (BoundServer, String) {
    let config = ServerConfig {
        drain_timeout: DRAIN,
        close_timeout: Duration::from_secs(600),
        ping_interval: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        ..ServerConfig::default()
    };
    let server = Server::new(config).route("/echo", Echo).route_stream("/stream", RouteOptions::default(), stream_echo);
    let bound = server.bind("127.0.0.1:0").await.unwrap();
    let addr = bound.local_addr().unwrap().to_string();
    (bound, addr)
}

/// Opens one connection per path and checks each echoes.
async fn open_all(addr: &str) -> Vec<RawClient> {
    let mut clients = Vec::new();
    for path in PATHS {
        let mut client = RawClient::connect(addr, path).await;
        client.send(OpCode::Text, b"hi").await;
        assert_eq!(client.next_frame().await, Some((OpCode::Text, b"hi".to_vec())), "{path}");
        clients.push(client);
    }
    clients
}

/// Expects the shutdown's Close at once; answers it when `answer`.
async fn told_to_go(client: &mut RawClient, answer: bool) {
    let close = tokio::time::timeout(SLACK, client.expect_close()).await.expect("the Close at once");
    assert_eq!(close, (1001, "server shutting down".to_owned()));
    if answer {
        client.send(OpCode::Close, &1001u16.to_be_bytes()).await;
        assert_eq!(client.next_frame().await, None, "TCP ends after the closing handshake");
        // Our FIN, which the server waits for before it lets the socket go.
        tokio::io::AsyncWriteExt::shutdown(&mut client.stream).await.unwrap();
    }
}

async fn stopped(running: JoinHandle<std::io::Result<()>>) {
    running.await.expect("no panic").expect("no error");
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_1001_to_every_connection_and_the_serve_future_ends_when_they_have_closed() {
    let (bound, addr) = bind().await;
    let handle = bound.handle();
    let mut running = tokio::spawn(bound.run());
    let mut clients = open_all(&addr).await;
    assert!(handle.is_accepting());

    let started = Instant::now();
    handle.shutdown();
    assert!(!handle.is_accepting(), "a readiness probe says no at once");
    for client in &mut clients {
        told_to_go(client, true).await;
    }
    // Every connection closed: the serve future ends without waiting for the drain timeout.
    tokio::time::timeout(SLACK, &mut running).await.expect("the server stops at once").unwrap().unwrap();
    assert!(started.elapsed() < SLACK, "{:?}", started.elapsed());
    assert_eq!(handle.active_connections(), 0);
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err(), "no longer accepting");
}

#[tokio::test(start_paused = true)]
async fn the_future_given_to_run_until_starts_the_same_shutdown() {
    let (bound, addr) = bind().await;
    let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(bound.run_until(async move {
        let _ = stopping.await;
    }));
    let mut clients = open_all(&addr).await;
    // Nothing happens before the future completes.
    assert!(clients[0].is_silent_for(Duration::from_secs(3600)).await);
    assert!(!running.is_finished());
    stop.send(()).unwrap();
    for client in &mut clients {
        told_to_go(client, true).await;
    }
    tokio::time::timeout(SLACK, stopped(running)).await.expect("the server stops at once");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_answers_holds_the_serve_future_for_the_drain_timeout_only() {
    let (bound, addr) = bind().await;
    let handle = bound.handle();
    let mut running = tokio::spawn(bound.run());
    let mut clients = open_all(&addr).await;
    let started = Instant::now();
    handle.shutdown();
    // The stream-API peer answers, the listener one stays silent.
    told_to_go(&mut clients[1], true).await;
    told_to_go(&mut clients[0], false).await;
    // (The answering peer's socket is let go once the server has read our FIN.)
    for _ in 0..1000 {
        if handle.active_connections() == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(handle.active_connections(), 1, "the silent peer's connection is still open");
    // The serve future waits for it up to the drain timeout, not less ...
    let early = tokio::time::timeout_at(started + DRAIN - SLACK, &mut running).await;
    assert!(early.is_err(), "the server stopped {:?} into a {DRAIN:?} drain", started.elapsed());
    // ... and no more.
    tokio::time::timeout(SLACK * 2, &mut running)
        .await
        .expect("the server stops at the drain timeout")
        .unwrap()
        .unwrap();
    let after = started.elapsed();
    assert!(after >= DRAIN && after < DRAIN + SLACK, "stopped after {after:?}");
}
