//! Fan-out benchmark: one publisher, 1,000 subscribers on one channel, all in one process.
//!
//! The server runs the token protocol on an ephemeral loopback port; 1,000 clients (Tether's own
//! client, no compression) subscribe over real TCP connections; the publisher publishes through the
//! hub's Rust API as fast as it can. Each delivery is one frame read by one subscriber. Prints
//! deliveries per second. Run: `cargo bench -p tether-hub --bench fanout` (env SUBSCRIBERS,
//! MESSAGES to change the sizes). Bounded: every wait has a timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_hub::{Hub, HubConfig, TokenServer};
use tether_tokio::{ClientBuilder, Message, RouteOptions, Server, ServerConfig};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test harness probes.
    }
    let subscribers = env_or("SUBSCRIBERS", 1000);
    let messages = env_or("MESSAGES", 2000);
    let server = Server::new(ServerConfig { max_connections: subscribers + 10, ..ServerConfig::default() });
    let hub = Hub::new(HubConfig { history_size: 0, ..HubConfig::default() }, server.registry());
    let server = server
        .route_with(
            "/tether",
            RouteOptions::protocols(["tether.json"]),
            TokenServer::new(hub.clone(), Duration::from_secs(30)),
        )
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/tether", server.local_addr().unwrap());
    tokio::spawn(server.run());

    let delivered = Arc::new(AtomicU64::new(0));
    let mut ready = Vec::new();
    let mut done = Vec::new();
    for _ in 0..subscribers {
        let (mut ws, _) = ClientBuilder::new(&url).deflate(None).connect().await.expect("connect");
        let subscribe = json!({"type": "subscribe", "id": 1, "channel": "bench"}).to_string();
        ws.send(&Message::Text(subscribe.into())).await.unwrap();
        let delivered = Arc::clone(&delivered);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        ready.push(ready_rx);
        done.push(tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let mut received = 0;
            while received < messages {
                match ws.recv().await {
                    Some(Ok(Message::Text(text))) if text.starts_with(r#"{"type":"message""#) => {
                        received += 1;
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Ok(_)) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(()); // The subscribe ack.
                        }
                    }
                    _ => break,
                }
            }
            received
        }));
    }
    for rx in ready {
        tokio::time::timeout(Duration::from_secs(30), rx).await.expect("subscribed in time").unwrap();
    }
    println!("fanout: {subscribers} subscribers connected and subscribed");

    let payload = json!({"text": "tick", "n": 0});
    let started = Instant::now();
    for n in 0..messages {
        hub.publish("bench", &json!({"text": payload["text"], "n": n})).await.unwrap();
        if n % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let publish_time = started.elapsed();
    let mut complete = 0;
    for task in done {
        if tokio::time::timeout(Duration::from_secs(120), task).await.ok().and_then(Result::ok) == Some(messages) {
            complete += 1;
        }
    }
    let elapsed = started.elapsed();
    let total = delivered.load(Ordering::Relaxed);
    println!(
        "fanout: {messages} messages x {subscribers} subscribers = {total} deliveries in {:.3} s (publishing took {:.3} s)",
        elapsed.as_secs_f64(),
        publish_time.as_secs_f64()
    );
    println!(
        "fanout: {:.0} deliveries/s; {complete}/{subscribers} subscribers got every message",
        total as f64 / elapsed.as_secs_f64()
    );
}
