//! Per-route size limits (`RouteOptions::max_message_size`, `max_frame_size`) against an in-process
//! server on an ephemeral port: a route with small limits refuses a large frame with 1009 as soon
//! as its header arrives (its payload is never sent), while another route of the same server still
//! takes large messages.

mod common;

use std::time::Duration;

use common::{close_code, stream_echo, Echo, RawClient};
use tether_proto::frame::{FrameHeader, OpCode};
use tether_tokio::{ClientBuilder, Message, RouteOptions, Server, ServerConfig};

/// A server with small-limit routes (listener and stream API) and default-limit ones.
async fn server() -> String {
    let small = RouteOptions::default().max_message_size(1024);
    let small_frames = RouteOptions::default().max_frame_size(1024);
    let server = Server::new(ServerConfig::default())
        .route_with("/small", small.clone(), Echo)
        .route_with("/small-frames", small_frames, Echo)
        .route_stream("/small-stream", small, stream_echo)
        .route("/big", Echo)
        .http(axum::Router::new().route("/", axum::routing::get(|| async { "ok" })))
        .route_stream("/big-stream", RouteOptions::default(), stream_echo);
    common::serve(server).await
}

/// Sends only the header of a 16 MiB binary frame and expects the server's 1009 Close right away.
async fn refused_at_header(mut client: RawClient, path: &str) {
    // A message within the limit is still echoed.
    client.send(OpCode::Binary, &[7; 1000]).await;
    assert_eq!(client.next_frame().await, Some((OpCode::Binary, vec![7; 1000])), "{path}");
    let header = FrameHeader { mask: Some([9, 9, 9, 9]), ..FrameHeader::new(OpCode::Binary, 16 << 20) };
    let mut bytes = bytes::BytesMut::new();
    header.encode(&mut bytes);
    tokio::io::AsyncWriteExt::write_all(&mut client.stream, &bytes).await.unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(5), client.next_frame())
        .await
        .unwrap_or_else(|_| panic!("{path}: no Close within 5 s of a 16 MiB frame's header"));
    let (opcode, payload) = frame.expect("a Close frame before TCP ends");
    assert_eq!(opcode, OpCode::Close, "{path}");
    assert_eq!(close_code(&payload), 1009, "{path}");
}

#[tokio::test]
async fn a_route_with_small_limits_refuses_a_large_frame_at_its_header() {
    let addr = server().await;
    for path in ["/small", "/small-frames", "/small-stream"] {
        refused_at_header(RawClient::connect(&addr, path).await, path).await;
    }
}

/// The same limits on an upgrade that follows a plain HTTP request on the same connection (the
/// server hands that one to hyper first).
#[tokio::test]
async fn the_limits_hold_after_plain_http_on_the_same_connection() {
    let addr = server().await;
    for path in ["/small", "/small-stream"] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
        let mut buf = bytes::BytesMut::new();
        while !buf.ends_with(b"\r\n\r\nok") {
            let read = tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf).await.unwrap();
            assert!(read > 0, "the HTTP response: {:?}", String::from_utf8_lossy(&buf));
        }
        assert!(buf.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf));
        let client = RawClient::upgrade(stream, bytes::BytesMut::new(), &addr, path).await;
        refused_at_header(client, path).await;
    }
}

#[tokio::test]
async fn other_routes_of_the_same_server_keep_the_server_limits() {
    let addr = server().await;
    for path in ["/big", "/big-stream"] {
        let (mut ws, _) = ClientBuilder::new(&format!("ws://{addr}{path}")).connect().await.expect("connects");
        // Far over the small routes' 1 KiB; a size a debug build echoes quickly.
        let big = Message::Binary(vec![5u8; 512 << 10].into());
        ws.send(&big).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), big, "{path}");
    }
}
