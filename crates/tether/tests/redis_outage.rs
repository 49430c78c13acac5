//! Redis going away under running `tether serve` nodes (issue 13): while it is down, publish,
//! history, presence and subscribe answer `unavailable` (server API: 503), `tether_redis_up` is 0
//! and the errors are counted, while open connections stay open and everything that needs no
//! Redis goes on (echo, direct messages to a connection on the same node, new connections). Redis
//! stays down 8 s, long enough for the reconnect backoff to reach its 5 s cap; once it is back on
//! the same port, publishing resumes and existing subscribers on every node get messages again
//! within 10 s. A node started while Redis is down comes up and catches up the same way. The
//! times measured are printed (`cargo test -- --nocapture`).

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

/// A metric's value on the node's `/metrics`: the first sample line named `name` (with or without
/// labels).
fn metric(node: &Node, name: &str) -> Option<String> {
    let page = http_request(node.addr(), "GET", "/metrics", &[], b"").body;
    let sample = page.lines().find(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))?;
    sample.rsplit_once(' ').map(|(_, value)| value.to_owned())
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

/// Sends `subscribe` every 100 ms until it is acked (the node's pub/sub connection reconnects on
/// its own backoff, and `subscribe` answers `unavailable` until then); fails 10 s after `back`.
async fn subscribe_once_up(client: &mut TokenClient, request: Value, back: Instant) -> Value {
    loop {
        let answer = client.request(request.clone()).await;
        if answer["type"] == "ack" {
            return answer;
        }
        assert_unavailable(&answer);
        assert!(back.elapsed() < Duration::from_secs(10), "subscribe still unavailable 10 s after Redis came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    assert_eq!(cluster.nodes[0].ok("info", json!({}))["engineUp"], true);

    cluster.redis.kill();
    let down = Instant::now();
    let answer = reader.request(json!({"type": "publish", "channel": "news", "data": "down"})).await;
    assert_unavailable(&answer);
    assert_503(&cluster.nodes[0].api("publish", json!({"channel": "news", "data": "down"})));
    assert_503(&cluster.nodes[1].api("publish", json!({"channel": "news", "data": "down"})));
    assert_unavailable(&reader.request(json!({"type": "history", "channel": "news"})).await);
    assert_503(&cluster.nodes[0].api("history", json!({"channel": "news"})));
    assert_unavailable(&neighbour.request(json!({"type": "subscribe", "channel": "other"})).await);
    assert_unavailable(&reader.request(json!({"type": "presence", "channel": "news"})).await);
    assert_503(&cluster.nodes[0].api("presence", json!({"channel": "news"})));
    let node1 = &cluster.nodes[0];
    common::wait_until("tether_redis_up is 0", || redis_up(node1).as_deref() == Some("0"));
    // `info` still answers, for the operator who asks in an outage: this node alone, engine down.
    let info = node1.ok("info", json!({}));
    let names: Vec<&Value> = info["nodes"].as_array().expect("nodes").iter().map(|n| &n["name"]).collect();
    assert_eq!((&info["engineUp"], names), (&json!(false), vec![&json!("node1")]), "{info}");
    let errors = metric(node1, "tether_redis_errors_total").expect("tether_redis_errors_total");
    assert!(errors.parse::<f64>().unwrap() >= 1.0, "the failed calls are counted: {errors}");

    // What needs no Redis: echo (an open connection and a new one), direct messages on the node.
    echoes(&mut echo, "still echoing").await;
    echoes(&mut echo_client(node1).await, "a new echo connection").await;
    neighbour.ack(json!({"type": "send", "to": reader.id, "data": "local"})).await;
    assert_eq!(reader.next().await, json!({"type": "direct", "from": neighbour.id, "data": "local"}));
    assert_eq!(node1.ok("send", json!({"connection": reader.id, "data": "api"})), json!({}));
    assert_eq!(reader.next().await["data"], "api");
    let newcomer = TokenClient::connect(node1).await;
    assert!(!newcomer.id.is_empty(), "new token-protocol connections are welcomed");

    // Down long enough for the reconnect backoff to reach its cap (250 ms doubling to 5 s): the
    // resume time measured next is the worst case, not a lucky early retry.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(down.elapsed()));
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
    let (down_for, flowing) = (back - down, back.elapsed());
    eprintln!("redis outage: down {down_for:?}; subscribers on both nodes got messages again {flowing:?} after Redis was back");
    assert!(flowing < Duration::from_secs(10), "new publishes flow again within 10 s: {flowing:?}");
    let node1 = &cluster.nodes[0];
    common::wait_until("tether_redis_up is 1", || redis_up(node1).as_deref() == Some("1"));
    let published = metric(node1, "tether_redis_publish_seconds_count").expect("the publish histogram");
    assert!(published.parse::<f64>().unwrap() >= 2.0, "publish round trips timed: {published}");
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
    let back = Instant::now();
    let took = publish_until_it_works(&node, "news");
    eprintln!("redis outage: a node that started without Redis published {took:?} after Redis came up (8 s down)");
    assert!(took < Duration::from_secs(10), "within 10 s: {took:?}");
    // Its pub/sub connection has its own backoff: `subscribe` answers `unavailable` until it is
    // back, within the same 10 s.
    let mut subscriber = TokenClient::connect(&node).await;
    subscribe_once_up(&mut subscriber, json!({"type": "subscribe", "channel": "news"}), back).await;
    eprintln!("redis outage: that node took subscriptions again {:?} after Redis came up", back.elapsed());
    node.ok("publish", json!({"channel": "news", "data": "delivered"}));
    assert_eq!(subscriber.next().await["data"], "delivered");
    assert!(node.log().to_lowercase().contains("redis"), "the outage is in the log:\n{}", node.log());
}

#[tokio::test]
async fn after_a_redis_restart_the_channel_is_in_a_new_epoch_and_old_offsets_recover_nothing() {
    let mut cluster = Cluster::start("new_epoch", 1, &[]);
    let node = &cluster.nodes[0];
    let before = node.ok("publish", json!({"channel": "news", "data": 1}))["epoch"].clone();
    node.ok("publish", json!({"channel": "news", "data": 2}));
    cluster.redis.restart(); // empty: nothing was saved
    let back = Instant::now();
    let node = &cluster.nodes[0];
    publish_until_it_works(node, "other");
    let after = node.ok("publish", json!({"channel": "news", "data": "new life"}));
    assert_eq!(after["offset"], 1, "offsets start over: {after}");
    assert_ne!(after["epoch"], before, "in a new epoch");
    let mut client = TokenClient::connect(node).await;
    let ack = subscribe_once_up(
        &mut client,
        json!({"type": "subscribe", "channel": "news", "since": 2, "epoch": before}),
        back,
    )
    .await;
    assert_eq!(
        (&ack["recovered"], &ack["epoch"], &ack["offset"]),
        (&json!(false), &after["epoch"], &json!(1)),
        "{ack}"
    );
}
