//! Presence across `tether serve` nodes on one real Redis (issue 13): members of every node in
//! one list (token protocol and server API), `join`/`leave` events that cross nodes, members of
//! live nodes kept past the TTL (their node refreshes them), and the members of a node killed
//! with SIGKILL gone within `--presence-ttl-secs`.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::redis::{Cluster, TokenClient};
use serde_json::{json, Value};

const TTL_SECS: u64 = 2;

/// The connection ids of a `members` list.
fn ids(members: &Value) -> BTreeSet<String> {
    members.as_array().expect("members").iter().map(|m| m["connectionId"].as_str().unwrap().to_owned()).collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).clone()).collect()
}

/// Reads `client`'s events until a `kind` (`join`/`leave`) about `connection`, and returns it.
async fn presence_event(client: &mut TokenClient, kind: &str, connection: &str) -> Value {
    loop {
        let event = client.event().await;
        if event["type"] == kind && event["connectionId"] == connection {
            return event;
        }
        assert!(event["type"] == "join" || event["type"] == "leave", "waiting for {kind} of {connection}: {event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_lists_the_members_of_every_node_and_forgets_a_killed_nodes_within_the_ttl() {
    let ttl = TTL_SECS.to_string();
    let mut cluster = Cluster::start("presence", 3, &["--presence-ttl-secs", &ttl]);
    let mut ada = TokenClient::connect_as(&cluster.nodes[0], "ada").await;
    let mut bob = TokenClient::connect_as(&cluster.nodes[1], "bob").await;
    let mut cat = TokenClient::connect(&cluster.nodes[2]).await;
    ada.subscribe("room").await;
    bob.ack(json!({"type": "subscribe", "channel": "room", "info": {"nick": "bob"}})).await;
    let join = presence_event(&mut ada, "join", &bob.id).await;
    assert_eq!(
        (&join["channel"], &join["user"]),
        (&json!("room"), &json!("bob")),
        "a join from node 2 on node 1: {join}"
    );
    cat.ack(json!({"type": "subscribe", "channel": "room", "info": {"nick": "cat"}})).await;
    for (who, client) in [("ada", &mut ada), ("bob", &mut bob)] {
        let join = presence_event(client, "join", &cat.id).await;
        assert_eq!(join["info"], json!({"nick": "cat"}), "{who} saw cat join: {join}");
        assert!(join.get("user").is_none(), "cat is anonymous: {join}");
    }

    let everyone = set(&[&ada.id, &bob.id, &cat.id]);
    let members = bob.ack(json!({"type": "presence", "channel": "room"})).await["members"].clone();
    assert_eq!(ids(&members), everyone, "token protocol on node 2: {members}");
    let listed = cluster.nodes[0].ok("presence", json!({"channel": "room"}))["members"].clone();
    assert_eq!(ids(&listed), everyone, "server API on node 1: {listed}");
    let mut expected = vec![
        json!({"connectionId": ada.id, "user": "ada", "info": null}),
        json!({"connectionId": bob.id, "user": "bob", "info": {"nick": "bob"}}),
        json!({"connectionId": cat.id, "user": null, "info": {"nick": "cat"}}),
    ];
    let mut got = listed.as_array().unwrap().clone();
    let by_id = |m: &Value| m["connectionId"].as_str().unwrap().to_owned();
    got.sort_by_key(by_id);
    expected.sort_by_key(by_id);
    assert_eq!(got, expected, "user and info of members on other nodes");

    // Node 3 crashes: its member goes within the TTL, the others stay past it.
    cluster.nodes[2].kill();
    let killed = Instant::now();
    let survivors = set(&[&ada.id, &bob.id]);
    let node1 = &cluster.nodes[0];
    let took = common::redis::wait_for("node 3's member leaves presence", Duration::from_secs(10), || {
        ids(&node1.ok("presence", json!({"channel": "room"}))["members"]) == survivors
    });
    eprintln!("presence: a killed node's member disappeared {took:?} after SIGKILL (TTL {TTL_SECS} s)");
    // The TTL, and a second for the polling and the calls themselves on a busy machine.
    assert!(took <= Duration::from_secs(TTL_SECS + 1), "within the TTL ({TTL_SECS} s): took {took:?}");
    let members = ada.ack(json!({"type": "presence", "channel": "room"})).await["members"].clone();
    assert_eq!(ids(&members), survivors, "token protocol on node 1 too: {members}");
    tokio::time::sleep((killed + Duration::from_secs(2 * TTL_SECS + 1)).saturating_duration_since(Instant::now()))
        .await;
    let members = cluster.nodes[1].ok("presence", json!({"channel": "room"}))["members"].clone();
    assert_eq!(ids(&members), survivors, "live nodes refresh their members past the TTL: {members}");

    // A clean leave crosses nodes as a `leave`.
    bob.ack(json!({"type": "unsubscribe", "channel": "room"})).await;
    let leave = presence_event(&mut ada, "leave", &bob.id).await;
    assert_eq!((&leave["channel"], &leave["user"]), (&json!("room"), &json!("bob")), "{leave}");
    assert_eq!(ids(&cluster.nodes[1].ok("presence", json!({"channel": "room"}))["members"]), set(&[&ada.id]));
}

#[tokio::test]
async fn a_disconnect_leaves_presence_on_every_node_at_once() {
    let cluster = Cluster::start("presence_close", 2, &[]);
    let mut ada = TokenClient::connect(&cluster.nodes[0]).await;
    let mut bob = TokenClient::connect(&cluster.nodes[1]).await;
    ada.subscribe("room").await;
    bob.subscribe("room").await;
    presence_event(&mut ada, "join", &bob.id).await;
    let bob_id = bob.id.clone();
    bob.close().await;
    presence_event(&mut ada, "leave", &bob_id).await;
    // Without waiting for any TTL (60 s by default here): a closed connection is removed at once.
    let members = cluster.nodes[0].ok("presence", json!({"channel": "room"}))["members"].clone();
    assert_eq!(ids(&members), set(&[&ada.id]), "{members}");
}
