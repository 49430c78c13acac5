//! A server at its connection limit: WebSocket upgrades get 503, but plain HTTP (a liveness probe)
//! is still answered, and the connections already open keep working.

mod common;

use common::Echo;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tether_tokio::{ClientBuilder, Message, Server, ServerConfig};

/// Sends a raw request and returns everything the server answers before it closes.
async fn raw(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

const UPGRADE: &str = "GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[tokio::test]
async fn a_full_server_refuses_upgrades_but_answers_health_checks() {
    let router = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
    let config = ServerConfig { max_connections: 1, ..ServerConfig::default() };
    let server = Server::new(config).route("/echo", Echo).http(router).bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let handle = server.handle();
    tokio::spawn(server.run());

    let (mut first, _) = ClientBuilder::new(&format!("ws://{addr}/echo")).connect().await.unwrap();
    assert!(!handle.is_accepting(), "one open connection fills a server of one");

    let refused = raw(&addr, UPGRADE).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");

    // Liveness is not readiness: the health check is answered in full, then the socket is closed.
    let health = raw(&addr, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");

    // The connection already open is served as before.
    first.send(&Message::Text("still here".into())).await.unwrap();
    assert_eq!(first.recv().await.unwrap().unwrap(), Message::Text("still here".into()));
}
