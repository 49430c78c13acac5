//! The handshake timeout (`ServerConfig::handshake_timeout`), on tokio's paused clock: a client
//! that has not sent its whole request head by then gets 408 and is disconnected, not a moment
//! before, and trickling the head byte by byte does not buy it more time (the deadline runs from
//! the accept). A head sent in time is upgraded, however late within the timeout.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{read_head, status_of, upgrade_request, Echo};
use tether_tokio::{Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(10);
const SLACK: Duration = Duration::from_millis(50);

async fn server() -> String {
    let config = ServerConfig { handshake_timeout: TIMEOUT, ..ServerConfig::default() };
    common::serve(Server::new(config).route("/echo", Echo)).await
}

/// Expects the 408 and the end of TCP, `TIMEOUT` after `since`.
async fn timed_out(stream: &mut TcpStream, since: Instant) {
    let head = tokio::time::timeout(TIMEOUT, read_head(stream, &mut BytesMut::new())).await.expect("an answer");
    assert_eq!(status_of(&head), "408", "{head}");
    let after = since.elapsed();
    assert!(after >= TIMEOUT && after < TIMEOUT + SLACK, "408 after {after:?}");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(SLACK, stream.read_to_end(&mut rest)).await.expect("TCP ends after the 408");
}

#[tokio::test(start_paused = true)]
async fn a_partial_head_gets_408_at_the_handshake_timeout_not_before() {
    let addr = server().await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let connected = Instant::now();
    stream.write_all(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    let mut early = BytesMut::new();
    let read = tokio::time::timeout(TIMEOUT - SLACK, stream.read_buf(&mut early)).await;
    assert!(read.is_err(), "an answer before the timeout: {early:?}");
    timed_out(&mut stream, connected).await;
}

#[tokio::test(start_paused = true)]
async fn trickling_the_head_does_not_extend_the_deadline() {
    let addr = server().await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let connected = Instant::now();
    let request = upgrade_request("/echo", "localhost", "");
    let (mut reader, mut writer) = stream.split();
    // One byte a second: the head would take minutes.
    let trickle = async {
        for byte in request.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        std::future::pending::<()>().await
    };
    let mut buf = BytesMut::new();
    let head = tokio::select! {
        head = read_head(&mut reader, &mut buf) => head,
        () = trickle => unreachable!(),
    };
    assert_eq!(status_of(&head), "408", "{head}");
    let after = connected.elapsed();
    assert!(after >= TIMEOUT && after < TIMEOUT + SLACK, "408 after {after:?}");
}

#[tokio::test(start_paused = true)]
async fn a_head_completed_just_within_the_timeout_is_upgraded() {
    let addr = server().await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let request = upgrade_request("/echo", "localhost", "");
    let (first, last) = request.split_at(request.len() - 2);
    stream.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(TIMEOUT - SLACK).await;
    stream.write_all(last.as_bytes()).await.unwrap();
    let head = read_head(&mut stream, &mut BytesMut::new()).await;
    assert_eq!(status_of(&head), "101", "{head}");
}
