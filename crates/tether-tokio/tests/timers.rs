//! Keepalive timers at their extremes, on tokio's paused clock (time jumps ahead whenever every
//! task waits): `Duration::MAX` must not overflow `Instant` arithmetic (it used to panic every
//! connection's task), and `Duration::ZERO` turns pings and the idle timeout off (it used to send
//! a ping on every turn of the loop, or close at once). Each case runs on the listener API and on
//! the stream API, whose timers are separate code.

mod common;

use std::time::Duration;

use common::{stream_echo, Echo, RawClient};
use tether_proto::frame::OpCode;
use tether_tokio::{ClientBuilder, Conn, Listener, Message, RouteOptions, Server, ServerConfig};

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
    let server = Server::new(config).route("/echo", Echo).route_stream("/stream", RouteOptions::default(), stream_echo);
    common::serve(server).await
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

/// Every timeout of the server at `Duration::MAX` (handshake, close, drain, ping, idle): the
/// handshake (direct and after plain HTTP), an echo, a closing handshake and a graceful shutdown
/// all work, and nothing panics.
#[tokio::test(start_paused = true)]
async fn every_server_timeout_at_its_maximum_is_safe() {
    let config = ServerConfig {
        handshake_timeout: Duration::MAX,
        close_timeout: Duration::MAX,
        drain_timeout: Duration::MAX,
        ping_interval: Duration::MAX,
        idle_timeout: Duration::MAX,
        ..ServerConfig::default()
    };
    let server = Server::new(config)
        .route("/echo", Echo)
        .route_stream("/stream", RouteOptions::default(), stream_echo)
        .http(axum::Router::new().route("/", axum::routing::get(|| async { "ok" })))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let handle = server.handle();
    let running = tokio::spawn(server.run());
    for path in PATHS {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
        let mut buf = bytes::BytesMut::new();
        while !buf.ends_with(b"\r\n\r\nok") {
            assert!(tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf).await.unwrap() > 0);
        }
        let mut client = RawClient::upgrade(stream, bytes::BytesMut::new(), &addr, path).await;
        echoes(&mut client, "after HTTP").await;
        let (mut ws, _) = ClientBuilder::new(&format!("ws://{addr}{path}")).connect().await.expect("connects");
        ws.send(&Message::Text("hello".into())).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::Text("hello".into()));
        ws.close(tether_tokio::CloseCode::NORMAL, "done").await.unwrap();
        assert!(ws.recv().await.is_none());
        assert!(ws.closed().unwrap().clean, "{path}: {:?}", ws.closed());
    }
    handle.shutdown();
    let stopped = tokio::time::timeout(Duration::from_secs(60), running).await.expect("the server stops");
    stopped.expect("no panic").expect("no error");
}
