//! The server's counters ([`tether_tokio::ServerStats`]) against a real server: messages by kind
//! and bytes exactly as on the wire, per route; accepted and open connections; refusals by status;
//! closes by code, with the server's own codes exact and a peer's application codes grouped; and
//! counts that survive their connection's end without being counted twice.

mod common;

use std::time::Duration;

use common::{Echo, RawClient};
use tether_proto::frame::OpCode;
use tether_tokio::{CloseCode, Conn, Listener, Message, RouteStats, Server, ServerStats, StatsSnapshot};

/// Closes the connection with 4001 when asked "close me", else echoes.
struct Closer;

impl Listener for Closer {
    async fn message(&self, conn: &Conn, message: Message) {
        if message.as_bytes() == b"close me" {
            let _ = conn.close(CloseCode(4001), "as asked");
        } else {
            let _ = conn.send(message);
        }
    }
}

async fn server() -> (String, ServerStats) {
    let server = Server::default().route("/echo", Echo).route("/closer", Closer).route_stream(
        "/stream",
        Default::default(),
        common::stream_echo,
    );
    let stats = server.stats();
    (common::serve(server).await, stats)
}

fn route<'a>(snapshot: &'a StatsSnapshot, path: &str) -> &'a RouteStats {
    snapshot.routes.iter().find(|route| route.path == path).expect("every route is listed")
}

/// Waits (in real time, briefly) until the server has taken the connections that closed out of
/// its counts of open ones: a client sees the end before the server's task finishes it.
async fn settled(stats: &ServerStats, open: u64) -> StatsSnapshot {
    for _ in 0..500 {
        let snapshot = stats.snapshot();
        if snapshot.totals().open == open {
            return snapshot;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("still {:?} open, expected {open}", stats.snapshot().totals().open);
}

#[tokio::test]
async fn messages_and_bytes_are_counted_by_route_and_kind_and_outlive_their_connection() {
    let (addr, stats) = server().await;
    let before = stats.snapshot();
    assert_eq!(before.routes.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/closer", "/echo", "/stream"]);
    assert_eq!(before.totals(), RouteStats::default());
    assert!(before.handshake_rejections.is_empty() && before.closes.is_empty());

    let mut client = RawClient::connect(&addr, "/echo").await;
    client.send(OpCode::Text, b"hello").await;
    client.send(OpCode::Text, b"again").await;
    client.send(OpCode::Binary, &[1, 2, 3]).await;
    for _ in 0..3 {
        assert!(client.next_frame().await.is_some());
    }
    let live = stats.snapshot();
    let echo = route(&live, "/echo");
    assert_eq!((echo.open, echo.accepted), (1, 1));
    assert_eq!((echo.text_received, echo.binary_received, echo.messages_sent), (2, 1, 3));
    // Client frames carry a 4-byte mask: 2 + 4 + payload each; the server's: 2 + payload.
    assert_eq!(echo.bytes_received, (6 + 5) * 2 + 6 + 3);
    assert_eq!(echo.bytes_sent, (2 + 5) * 2 + 2 + 3);
    let closer = route(&live, "/closer");
    assert_eq!((closer.accepted, closer.messages_received(), closer.bytes_sent), (0, 0, 0));

    // The client closes with 1000: the counts move into the route's totals, unchanged.
    client.send(OpCode::Close, &1000u16.to_be_bytes()).await;
    assert_eq!(client.expect_close().await.0, 1000);
    drop(client);
    let after = settled(&stats, 0).await;
    let echo_after = route(&after, "/echo");
    assert_eq!((echo_after.open, echo_after.accepted), (0, 1));
    assert_eq!(echo_after.messages_received(), 3, "counted once, not lost nor doubled");
    // The client's Close frame came in too (2 + 4 + 2 bytes).
    assert_eq!(echo_after.bytes_received, echo.bytes_received + 8);
    // The server's Close frame (2 + 2 bytes) went out too.
    assert_eq!(echo_after.bytes_sent, echo.bytes_sent + 4);
    assert_eq!(after.closes, vec![("1000".to_owned(), 1)]);

    // A stream-API route counts its connections, not its messages.
    let mut streamed = RawClient::connect(&addr, "/stream").await;
    streamed.send(OpCode::Text, b"hi").await;
    assert!(streamed.next_frame().await.is_some());
    let stream = route(&stats.snapshot(), "/stream").clone();
    assert_eq!((stream.open, stream.accepted, stream.messages_received()), (1, 1, 0));
    drop(streamed);
    settled(&stats, 0).await;
}

#[tokio::test]
async fn closes_by_code_keep_the_servers_codes_and_group_the_peers() {
    let (addr, stats) = server().await;
    let mut asked = RawClient::connect(&addr, "/closer").await;
    asked.send(OpCode::Text, b"close me").await;
    assert_eq!(asked.expect_close().await.0, 4001);
    // The peer answers with a code of its own: the server started the close, so 4001 is counted.
    asked.send(OpCode::Close, &4999u16.to_be_bytes()).await;
    drop(asked);

    for code in [4321u16, 3007] {
        let mut peer = RawClient::connect(&addr, "/echo").await;
        peer.send(OpCode::Close, &code.to_be_bytes()).await;
        assert_eq!(peer.expect_close().await.0, code);
        drop(peer);
    }
    // A protocol error (an unmasked frame): the server fails the connection with 1002.
    let mut broken = RawClient::connect(&addr, "/echo").await;
    use tokio::io::AsyncWriteExt;
    broken.stream.write_all(&[0x81, 0x01, b'x']).await.unwrap();
    assert_eq!(broken.expect_close().await.0, 1002);
    drop(broken);
    // A peer that just goes away: 1006.
    drop(RawClient::connect(&addr, "/echo").await);

    let snapshot = settled(&stats, 0).await;
    let expected = [("1002", 1), ("1006", 1), ("3xxx", 1), ("4001", 1), ("4xxx", 1)];
    assert_eq!(snapshot.closes, expected.map(|(label, n)| (label.to_owned(), n)));
    assert_eq!(route(&snapshot, "/echo").accepted, 4);
    assert_eq!(snapshot.slow_consumer_disconnects, 0);
}

#[tokio::test]
async fn refusals_are_counted_by_status() {
    let (addr, stats) = server().await;
    let not_found = common::response_head(&addr, &common::upgrade_request("/nope", &addr, "")).await;
    assert_eq!(common::status_of(&not_found), "404");
    let bad_version = common::upgrade_request("/echo", &addr, "").replace("Version: 13", "Version: 8");
    let head = common::response_head(&addr, &bad_version).await;
    assert_eq!(common::status_of(&head), "426");
    let head = common::response_head(&addr, &common::upgrade_request("/nope", &addr, "")).await;
    assert_eq!(common::status_of(&head), "404");
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.handshake_rejections, vec![(404, 2), (426, 1)]);
    assert_eq!(snapshot.totals().accepted, 0);
}
