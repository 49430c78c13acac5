//! Limits on the request head (`ServerConfig::head_limits`): a head longer than `max_bytes` or
//! with more than `max_headers` lines gets 431 before any route is involved, while one within
//! the limits is upgraded. (Frame and message sizes: `limits.rs`; `max_connections`:
//! `at_capacity.rs`; the time to send the head: `head_timeout.rs`.)

mod common;

use common::{response_head, status_of, upgrade_request, Echo};
use tether_proto::handshake::head::HeadLimits;
use tether_tokio::{Server, ServerConfig};

const MAX_BYTES: usize = 1024;
const MAX_HEADERS: usize = 16;

async fn server() -> String {
    let head_limits = HeadLimits { max_bytes: MAX_BYTES, max_headers: MAX_HEADERS };
    let server = Server::new(ServerConfig { head_limits, ..ServerConfig::default() })
        .route("/echo", Echo)
        .http(axum::Router::new().route("/", axum::routing::get(|| async { "ok" })));
    common::serve(server).await
}

/// An upgrade request of exactly `len` bytes (one padding header makes up the length).
fn upgrade_of_len(len: usize) -> String {
    let bare = upgrade_request("/echo", "localhost", "X-Pad: \r\n").len();
    let request = upgrade_request("/echo", "localhost", &format!("X-Pad: {}\r\n", "p".repeat(len - bare)));
    assert_eq!(request.len(), len);
    request
}

#[tokio::test]
async fn a_head_over_max_bytes_gets_431_and_one_at_the_limit_is_upgraded() {
    let addr = server().await;
    assert_eq!(status_of(&response_head(&addr, &upgrade_of_len(MAX_BYTES)).await), "101");
    let head = response_head(&addr, &upgrade_of_len(MAX_BYTES + 1)).await;
    assert_eq!(status_of(&head), "431", "{head}");
    // A plain HTTP request is held to the same limit (it is read by the same code first).
    let long = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n", "p".repeat(MAX_BYTES));
    assert_eq!(status_of(&response_head(&addr, &long).await), "431");
}

#[tokio::test]
async fn more_headers_than_max_headers_gets_431() {
    let addr = server().await;
    // The upgrade request has 5 header lines of its own.
    let headers = |n: usize| (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
    let at_limit = upgrade_request("/echo", "localhost", &headers(MAX_HEADERS - 5));
    assert_eq!(status_of(&response_head(&addr, &at_limit).await), "101");
    let over = upgrade_request("/echo", "localhost", &headers(MAX_HEADERS - 4));
    let head = response_head(&addr, &over).await;
    assert_eq!(status_of(&head), "431", "{head}");
}
