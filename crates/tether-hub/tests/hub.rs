//! The token protocol end to end: a real server on an ephemeral port, clients built on Tether's
//! client library. Covers every message type, every error code, ordering and gap-free offsets
//! under concurrent publishers, recovery after a disconnect, and malformed input. The hardening
//! of issue 9 (request budgets, reply caps, epochs, the channel cap) is in `hardening.rs`.

mod common;

use std::time::Duration;

use common::{read_json, start, Client};
use serde_json::{json, Value};
use tether_hub::{Hub, HubConfig, HubError, TokenServer};
use tether_tokio::{ClientBuilder, Conn, Listener, Message, RouteOptions, Server, ServerConfig};

#[tokio::test]
async fn welcome_subscribe_publish_unsubscribe() {
    let (url, _) = start(HubConfig::default()).await;
    let mut ada = Client::connect(&url).await;
    assert_eq!(ada.welcome["subProtocol"], "tether.json");
    assert_eq!(ada.welcome["heartbeat"], 30_000);
    assert!(ada.welcome["server"].as_str().unwrap().starts_with("tether/"));

    let ack = ada.ack(json!({"type": "subscribe", "channel": "chat.lobby"})).await;
    assert_eq!((ack["channel"].clone(), ack["offset"].clone()), (json!("chat.lobby"), json!(0)));
    assert!(ack["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(ack.get("recovered").is_none());

    let ack = ada.ack(json!({"type": "publish", "channel": "chat.lobby", "data": {"text": "hi"}})).await;
    assert_eq!(ack["offset"], 1);
    let message = ada.event_of("message").await;
    assert_eq!(
        message,
        json!({"type": "message", "channel": "chat.lobby", "offset": 1, "data": {"text": "hi"}, "from": ada.id()})
    );

    ada.ack(json!({"type": "unsubscribe", "channel": "chat.lobby"})).await;
    // No longer subscribed: a publish is acked but not delivered back.
    ada.ack(json!({"type": "publish", "channel": "chat.lobby", "data": 2})).await;
    let ack = ada.ack(json!({"type": "history", "channel": "chat.lobby"})).await;
    assert_eq!(ack["publications"].as_array().unwrap().len(), 2);
    assert!(ada.events.iter().all(|e| e["offset"] != 2), "{:?}", ada.events);
}

#[tokio::test]
async fn presence_with_join_and_leave_events() {
    let (url, _) = start(HubConfig::default()).await;
    let mut ada = Client::connect(&url).await;
    let mut bob = Client::connect(&url).await;
    ada.ack(json!({"type": "subscribe", "channel": "room", "info": {"nick": "ada"}})).await;
    bob.ack(json!({"type": "subscribe", "channel": "room", "info": {"nick": "bob"}})).await;
    let join = ada.event_of("join").await;
    assert_eq!(join, json!({"type": "join", "channel": "room", "connectionId": bob.id(), "info": {"nick": "bob"}}));

    let ack = ada.ack(json!({"type": "presence", "channel": "room"})).await;
    let mut nicks: Vec<String> =
        ack["members"].as_array().unwrap().iter().map(|m| m["info"]["nick"].as_str().unwrap().to_owned()).collect();
    nicks.sort();
    assert_eq!(nicks, ["ada", "bob"]);

    bob.ack(json!({"type": "unsubscribe", "channel": "room"})).await;
    assert_eq!(ada.event_of("leave").await, json!({"type": "leave", "channel": "room", "connectionId": bob.id()}));
    bob.ack(json!({"type": "subscribe", "channel": "room"})).await;
    ada.event_of("join").await;
    drop(bob); // A disconnect is a leave too.
    assert_eq!(ada.event_of("leave").await["type"], "leave");
    let ack = ada.ack(json!({"type": "presence", "channel": "room"})).await;
    assert_eq!(ack["members"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn direct_messages() {
    let (url, hub) = start(HubConfig::default()).await;
    let mut ada = Client::connect(&url).await;
    let mut bob = Client::connect(&url).await;
    ada.ack(json!({"type": "send", "to": bob.id(), "data": {"psst": true}})).await;
    assert_eq!(bob.event().await, json!({"type": "direct", "from": ada.id(), "data": {"psst": true}}));
    hub.send_to(&bob.id(), &json!("from the server")).await.unwrap();
    assert_eq!(bob.event().await, json!({"type": "direct", "from": null, "data": "from the server"}));
    assert_eq!(ada.error_code(json!({"type": "send", "to": "nobody", "data": 1})).await, "not_found");
}

/// Binds `server` on an ephemeral loopback port and runs it in the background.
async fn serve(server: Server) -> std::net::SocketAddr {
    let server = server.bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run());
    addr
}

/// An echo route beside the token route, on the same server.
struct Echo;

impl Listener for Echo {
    async fn message(&self, conn: &Conn, message: Message) {
        let _ = conn.send(message);
    }
}

#[tokio::test]
async fn the_hub_reaches_connections_through_the_servers_registry_and_only_token_ones() {
    let server = Server::new(ServerConfig::default());
    let registry = server.registry();
    let hub = Hub::new(HubConfig::default(), registry.clone());
    let addr = serve(
        server
            .route_with(
                "/tether",
                RouteOptions::protocols(["tether.json"]),
                TokenServer::new(hub.clone(), Duration::from_secs(30)),
            )
            .route("/echo", Echo),
    )
    .await;
    let mut ada = Client::connect(&format!("ws://{addr}/tether")).await;
    let (mut echo, _) = ClientBuilder::new(&format!("ws://{addr}/echo")).connect().await.unwrap();
    echo.send(&Message::Text("hello".into())).await.unwrap();
    assert_eq!(echo.recv().await.unwrap().unwrap(), Message::Text("hello".into()));

    // One registry: the token connection the hub serves is the server's own entry.
    assert_eq!(registry.len(), 2);
    assert_eq!(registry.get(&ada.id()).map(|conn| conn.path().to_owned()), Some("/tether".to_owned()));
    let echo_id = registry.connections().into_iter().find(|conn| conn.path() == "/echo").unwrap().id().to_owned();

    // The echo client is in the registry but speaks no token protocol: not a recipient.
    assert_eq!(ada.error_code(json!({"type": "send", "to": echo_id, "data": 1})).await, "not_found");
    assert!(matches!(hub.send_to(&echo_id, &json!(1)).await, Err(HubError::NotFound(_))));
    echo.send(&Message::Text("still an echo".into())).await.unwrap();
    assert_eq!(echo.recv().await.unwrap().unwrap(), Message::Text("still an echo".into()));

    // A token connection that left is gone from the registry, so from the hub too.
    let ada_id = ada.id();
    drop(ada);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while registry.get(&ada_id).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the closed connection stayed registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(hub.send_to(&ada_id, &json!(1)).await, Err(HubError::NotFound(_))));
}

#[tokio::test]
async fn a_hub_reaches_its_own_connections_not_another_hubs_on_the_same_server() {
    let server = Server::new(ServerConfig::default());
    let (red, blue) =
        (Hub::new(HubConfig::default(), server.registry()), Hub::new(HubConfig::default(), server.registry()));
    let token = |hub: &Hub| TokenServer::new(hub.clone(), Duration::from_secs(30));
    let addr = serve(server.route_with("/red", RouteOptions::protocols(["tether.json"]), token(&red)).route_with(
        "/blue",
        RouteOptions::protocols(["tether.json"]),
        token(&blue),
    ))
    .await;
    let mut ada = Client::connect(&format!("ws://{addr}/red")).await;
    let mut bob = Client::connect(&format!("ws://{addr}/red")).await;
    let mut cyd = Client::connect(&format!("ws://{addr}/blue")).await;

    assert!(matches!(red.send_to(&cyd.id(), &json!(1)).await, Err(HubError::NotFound(_))));
    assert_eq!(ada.error_code(json!({"type": "send", "to": cyd.id(), "data": 1})).await, "not_found");
    blue.send_to(&cyd.id(), &json!("blue")).await.unwrap();
    assert_eq!(cyd.event().await, json!({"type": "direct", "from": null, "data": "blue"}));
    ada.ack(json!({"type": "send", "to": bob.id(), "data": "red"})).await;
    assert_eq!(bob.event().await, json!({"type": "direct", "from": ada.id(), "data": "red"}));
}

#[tokio::test]
async fn every_error_code() {
    let config = HubConfig {
        max_data_bytes: 100,
        max_subscriptions: 2,
        publish_rate: 1.0,
        publish_burst: 3.0,
        ..HubConfig::default()
    };
    let (url, _) = start(config).await;
    let mut c = Client::connect(&url).await;
    assert_eq!(c.error_code(json!({"type": "subscribe"})).await, "bad_request");
    assert_eq!(c.error_code(json!({"type": "subscribe", "channel": "bad name!"})).await, "bad_request");
    assert_eq!(c.error_code(json!({"type": "subscribe", "channel": "x".repeat(129)})).await, "bad_request");
    assert_eq!(c.error_code(json!({"type": "subscribe", "channel": 5})).await, "bad_request");
    assert_eq!(c.error_code(json!({"type": "publish", "channel": "a"})).await, "bad_request");
    assert_eq!(c.error_code(json!({"type": "dance"})).await, "unknown_type");
    assert_eq!(c.error_code(json!({"type": "unsubscribe", "channel": "a"})).await, "not_subscribed");
    assert_eq!(c.error_code(json!({"type": "presence", "channel": "a"})).await, "not_subscribed");
    assert_eq!(c.error_code(json!({"type": "send", "to": "nobody", "data": 1})).await, "not_found");
    assert_eq!(c.error_code(json!({"type": "publish", "channel": "$system", "data": 1})).await, "forbidden");
    assert_eq!(c.error_code(json!({"type": "publish", "channel": "a", "data": "x".repeat(200)})).await, "too_large");
    c.ack(json!({"type": "subscribe", "channel": "a"})).await;
    c.ack(json!({"type": "subscribe", "channel": "b"})).await;
    c.ack(json!({"type": "subscribe", "channel": "a"})).await; // Again: not a new subscription.
    assert_eq!(c.error_code(json!({"type": "subscribe", "channel": "c"})).await, "limit_exceeded");
    let mut codes = Vec::new();
    for _ in 0..5 {
        let answer = c.request(json!({"type": "publish", "channel": "a", "data": 1})).await;
        codes.push(answer["code"].as_str().unwrap_or("ok").to_owned());
    }
    // A burst of 3, one of which the send to "nobody" above already spent.
    assert_eq!(codes, ["ok", "ok", "rate_limited", "rate_limited", "rate_limited"]);
}

#[tokio::test]
async fn malformed_input_gets_errors_and_the_connection_stays_open() {
    let (url, _) = start(HubConfig::default()).await;
    let mut c = Client::connect(&url).await;
    for (input, expect_id) in [
        ("not json", None),
        ("[1,2,3]", None),
        ("{\"id\": 9}", Some(9)),
        ("{\"type\": \"publish\", \"id\": 4, \"channel\": [] }", Some(4)),
        ("{\"type\": \"publish\", \"channel\": \"a\", \"data\": 1}", None),
        ("{\"type\": \"publish\", \"id\": -1, \"channel\": \"a\", \"data\": 1}", None),
    ] {
        c.send_raw(input).await;
        let error = c.event().await;
        assert_eq!(error["type"], "error", "{input}");
        assert_eq!(error["code"], "bad_request", "{input}");
        assert_eq!(error.get("id").and_then(Value::as_u64), expect_id, "{input}: {error}");
    }
    c.ws.send(&Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(c.event().await["code"], "bad_request");
    c.ack(json!({"type": "subscribe", "channel": "still.works"})).await;
}

#[tokio::test]
async fn concurrent_publishers_give_gap_free_offsets_in_one_order_for_everyone() {
    let config = HubConfig { publish_rate: 1e6, publish_burst: 1e6, history_size: 1000, ..HubConfig::default() };
    let (url, _) = start(config).await;
    let mut watchers = Vec::new();
    for _ in 0..3 {
        let mut watcher = Client::connect(&url).await;
        watcher.ack(json!({"type": "subscribe", "channel": "race"})).await;
        watchers.push(watcher);
    }
    const PUBLISHERS: usize = 4;
    const EACH: usize = 100;
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut publisher = Client::connect(&url).await;
            let mut offsets = Vec::new();
            for i in 0..EACH {
                let ack = publisher.ack(json!({"type": "publish", "channel": "race", "data": [p, i]})).await;
                offsets.push(ack["offset"].as_u64().unwrap());
            }
            offsets
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        let offsets = task.await.unwrap();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "one publisher's offsets increase");
        acked.extend(offsets);
    }
    acked.sort_unstable();
    assert_eq!(acked, (1..=(PUBLISHERS * EACH) as u64).collect::<Vec<_>>(), "gap-free, no duplicates");

    let mut orders = Vec::new();
    for watcher in &mut watchers {
        let mut seen = Vec::new();
        while seen.len() < PUBLISHERS * EACH {
            let message = watcher.event_of("message").await;
            seen.push((message["offset"].as_u64().unwrap(), message["data"].clone()));
        }
        let offsets: Vec<u64> = seen.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (1..=(PUBLISHERS * EACH) as u64).collect::<Vec<_>>(), "in order, none missing");
        orders.push(seen);
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "every subscriber sees the same messages at the same offsets");
}

#[tokio::test]
async fn recovery_after_a_disconnect() {
    let (url, hub) = start(HubConfig::default()).await;
    let mut reader = Client::connect(&url).await;
    let ack = reader.ack(json!({"type": "subscribe", "channel": "feed"})).await;
    let epoch = ack["epoch"].as_str().unwrap().to_owned();
    let mut writer = Client::connect(&url).await;
    writer.ack(json!({"type": "publish", "channel": "feed", "data": "one"})).await;
    let last_seen = reader.event_of("message").await["offset"].as_u64().unwrap();
    drop(reader); // The connection drops...

    for data in ["two", "three"] {
        writer.ack(json!({"type": "publish", "channel": "feed", "data": data})).await;
    }
    hub.publish("feed", &"four, from the server").await.unwrap();

    // ...and comes back: what was published meanwhile arrives in the ack, then live messages follow.
    let mut reader = Client::connect(&url).await;
    let ack = reader.ack(json!({"type": "subscribe", "channel": "feed", "since": last_seen, "epoch": epoch})).await;
    assert_eq!(ack["recovered"], true);
    let recovered: Vec<Value> = ack["publications"].as_array().unwrap().iter().map(|p| p["data"].clone()).collect();
    assert_eq!(recovered, [json!("two"), json!("three"), json!("four, from the server")]);
    assert_eq!(ack["publications"][2]["from"], Value::Null);
    writer.ack(json!({"type": "publish", "channel": "feed", "data": "five"})).await;
    let live = reader.event_of("message").await;
    assert_eq!((live["offset"].clone(), live["data"].clone()), (json!(5), json!("five")));

    // A wrong epoch or a gap the history no longer covers: recovered false, nothing replayed.
    let ack = reader.ack(json!({"type": "subscribe", "channel": "feed", "since": 1, "epoch": "other"})).await;
    assert_eq!((ack["recovered"].clone(), ack["publications"].clone()), (json!(false), json!([])));
    let ack = reader.ack(json!({"type": "subscribe", "channel": "feed", "since": 99, "epoch": epoch})).await;
    assert_eq!(ack["recovered"], false);
}

#[tokio::test]
async fn history_keeps_the_newest_within_size_and_age() {
    let config = HubConfig { history_size: 3, history_ttl: Duration::from_millis(400), ..HubConfig::default() };
    let (url, _) = start(config).await;
    let mut c = Client::connect(&url).await;
    for i in 1..=5 {
        c.ack(json!({"type": "publish", "channel": "h", "data": i})).await;
    }
    let data =
        |ack: &Value| ack["publications"].as_array().unwrap().iter().map(|p| p["data"].clone()).collect::<Vec<_>>();
    let ack = c.ack(json!({"type": "history", "channel": "h"})).await;
    assert_eq!((ack["offset"].clone(), data(&ack)), (json!(5), vec![json!(3), json!(4), json!(5)]));
    let ack = c.ack(json!({"type": "history", "channel": "h", "since": 3})).await;
    assert_eq!(data(&ack), [json!(4), json!(5)]);
    let ack = c.ack(json!({"type": "history", "channel": "h", "limit": 1})).await;
    assert_eq!(data(&ack), [json!(5)]);
    let ack = c.ack(json!({"type": "subscribe", "channel": "h", "since": 1, "epoch": ack["epoch"]})).await;
    assert_eq!(ack["recovered"], false, "offset 2 is gone");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ack = c.ack(json!({"type": "history", "channel": "h"})).await;
    assert_eq!(data(&ack), Vec::<Value>::new(), "expired");
}

#[tokio::test]
async fn plain_json_sub_protocol_and_the_rust_api() {
    let (url, hub) = start(HubConfig::default()).await;
    let (mut ws, response) = ClientBuilder::new(&url).protocol("json").connect().await.unwrap();
    assert_eq!(response.protocol.as_deref(), Some("json"));
    assert_eq!(read_json(&mut ws).await["subProtocol"], "json");
    let mut c = Client::connect(&url).await;
    c.ack(json!({"type": "subscribe", "channel": "news", "info": {"nick": "ada"}})).await;
    assert_eq!(hub.publish("news", &json!({"headline": "tether ships"})).await.unwrap(), 1);
    let message = c.event_of("message").await;
    assert_eq!((message["data"]["headline"].clone(), message["from"].clone()), (json!("tether ships"), Value::Null));
    let members = hub.presence("news").await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].connection_id, c.id());
    assert_eq!(members[0].info.as_ref().unwrap().get(), r#"{"nick":"ada"}"#);
}
