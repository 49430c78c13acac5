//! Redis going away under running `tether serve` nodes (issue 13): while it is down, publish,
//! history and subscribe answer `unavailable` (server API: 503) and `tether_redis_up` is 0, while
//! open connections stay open and everything that needs no Redis goes on (echo, direct messages
//! to a connection on the same node, new connections); once it is back on the same port,
//! publishing resumes within 10 s and existing subscribers get messages again. A node started
//! while Redis is down comes up and catches up the same way. The times measured are printed
//! (`cargo test -- --nocapture`).

mod common;

use std::time::{Duration, Instant};

use common::http_request;
use common::redis::{api, prefix, Cluster, Node, RedisServer, TokenClient};
use serde_json::{json, Value};
use tether_tokio::{ClientBuilder, Message, Transport, WebSocket};

/// An open connection to the node's `/echo`.
async fn echo_client(node: &Node) -> WebSocket<Transport> {
    ClientBuilder::new(&format!("ws://{}/echo", node.addr())).connect().await.unwrap().0
}

async fn echoes(ws: &mut WebSocket<Transport>, text: &str) {
    ws.send(&Message::Text(text.to_owned().into())).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), ws.recv()).await.expect("an echo in time");
    match answer {
        Some(Ok(Message::Text(echoed))) => assert_eq!(&*echoed, text),
        other => panic!("expected the echo of {text:?}, got {other:?}"),
    }
}

/// `tether_redis_up` on the node's `/metrics` (it runs with `--metrics`).
fn redis_up(node: &Node) -> Option<String> {
    let page = http_request(node.addr(), "GET", "/metrics", &[], b"").body;
    page.lines().find_map(|line| line.strip_prefix("tether_redis_up ").map(str::to_owned))
}

/// Asserts that `answer` is the server API's 503 `unavailable`.
fn assert_503(answer: &common::HttpAnswer) {
    assert_eq!((answer.status, &answer.json()["error"]["code"]), (503, &json!("unavailable")), "{answer:?}");
}

fn assert_unavailable(answer: &Value) {
    assert_eq!((&answer["type"], &answer["code"]), (&json!("error"), &json!("unavailable")), "{answer}");
}

/// Publishes through the API of `node` every 100 ms until one succeeds; how long that took.
fn publish_until_it_works(node: &Node, channel: &str) -> Duration {
    let started = Instant::now();
    loop {
        let answer = api(node.addr(), "publish", json!({"channel": channel, "data": "probe"}));
        if answer.status == 200 {
            return started.elapsed();
        }
        assert_503(&answer);
        assert!(started.elapsed() < Duration::from_secs(20), "{} never published again", node.name);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads `client` until a `message` whose data is `data` arrives, publishing `data` again
/// through `node` every 300 ms (a message published before the node resubscribed is lost: pub/sub
/// is at most once). Panics after `limit`.
async fn until_a_message_arrives(client: &mut TokenClient, node: &Node, data: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < limit, "no message on {} within {limit:?}", node.name);
        node.ok("publish", json!({"channel": "news", "data": data}));
        let deadline = Instant::now() + Duration::from_millis(300);
        while let Some(event) = client.event_within(deadline.saturating_duration_since(Instant::now())).await {
            if event["type"] == "message" && event["data"] == data {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_publishing_is_unavailable_local_work_goes_on_and_it_resumes_within_10_s() {
    let mut cluster = Cluster::start("outage", 2, &["--metrics"]);
    let mut reader = TokenClient::connect(&cluster.nodes[0]).await;
    let mut remote = TokenClient::connect(&cluster.nodes[1]).await;
    let mut neighbour = TokenClient::connect(&cluster.nodes[0]).await;
    reader.subscribe("news").await;
    remote.subscribe("news").await;
    cluster.nodes[0].ok("publish", json!({"channel": "news", "data": "before"}));
    assert_eq!(reader.next().await["data"], "before");
    assert_eq!(remote.next().await["data"], "before");
    let mut echo = echo_client(&cluster.nodes[0]).await;
    echoes(&mut echo, "up").await;
    assert_eq!(redis_up(&cluster.nodes[0]).as_deref(), Some("1"));

    cluster.redis.kill();
    let answer = reader.request(json!({"type": "publish", "channel": "news", "data": "down"})).await;
    assert_unavailable(&answer);
    assert_503(&cluster.nodes[0].api("publish", json!({"channel": "news", "data": "down"})));
    assert_503(&cluster.nodes[1].api("publish", json!({"channel": "news", "data": "down"})));
    assert_unavailable(&reader.request(json!({"type": "history", "channel": "news"})).await);
    assert_503(&cluster.nodes[0].api("history", json!({"channel": "news"})));
    assert_unavailable(&neighbour.request(json!({"type": "subscribe", "channel": "other"})).await);
    let node1 = &cluster.nodes[0];
    common::wait_until("tether_redis_up is 0", || redis_up(node1).as_deref() == Some("0"));

    // What needs no Redis: echo (an open connection and a new one), direct messages on the node.
    echoes(&mut echo, "still echoing").await;
    echoes(&mut echo_client(node1).await, "a new echo connection").await;
    neighbour.ack(json!({"type": "send", "to": reader.id, "data": "local"})).await;
    assert_eq!(reader.next().await, json!({"type": "direct", "from": neighbour.id, "data": "local"}));
    assert_eq!(node1.ok("send", json!({"connection": reader.id, "data": "api"})), json!({}));
    assert_eq!(reader.next().await["data"], "api");
    let newcomer = TokenClient::connect(node1).await;
    assert!(!newcomer.id.is_empty(), "new token-protocol connections are welcomed");

    cluster.redis.restart();
    let back = Instant::now();
    let one = publish_until_it_works(&cluster.nodes[0], "news");
    publish_until_it_works(&cluster.nodes[1], "news");
    let two = back.elapsed();
    eprintln!("redis outage: publishing resumed {one:?} (node1) and {two:?} (node2) after Redis answered PING again");
    assert!(
        one < Duration::from_secs(10) && two < Duration::from_secs(10),
        "within 10 s: node1 {one:?}, node2 {two:?}"
    );

    // Subscribers from before the outage get messages again, on both nodes (resubscribed).
    let left = Duration::from_secs(10).saturating_sub(back.elapsed()) + Duration::from_secs(1);
    until_a_message_arrives(&mut reader, &cluster.nodes[0], "after", left).await;
    until_a_message_arrives(&mut remote, &cluster.nodes[0], "after, remote", left).await;
    eprintln!("redis outage: subscribers on both nodes got messages again {:?} after Redis was back", back.elapsed());
    let node1 = &cluster.nodes[0];
    common::wait_until("tether_redis_up is 1", || redis_up(node1).as_deref() == Some("1"));
    assert_eq!(reader.ack(json!({"type": "publish", "channel": "news", "data": "client"})).await["type"], "ack");
    echoes(&mut echo, "echo after").await;
}

#[tokio::test]
async fn a_node_started_while_redis_is_down_comes_up_and_publishes_once_redis_is_back() {
    let mut redis = RedisServer::start();
    redis.kill();
    let node = Node::start(&redis.url(), &prefix("late"), "node1", &[]);
    assert_503(&node.api("publish", json!({"channel": "news", "data": 1})));
    echoes(&mut echo_client(&node).await, "echo without redis").await;
    // Down long enough for the reconnect backoff to reach its cap (250 ms doubling to 5 s).
    std::thread::sleep(Duration::from_secs(8));
    redis.restart();
    let took = publish_until_it_works(&node, "news");
    eprintln!("redis outage: a node that started without Redis published {took:?} after Redis came up (8 s down)");
    assert!(took < Duration::from_secs(10), "within 10 s: {took:?}");
    assert!(node.log().to_lowercase().contains("redis"), "the outage is in the log:\n{}", node.log());
}
