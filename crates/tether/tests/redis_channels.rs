//! Channels across `tether serve` nodes sharing one real Redis (issue 13): one order of offsets
//! for every subscriber on every node whoever publishes where, recovery with `since` + `epoch`
//! on another node than the one the client left (also while others keep publishing), history
//! that outlives a node restart because it lives in Redis, and a node in a channel's Redis
//! pub/sub only while it has subscribers to it.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::redis::{api_ok, offsets, Cluster, TokenClient};
use serde_json::{json, Value};

/// Publishers on each node (a token-protocol client each, plus the server API of node 1),
/// `PER` messages each, all at once.
const PER: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribers_on_every_node_see_the_same_offsets_1_to_n_from_publishers_on_every_node() {
    let cluster = Cluster::start("order", 3, &[]);
    let mut subscribers = Vec::new();
    let mut epochs = Vec::new();
    for node in &cluster.nodes {
        for _ in 0..2 {
            let mut subscriber = TokenClient::connect(node).await;
            let ack = subscriber.subscribe("race").await;
            assert_eq!(ack["offset"], 0, "{}: {ack}", node.name);
            epochs.push(ack["epoch"].clone());
            subscribers.push(subscriber);
        }
    }
    assert!(epochs.iter().all(|epoch| epoch.is_string() && *epoch == epochs[0]), "one epoch on every node: {epochs:?}");

    let mut publishers = Vec::new();
    for (k, node) in cluster.nodes.iter().enumerate() {
        let url = node.url();
        publishers.push(tokio::spawn(async move {
            let mut publisher = TokenClient::connect_url(&url).await;
            let mut acked = Vec::new();
            for i in 0..PER {
                let data = json!({"p": k, "i": i});
                let ack = publisher.ack(json!({"type": "publish", "channel": "race", "data": data})).await;
                acked.push((data, ack["offset"].as_u64().expect("an offset in the ack")));
            }
            acked
        }));
    }
    let api_node = cluster.nodes[0].addr().to_owned();
    let api = tokio::task::spawn_blocking(move || {
        (0..PER)
            .map(|i| {
                let data = json!({"p": "api", "i": i});
                let result = api_ok(&api_node, "publish", json!({"channel": "race", "data": data}));
                (data, result["offset"].as_u64().expect("an offset"))
            })
            .collect::<Vec<_>>()
    });
    let mut acked: Vec<(Value, u64)> = Vec::new();
    for publisher in publishers {
        acked.extend(publisher.await.unwrap());
    }
    acked.extend(api.await.unwrap());
    let n = 4 * PER;
    let mut acked_offsets: Vec<u64> = acked.iter().map(|(_, offset)| *offset).collect();
    acked_offsets.sort_unstable();
    assert_eq!(acked_offsets, (1..=n).collect::<Vec<_>>(), "each publish got its own offset, none skipped");
    let offset_of: HashMap<String, u64> = acked.iter().map(|(data, offset)| (data.to_string(), *offset)).collect();

    let mut first: Option<Vec<Value>> = None;
    for (s, subscriber) in subscribers.iter_mut().enumerate() {
        let mut seen = Vec::new();
        for expected in 1..=n {
            let message = subscriber.next().await;
            assert_eq!((&message["type"], &message["channel"]), (&json!("message"), &json!("race")), "{message}");
            assert_eq!(message["offset"], expected, "subscriber {s} (on node{}): {message}", s / 2 + 1);
            assert_eq!(
                offset_of[&message["data"].to_string()],
                expected,
                "the offset its publisher was told: {message}"
            );
            seen.push(message["data"].clone());
        }
        match &first {
            None => first = Some(seen),
            Some(first) => assert_eq!(&seen, first, "subscriber {s} saw another order"),
        }
    }
    // Each publisher's messages in the order it sent them.
    let order = first.unwrap();
    for publisher in [json!(0), json!(1), json!(2), json!("api")] {
        let sent: Vec<Value> =
            order.iter().filter(|data| data["p"] == publisher).map(|data| data["i"].clone()).collect();
        assert_eq!(sent, (0..PER).map(|i| json!(i)).collect::<Vec<_>>(), "publisher {publisher}, in its order");
    }
    // The offset lives in Redis, under the contract's key.
    let meta = meta_key(&cluster, "race");
    assert_eq!(cluster.redis.command(&["HGET", &meta, "offset"]), n.to_string(), "{meta}");
    // And the history in a stream whose entry ids are the offsets (`<offset>-<seq>`).
    let stream = meta.replacen(":meta:", ":stream:", 1);
    let last = cluster.redis.command(&["XREVRANGE", &stream, "+", "-", "COUNT", "1"]);
    assert!(last.starts_with(&format!("{n}-")), "the last entry of {stream} is offset {n}: {last:?}");
}

/// The channel's meta hash in Redis: `P:meta:{C}` (the contract's spelling; `P:meta:C` accepted
/// too, should `{C}` have meant a placeholder rather than a hash tag).
fn meta_key(cluster: &Cluster, channel: &str) -> String {
    let tagged = format!("{}:meta:{{{channel}}}", cluster.prefix);
    let plain = format!("{}:meta:{channel}", cluster.prefix);
    let keys = cluster.redis.command(&["KEYS", &format!("{}:meta:*", cluster.prefix)]);
    assert!(keys.lines().any(|key| key == tagged || key == plain), "no meta key for {channel} in {keys:?}");
    if keys.lines().any(|key| key == tagged) {
        tagged
    } else {
        plain
    }
}

#[tokio::test]
async fn a_client_that_moves_from_node_a_to_node_c_recovers_exactly_the_messages_it_missed() {
    let cluster = Cluster::start("move", 3, &[]);
    let (a, b, c) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    let mut on_a = TokenClient::connect(a).await;
    let epoch = on_a.subscribe("feed").await["epoch"].clone();
    for i in 1..=3 {
        assert_eq!(b.ok("publish", json!({"channel": "feed", "data": i})), json!({"offset": i, "epoch": epoch}));
        let message = on_a.next().await;
        assert_eq!((&message["offset"], &message["data"]), (&json!(i), &json!(i)), "{message}");
    }
    on_a.close().await;

    // Missed: two from node B's API, two from a client on node C.
    b.ok("publish", json!({"channel": "feed", "data": 4}));
    b.ok("publish", json!({"channel": "feed", "data": 5}));
    let mut publisher = TokenClient::connect(c).await;
    for i in 6..=7 {
        assert_eq!(publisher.ack(json!({"type": "publish", "channel": "feed", "data": i})).await["offset"], i);
    }

    let mut on_c = TokenClient::connect(c).await;
    let ack = on_c.ack(json!({"type": "subscribe", "channel": "feed", "since": 3, "epoch": epoch})).await;
    assert_eq!((&ack["offset"], &ack["epoch"], &ack["recovered"]), (&json!(7), &epoch, &json!(true)), "{ack}");
    assert_eq!(offsets(&ack["publications"]), [4, 5, 6, 7], "{ack}");
    let publications = ack["publications"].as_array().unwrap();
    let data: Vec<&Value> = publications.iter().map(|p| &p["data"]).collect();
    assert_eq!(data, [&json!(4), &json!(5), &json!(6), &json!(7)]);
    let from: Vec<&Value> = publications.iter().map(|p| &p["from"]).collect();
    let client = json!(publisher.id);
    assert_eq!(from, [&Value::Null, &Value::Null, &client, &client], "the server's have from null: {ack}");

    // Then live, neither doubled nor missing: the next is 8, and a direct marker comes right after.
    a.ok("publish", json!({"channel": "feed", "data": 8}));
    let live = on_c.next().await;
    assert_eq!((&live["type"], &live["offset"], &live["data"]), (&json!("message"), &json!(8), &json!(8)), "{live}");
    b.ok("send", json!({"connection": on_c.id, "data": "marker"}));
    assert_eq!(on_c.next().await["data"], "marker", "nothing after 8 but the marker");

    // An epoch of another life of the channel recovers nothing.
    let mut stale = TokenClient::connect(b).await;
    let ack = stale.ack(json!({"type": "subscribe", "channel": "feed", "since": 3, "epoch": "not-the-epoch"})).await;
    assert_eq!((&ack["recovered"], &ack["offset"]), (&json!(false), &json!(8)), "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovering_on_one_node_while_another_publishes_misses_and_doubles_nothing() {
    let cluster = Cluster::start("busy", 2, &[]);
    let (one, two) = (&cluster.nodes[0], &cluster.nodes[1]);
    let epoch = one.ok("publish", json!({"channel": "busy", "data": 1}))["epoch"].clone();
    for i in 2..=5 {
        one.ok("publish", json!({"channel": "busy", "data": i}));
    }
    const TOTAL: u64 = 85;
    let (started, go) = tokio::sync::oneshot::channel();
    let url = two.url();
    let publisher = tokio::spawn(async move {
        let mut publisher = TokenClient::connect_url(&url).await;
        let mut started = Some(started);
        for i in 6..=TOTAL {
            let ack = publisher.ack(json!({"type": "publish", "channel": "busy", "data": i})).await;
            assert_eq!(ack["offset"], i);
            if i == 20 {
                started.take().unwrap().send(()).unwrap();
            }
            // Under the publish rate (50/s, bursts of 100), spread over about half a second.
            tokio::time::sleep(Duration::from_millis(6)).await;
        }
    });
    go.await.unwrap();
    let mut late = TokenClient::connect(one).await;
    let ack = late.ack(json!({"type": "subscribe", "channel": "busy", "since": 5, "epoch": epoch})).await;
    assert_eq!(ack["recovered"], true, "{ack}");
    let mut got = offsets(&ack["publications"]);
    let upto = ack["offset"].as_u64().unwrap();
    assert_eq!(got.last().copied(), Some(upto), "the ack's publications end at its offset: {ack}");
    assert!((20..TOTAL).contains(&upto), "subscribed while the publisher was at work (at {upto})");
    while got.last() != Some(&TOTAL) {
        let message = late.next().await;
        assert_eq!(message["type"], "message", "{message}");
        got.push(message["offset"].as_u64().unwrap());
    }
    publisher.await.unwrap();
    assert_eq!(got, (6..=TOTAL).collect::<Vec<_>>(), "recovered, then live: every offset once, in order");
}

#[tokio::test]
async fn history_outlives_a_node_restart_with_the_same_epoch() {
    let mut cluster = Cluster::start("restart", 1, &[]);
    let epoch = cluster.nodes[0].ok("publish", json!({"channel": "log", "data": 1}))["epoch"].clone();
    for i in 2..=5 {
        cluster.nodes[0].ok("publish", json!({"channel": "log", "data": {"n": i}}));
    }
    cluster.nodes[0].restart();
    let node = &cluster.nodes[0];

    let mut client = TokenClient::connect(node).await;
    let history = client.ack(json!({"type": "history", "channel": "log"})).await;
    assert_eq!((&history["offset"], &history["epoch"]), (&json!(5), &epoch), "{history}");
    assert_eq!(offsets(&history["publications"]), [1, 2, 3, 4, 5]);
    assert_eq!(history["publications"][0]["data"], 1);
    assert_eq!(history["publications"][4]["data"], json!({"n": 5}));
    let api = node.ok("history", json!({"channel": "log", "since": 3, "epoch": epoch}));
    assert_eq!((&api["offset"], &api["epoch"]), (&json!(5), &epoch), "{api}");
    assert_eq!(offsets(&api["publications"]), [4, 5]);

    let ack = client.ack(json!({"type": "subscribe", "channel": "log", "since": 2, "epoch": epoch})).await;
    assert_eq!((&ack["recovered"], &ack["epoch"]), (&json!(true), &epoch), "{ack}");
    assert_eq!(offsets(&ack["publications"]), [3, 4, 5]);
    assert_eq!(node.ok("publish", json!({"channel": "log", "data": 6}))["offset"], 6, "offsets go on");
    assert_eq!(client.next().await["offset"], 6);
}

#[tokio::test]
async fn a_node_listens_on_a_channels_redis_pubsub_only_while_it_has_subscribers_there() {
    let cluster = Cluster::start("numsub", 2, &[]);
    let pubsub = format!("{}:ch:{{room}}", cluster.prefix);
    let listeners = || {
        let reply = cluster.redis.command(&["PUBSUB", "NUMSUB", &pubsub]);
        reply.lines().nth(1).expect("a count").parse::<u32>().unwrap()
    };
    assert_eq!(listeners(), 0);
    let mut one = TokenClient::connect(&cluster.nodes[0]).await;
    let mut one_too = TokenClient::connect(&cluster.nodes[0]).await;
    let mut two = TokenClient::connect(&cluster.nodes[1]).await;
    one.subscribe("room").await;
    one_too.subscribe("room").await;
    assert_eq!(listeners(), 1, "one pub/sub subscription per node, however many subscribers");
    two.subscribe("room").await;
    assert_eq!(listeners(), 2);
    one.ack(json!({"type": "unsubscribe", "channel": "room"})).await;
    assert_eq!(listeners(), 2, "node 1 still has a subscriber");
    one_too.close().await;
    common::wait_until("node 1 leaves the Redis channel", || listeners() == 1);
    two.ack(json!({"type": "unsubscribe", "channel": "room"})).await;
    common::wait_until("node 2 leaves the Redis channel", || listeners() == 0);
}
