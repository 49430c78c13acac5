//! Bad handshakes get their answer at once, and the server keeps serving.

mod common;

use common::Echo;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tether_tokio::{Server, ServerConfig};

#[tokio::test]
async fn a_tls_client_on_a_plain_port_gets_400_at_once_not_after_the_handshake_timeout() {
    let server = Server::new(ServerConfig::default()).route("/echo", Echo).bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run());

    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The first bytes of a TLS ClientHello record: handshake (0x16), TLS 1.0 record version.
    stream.write_all(&[0x16, 0x03, 0x01, 0x00, 0xf4, 0x01]).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await.unwrap().unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("TLS"), "{response}");
    // Well under the 10 s handshake timeout (old servers waited for it and answered 408).
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}
