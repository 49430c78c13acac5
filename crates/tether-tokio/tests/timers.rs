//! Keepalive timers at their extremes, on tokio's paused clock (time jumps ahead whenever every
//! task waits): `Duration::MAX` must not overflow `Instant` arithmetic (it used to panic every
//! connection's task), and `Duration::ZERO` turns pings and the idle timeout off (it used to send
//! a ping on every turn of the loop, or close at once). Each case runs on the listener API and on
//! the stream API, whose timers are separate code.

mod common;

use std::time::Duration;

use common::RawClient;
use tether_proto::frame::OpCode;
use tether_tokio::{ClientBuilder, Conn, Listener, Message, RouteOptions, Server, ServerConfig, Transport, WebSocket};

struct Echo;

impl Listener for Echo {
    async fn message(&self, conn: &Conn, message: Message) {
        let _ = conn.send(message);
    }
}

async fn stream_echo(mut ws: WebSocket<Transport>, _request: tether_proto::handshake::server::UpgradeRequest) {
    while let Some(Ok(message)) = ws.recv().await {
        if ws.send(&message).await.is_err() {
            break;
        }
    }
}

/// Hands every message to the test.
struct Forward(tokio::sync::mpsc::UnboundedSender<Message>);

impl Listener for Forward {
    async fn message(&self, _conn: &Conn, message: Message) {
        let _ = self.0.send(message);
    }
}

const PATHS: [&str; 2] = ["/echo", "/stream"];

async fn server(ping_interval: Duration, idle_timeout: Duration) -> String {
    let config = ServerConfig { ping_interval, idle_timeout, ..ServerConfig::default() };
    let server = Server::new(config)
        .route("/echo", Echo)
        .route_stream("/stream", RouteOptions::default(), stream_echo)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    tokio::spawn(server.run());
    addr
}

/// Sends a text frame and expects its echo as the very next frame (no ping before it).
async fn echoes(client: &mut RawClient, text: &str) {
    client.send(OpCode::Text, text.as_bytes()).await;
    let frame = tokio::time::timeout(Duration::from_secs(5), client.next_frame()).await.expect("an answer");
    assert_eq!(frame, Some((OpCode::Text, text.as_bytes().to_vec())));
}

#[tokio::test(start_paused = true)]
async fn the_longest_timers_do_not_overflow() {
    let addr = server(Duration::MAX, Duration::MAX).await;
    for path in PATHS {
        let mut client = RawClient::connect(&addr, path).await;
        echoes(&mut client, "before").await;
        tokio::time::sleep(Duration::from_secs(86_400)).await;
        echoes(&mut client, "a day later").await;
    }
    // The client's own timers too, with the listener API and the WebSocket API.
    for path in PATHS {
        let builder = ClientBuilder::new(&format!("ws://{addr}{path}")).ping_interval(Some(Duration::MAX));
        let (mut ws, _) = builder.clone().connect().await.expect("connects");
        ws.send(&Message::Text("hello".into())).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::Text("hello".into()));
        let (echoes, mut received) = tokio::sync::mpsc::unbounded_channel();
        let (conn, _) = builder.spawn(Forward(echoes)).await.expect("connects");
        conn.send_text("hello").unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(5), received.recv()).await.expect("an echo");
        assert_eq!(echo, Some(Message::Text("hello".into())), "{path}");
        tokio::time::sleep(Duration::from_secs(86_400)).await;
        assert!(!conn.is_closed(), "{path}: the client's connection task is alive");
    }
}

#[tokio::test(start_paused = true)]
async fn a_zero_ping_interval_sends_no_pings() {
    let addr = server(Duration::ZERO, Duration::from_secs(3_600)).await;
    for path in PATHS {
        let mut client = RawClient::connect(&addr, path).await;
        assert!(client.is_silent_for(Duration::from_secs(600)).await, "{path}: a frame arrived (a ping?)");
        echoes(&mut client, "still open").await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_zero_idle_timeout_never_closes_an_idle_connection() {
    let addr = server(Duration::ZERO, Duration::ZERO).await;
    for path in PATHS {
        let mut client = RawClient::connect(&addr, path).await;
        assert!(client.is_silent_for(Duration::from_secs(7 * 86_400)).await, "{path}: a frame arrived (a Close?)");
        echoes(&mut client, "a week later").await;
    }
}
