//! The Origin policy (`ServerConfig::origins`) against a real server: a foreign `Origin` gets 403
//! before the upgrade (the route never sees the connection) unless the `OriginPolicy` allows it;
//! no `Origin` and the same origin as `Host` get 101. On both APIs, and on an upgrade that follows
//! plain HTTP on the same connection (the hyper path).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use common::{read_head, response_head, status_of, upgrade_request};
use tether_tokio::{Conn, Listener, Message, OriginPolicy, RouteOptions, Server, ServerConfig, Transport, WebSocket};
use tokio::io::AsyncWriteExt;

/// Counts the connections that reached the route, on either API.
#[derive(Clone, Default)]
struct Opened(Arc<AtomicUsize>);

impl Listener for Opened {
    async fn opened(&self, _conn: &Conn) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    async fn message(&self, _conn: &Conn, _message: Message) {}
}

const PATHS: [&str; 2] = ["/listener", "/stream"];
/// The Host header every request below sends (what the browser connected to).
const HOST: &str = "chat.example:8080";

async fn server(origins: OriginPolicy) -> (String, Opened) {
    let opened = Opened::default();
    let streams = opened.clone();
    let server = Server::new(ServerConfig { origins, ..ServerConfig::default() })
        .route("/listener", opened.clone())
        .route_stream("/stream", RouteOptions::default(), move |_ws: WebSocket<Transport>, _request| {
            let streams = streams.clone();
            async move {
                streams.0.fetch_add(1, Ordering::SeqCst);
            }
        })
        .http(axum::Router::new().route("/", axum::routing::get(|| async { "ok" })));
    (common::serve(server).await, opened)
}

/// Lets the connection tasks run (a route sees its connection after the 101 is sent).
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

/// The status an upgrade of `path` with this `Origin` (if any) gets.
async fn status(addr: &str, path: &str, origin: Option<&str>) -> String {
    let origin = origin.map(|origin| format!("Origin: {origin}\r\n")).unwrap_or_default();
    let head = response_head(addr, &upgrade_request(path, HOST, &origin)).await;
    status_of(&head).to_owned()
}

#[tokio::test]
async fn a_foreign_origin_gets_403_and_never_reaches_the_route() {
    let (addr, opened) = server(OriginPolicy::same_origin()).await;
    for path in PATHS {
        for foreign in ["http://evil.example", "http://chat.example:9999", "http://chat.example", "null"] {
            assert_eq!(status(&addr, path, Some(foreign)).await, "403", "{path} {foreign}");
        }
    }
    settle().await;
    assert_eq!(opened.0.load(Ordering::SeqCst), 0, "a refused upgrade reached a route");
}

#[tokio::test]
async fn no_origin_and_the_same_origin_get_101() {
    let (addr, _) = server(OriginPolicy::same_origin()).await;
    for path in PATHS {
        assert_eq!(status(&addr, path, None).await, "101", "{path}: a non-browser client");
        for same in ["http://chat.example:8080", "HTTP://Chat.Example:8080/"] {
            assert_eq!(status(&addr, path, Some(same)).await, "101", "{path} {same}");
        }
    }
}

#[tokio::test]
async fn an_allowed_origin_gets_101_and_other_foreign_ones_still_get_403() {
    let (addr, _) = server(OriginPolicy::same_origin().allow("https://app.example")).await;
    for path in PATHS {
        assert_eq!(status(&addr, path, Some("https://app.example")).await, "101", "{path}");
        assert_eq!(status(&addr, path, Some("https://app.example:443")).await, "101", "{path}: default port");
        assert_eq!(status(&addr, path, Some("http://chat.example:8080")).await, "101", "{path}: still same-origin");
        assert_eq!(status(&addr, path, Some("http://app.example")).await, "403", "{path}: another scheme");
        assert_eq!(status(&addr, path, Some("https://evil.example")).await, "403", "{path}");
    }
}

#[tokio::test]
async fn allowing_star_lets_every_origin_in() {
    let (addr, _) = server(OriginPolicy::same_origin().allow("*")).await;
    for path in PATHS {
        assert_eq!(status(&addr, path, Some("http://evil.example")).await, "101", "{path}");
    }
}

/// An upgrade on a connection that served plain HTTP first goes through hyper: the same policy.
#[tokio::test]
async fn the_policy_holds_for_an_upgrade_after_plain_http() {
    let (addr, opened) = server(OriginPolicy::same_origin()).await;
    for (origin, expected) in [("http://evil.example", "403"), ("http://chat.example:8080", "101")] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).await.unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(status_of(&read_head(&mut stream, &mut buf).await), "200");
        let request = upgrade_request("/listener", HOST, &format!("Origin: {origin}\r\n"));
        stream.write_all(request.as_bytes()).await.unwrap();
        // The 200's body ("ok") comes first.
        let head = read_head(&mut stream, &mut buf).await;
        let head = head.strip_prefix("ok").unwrap_or(&head);
        assert_eq!(status_of(head), expected, "{origin}: {head}");
    }
    settle().await;
    assert_eq!(opened.0.load(Ordering::SeqCst), 1, "only the same-origin upgrade reached the route");
}
