//! Direct messages and the server API across `tether serve` nodes on one real Redis (issue 13):
//! `send` (from a client and from the API) to a connection on another node, `disconnect` and
//! server-side `subscribe` of a user connected to several nodes, and `info` listing every live
//! node with `"engine":"redis"` (and dropping a killed one).

mod common;

use std::time::Duration;

use common::redis::{wait_for, Cluster, TokenClient};
use common::Served;
use serde_json::{json, Value};

#[tokio::test]
async fn send_reaches_a_connection_on_another_node_from_a_client_and_from_the_api() {
    let cluster = Cluster::start("send", 3, &[]);
    let mut alice = TokenClient::connect_as(&cluster.nodes[0], "alice").await;
    let mut bob = TokenClient::connect_as(&cluster.nodes[1], "bob").await;
    alice.ack(json!({"type": "send", "to": bob.id, "data": "psst"})).await;
    assert_eq!(bob.next().await, json!({"type": "direct", "from": alice.id, "data": "psst"}));
    assert_eq!(cluster.nodes[2].ok("send", json!({"connection": bob.id, "data": {"n": 1}})), json!({}));
    assert_eq!(bob.next().await, json!({"type": "direct", "from": null, "data": {"n": 1}}));
    bob.ack(json!({"type": "send", "to": alice.id, "data": "back"})).await;
    assert_eq!(alice.next().await["data"], "back");

    // A connection on no node: not_found, from a client and from the API (410).
    let nobody = "bm9ib2R5LWhlcmU";
    let answer = alice.request(json!({"type": "send", "to": nobody, "data": 1})).await;
    assert_eq!((&answer["type"], &answer["code"]), (&json!("error"), &json!("not_found")), "{answer}");
    let answer = cluster.nodes[2].api("send", json!({"connection": nobody, "data": 1}));
    assert_eq!((answer.status, &answer.json()["error"]["code"]), (410, &json!("not_found")), "{answer:?}");
}

#[tokio::test]
async fn disconnect_by_user_closes_its_connections_on_every_node_and_no_other() {
    let cluster = Cluster::start("disconnect", 3, &[]);
    let carol_tab = TokenClient::connect_as(&cluster.nodes[0], "carol").await;
    let carol_phone = TokenClient::connect_as(&cluster.nodes[1], "carol").await;
    let mut dave = TokenClient::connect_as(&cluster.nodes[0], "dave").await;
    let body = json!({"user": "carol", "code": 4003, "reason": "banned"});
    assert_eq!(cluster.nodes[2].ok("disconnect", body)["connections"], 2, "one on node 1, one on node 2");
    assert_eq!(carol_tab.closed().await, (4003, "banned".to_owned()));
    assert_eq!(carol_phone.closed().await, (4003, "banned".to_owned()));
    cluster.nodes[1].ok("send", json!({"connection": dave.id, "data": "dave stays"}));
    assert_eq!(dave.next().await["data"], "dave stays");
    assert_eq!(cluster.nodes[2].ok("disconnect", json!({"user": "carol"}))["connections"], 0, "none left");

    // One connection by id, from another node: the default close.
    assert_eq!(cluster.nodes[1].ok("disconnect", json!({"connection": dave.id}))["connections"], 1);
    let dave_id = dave.id.clone();
    assert_eq!(dave.closed().await, (4000, "disconnected by server".to_owned()));
    wait_for("dave's connection is gone everywhere", Duration::from_secs(10), || {
        cluster.nodes[2].api("disconnect", json!({"connection": dave_id})).status == 410
    });
}

#[tokio::test]
async fn server_side_subscribe_by_user_reaches_its_connections_on_every_node() {
    let cluster = Cluster::start("subscribe_user", 3, &[]);
    let mut erin = TokenClient::connect_as(&cluster.nodes[0], "erin").await;
    let mut erin_too = TokenClient::connect_as(&cluster.nodes[1], "erin").await;
    let api = &cluster.nodes[2];
    assert_eq!(api.ok("subscribe", json!({"user": "erin", "channel": "inbox"}))["connections"], 2);
    for client in [&mut erin, &mut erin_too] {
        let subscribed = client.next().await;
        assert_eq!((&subscribed["type"], &subscribed["channel"]), (&json!("subscribed"), &json!("inbox")));
    }
    api.ok("publish", json!({"channel": "inbox", "data": "hello"}));
    for client in [&mut erin, &mut erin_too] {
        let message = client.next().await;
        assert_eq!((&message["offset"], &message["data"]), (&json!(1), &json!("hello")), "{message}");
    }
    assert_eq!(api.ok("unsubscribe", json!({"user": "erin", "channel": "inbox"}))["connections"], 2);
    for client in [&mut erin, &mut erin_too] {
        assert_eq!(client.next().await, json!({"type": "unsubscribed", "channel": "inbox"}));
    }
}

/// The `nodes` of an `info` answer, by name.
fn node_names(info: &Value) -> Vec<String> {
    let mut names: Vec<String> = info["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {info}"))
        .iter()
        .map(|node| node["name"].as_str().expect("a name").to_owned())
        .collect();
    names.sort();
    names
}

fn node<'a>(info: &'a Value, name: &str) -> &'a Value {
    info["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {info}"))
}

#[tokio::test]
async fn info_lists_every_live_node_and_the_redis_engine() {
    let mut cluster = Cluster::start("info", 3, &[]);
    let _one = TokenClient::connect_as(&cluster.nodes[1], "fay").await;
    let _two = TokenClient::connect(&cluster.nodes[1]).await;
    let all = ["node1", "node2", "node3"].map(String::from).to_vec();
    let mut info = Value::Null;
    // Heartbeats come every 2 s: the new connections show on another node within one or two.
    wait_for("node 1's info counts node 2's connections", Duration::from_secs(10), || {
        info = cluster.nodes[0].ok("info", json!({}));
        node_names(&info) == all && node(&info, "node2")["connections"] == 2
    });
    assert_eq!(info["engine"], "redis", "{info}");
    let two = node(&info, "node2");
    assert_eq!((&two["users"], &two["version"]), (&json!(1), &json!(env!("CARGO_PKG_VERSION"))), "{info}");
    // Spelt like the top-level `uptimeSecs` (docs/server-api.md).
    assert!(two["uptimeSecs"].is_u64(), "an uptime: {two}");
    assert_eq!(node(&info, "node3")["connections"], 0);
    for other in &cluster.nodes[1..] {
        let info = other.ok("info", json!({}));
        assert_eq!((node_names(&info), &info["engine"]), (all.clone(), &json!("redis")), "{}: {info}", other.name);
    }

    // A killed node drops out once its heartbeat is 10 s old.
    cluster.nodes[2].kill();
    let took = wait_for("node 3 leaves info", Duration::from_secs(16), || {
        node_names(&cluster.nodes[0].ok("info", json!({}))) == ["node1", "node2"]
    });
    eprintln!("info: a killed node left the node list {took:?} after SIGKILL");
}

#[test]
fn without_redis_info_says_memory_and_lists_this_node_alone() {
    let served = Served::start(&["--api-key", common::redis::API_KEY]);
    let info = common::redis::api_ok(&served.addr, "info", json!({}));
    assert_eq!(info["engine"], "memory", "{info}");
    assert_eq!(info["nodes"].as_array().map(Vec::len), Some(1), "{info}");
    assert_eq!(info["nodes"][0]["connections"], 0, "{info}");
}

/// `--node-name` names the memory engine's one node too (default `<hostname>:<port>`).
#[test]
fn without_redis_info_shows_the_node_name_given() {
    let served = Served::start(&["--api-key", common::redis::API_KEY, "--node-name", "solo"]);
    let info = common::redis::api_ok(&served.addr, "info", json!({}));
    assert_eq!(node_names(&info), ["solo"], "{info}");
}
