//! The idle timeout, on tokio's paused clock: a connection the peer sends nothing on (not even a
//! pong) for `idle_timeout` is closed with 1001 "idle timeout", not a moment before; anything the
//! peer sends restarts the wait, so a peer that answers the `ping_interval` pings stays open. Each
//! case runs on the listener API and on the stream API, whose timers are separate code.
//!
//! The clock only moves when every task waits, so the instants measured below are exact: the
//! server's timer fires at the deadline of the virtual clock, whatever the machine's speed.

mod common;

use std::time::Duration;

use common::{stream_echo, Echo, RawClient};
use tether_proto::frame::OpCode;
use tether_tokio::{RouteOptions, Server, ServerConfig};
use tokio::time::Instant;

const PATHS: [&str; 2] = ["/echo", "/stream"];
const IDLE: Duration = Duration::from_secs(10);
/// Slack for "at the deadline": the virtual clock does not move while bytes are in flight.
const SLACK: Duration = Duration::from_millis(50);

async fn server(ping_interval: Duration) -> String {
    let config = ServerConfig { idle_timeout: IDLE, ping_interval, ..ServerConfig::default() };
    let server = Server::new(config).route("/echo", Echo).route_stream("/stream", RouteOptions::default(), stream_echo);
    common::serve(server).await
}

/// The next frame, which must come within `within`.
async fn frame_within(client: &mut RawClient, within: Duration) -> Option<(OpCode, Vec<u8>)> {
    tokio::time::timeout(within, client.next_frame()).await.expect("a frame in time")
}

/// Expects the idle Close as the next frame, `IDLE` after `since`.
async fn closed_idle_at(client: &mut RawClient, since: Instant, path: &str) {
    let (opcode, payload) = frame_within(client, IDLE).await.expect("a Close frame, not the end of TCP");
    assert_eq!(opcode, OpCode::Close, "{path}");
    assert_eq!(common::close_frame(&payload), (1001, "idle timeout".to_owned()), "{path}");
    let after = since.elapsed();
    assert!(after >= IDLE && after < IDLE + SLACK, "{path}: closed {after:?} after the last input, not {IDLE:?}");
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_with_1001_at_the_idle_timeout_not_before() {
    let addr = server(Duration::ZERO).await;
    for path in PATHS {
        let mut client = RawClient::connect(&addr, path).await;
        let opened = Instant::now();
        assert!(client.is_silent_for(IDLE - SLACK).await, "{path}: a frame before the idle timeout");
        closed_idle_at(&mut client, opened, path).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_message_from_the_peer_restarts_the_idle_timer() {
    let addr = server(Duration::ZERO).await;
    for path in PATHS {
        let mut client = RawClient::connect(&addr, path).await;
        tokio::time::sleep(IDLE - Duration::from_secs(2)).await;
        client.send(OpCode::Text, b"still here").await;
        assert_eq!(frame_within(&mut client, SLACK).await, Some((OpCode::Text, b"still here".to_vec())), "{path}");
        let last_input = Instant::now();
        // Past the first deadline, which no longer holds.
        assert!(client.is_silent_for(IDLE - SLACK).await, "{path}: closed on the first deadline");
        closed_idle_at(&mut client, last_input, path).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_answers_the_pings_stays_open_long_past_the_idle_timeout() {
    let interval = Duration::from_secs(3);
    let addr = server(interval).await;
    for path in PATHS {
        let mut client = RawClient::connect(&addr, path).await;
        let mut last = Instant::now();
        // Twenty pings, one every `interval`, over six idle timeouts.
        for n in 0..20 {
            let frame = frame_within(&mut client, interval + SLACK).await;
            assert_eq!(frame, Some((OpCode::Ping, Vec::new())), "{path}: frame {n}");
            let gap = last.elapsed();
            assert!(gap >= interval && gap < interval + SLACK, "{path}: ping {n} came {gap:?} after the last");
            last = Instant::now();
            client.send(OpCode::Pong, b"").await;
        }
        client.send(OpCode::Text, b"a minute later").await;
        // The echo, or a ping first if one was due.
        let echo = loop {
            match frame_within(&mut client, interval + SLACK).await {
                Some((OpCode::Ping, _)) => client.send(OpCode::Pong, b"").await,
                other => break other,
            }
        };
        assert_eq!(echo, Some((OpCode::Text, b"a minute later".to_vec())), "{path}");
    }
}

/// Our own pings are not activity: only what the peer sends is.
#[tokio::test(start_paused = true)]
async fn a_peer_that_ignores_the_pings_is_closed_at_the_idle_timeout() {
    let interval = Duration::from_secs(3);
    let addr = server(interval).await;
    for path in PATHS {
        let mut client = RawClient::connect(&addr, path).await;
        let opened = Instant::now();
        for n in 1..=3 {
            assert_eq!(frame_within(&mut client, interval + SLACK).await, Some((OpCode::Ping, Vec::new())), "{path}");
            assert!(opened.elapsed() >= interval * n, "{path}: ping {n} early");
        }
        closed_idle_at(&mut client, opened, path).await;
    }
}
