//! The Redis engine against a real `redis-server` (Debian's, started here on a free loopback
//! port with no persistence): two hubs on two servers, one Redis, the token protocol end to end.
//! The binary's multi-node tests (three `tether serve` nodes, outages, restarts) are in
//! crates/tether/tests/redis_*.rs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Client;
use serde_json::json;
use tether_hub::{Action, Hub, HubConfig, RedisOptions, Target};
use tether_tokio::{Server, ServerConfig};

/// A `redis-server` of the test's own, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        Self::start_on(free_port())
    }

    fn start_on(port: u16) -> Self {
        let redis = Self::spawn(port, &["--port", &port.to_string()]);
        assert_eq!(redis.command("PING"), "+PONG\r\n");
        redis
    }

    /// `redis-server` with these arguments (besides no persistence), once `port` accepts.
    fn spawn(port: u16, args: &[&str]) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err_and(|_| Instant::now() < deadline) {
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// One inline command, its raw answer.
    fn command(&self, command: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let mut answer = [0u8; 4096];
        let n = stream.read(&mut answer).unwrap();
        String::from_utf8_lossy(&answer[..n]).into_owned()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port below Linux's ephemeral range (32768..): a port from that range may be
/// taken as the source port of another test's connection between a kill and a restart, and a
/// connect to a port nobody listens on can even connect to itself.
fn free_port() -> u16 {
    loop {
        let mut random = [0u8; 2];
        getrandom::fill(&mut random).unwrap();
        let port = 20_000 + u16::from_le_bytes(random) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn node(redis: &Redis, prefix: &str, name: &str) -> (String, Hub) {
    let options = RedisOptions::new(redis.url()).node_name(name).prefix(prefix).presence_ttl(Duration::from_secs(2));
    let (url, hub) = node_with(options, HubConfig::default());
    let url = url.await;
    wait_up(&hub).await;
    (url, hub)
}

/// A node on `options`, not waiting for Redis (its URL comes when the server listens).
fn node_with(options: RedisOptions, config: HubConfig) -> (impl std::future::Future<Output = String>, Hub) {
    let server = Server::new(ServerConfig::default());
    let hub = Hub::with_redis(config, server.registry(), options).unwrap();
    let serving = hub.clone();
    let url = async move { common::serve(server, &serving).await };
    (url, hub)
}

async fn wait_up(hub: &Hub) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(hub.engine_status(), tether_hub::EngineStatus::Redis { up: true, .. }) {
        assert!(Instant::now() < deadline, "the engine never came up: {:?}", hub.engine_status());
        // The command connection counts as up after its first call.
        let _ = hub.nodes().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_order_are_the_same_on_both_nodes_with_publishers_on_both() {
    let redis = Redis::start();
    let (a, _) = node(&redis, "t1", "a").await;
    let (b, _) = node(&redis, "t1", "b").await;
    let mut on_a = Client::connect(&a).await;
    let mut on_b = Client::connect(&b).await;
    on_a.ack(json!({"type": "subscribe", "channel": "room"})).await;
    on_b.ack(json!({"type": "subscribe", "channel": "room"})).await;
    let mut pub_a = Client::connect(&a).await;
    let mut pub_b = Client::connect(&b).await;
    let publish = |client: &'static str| move |i: u64| json!({"type": "publish", "channel": "room", "data": {"from": client, "i": i}});
    let (pa, pb) = (publish("a"), publish("b"));
    let both = async {
        for i in 0..50 {
            pub_a.ack(pa(i)).await;
        }
    };
    let other = async {
        for i in 0..50 {
            pub_b.ack(pb(i)).await;
        }
    };
    tokio::join!(both, other);
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..100 {
        let message = on_a.event_of("message").await;
        seen_a.push((message["offset"].as_u64().unwrap(), message["data"].clone()));
        let message = on_b.event_of("message").await;
        seen_b.push((message["offset"].as_u64().unwrap(), message["data"].clone()));
    }
    assert_eq!(seen_a.iter().map(|m| m.0).collect::<Vec<_>>(), (1..=100).collect::<Vec<_>>());
    assert_eq!(seen_a, seen_b, "the same messages at the same offsets on both nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_on_another_node_returns_exactly_what_was_missed() {
    let redis = Redis::start();
    let (a, hub_a) = node(&redis, "t2", "a").await;
    let (b, _) = node(&redis, "t2", "b").await;
    let mut client = Client::connect(&a).await;
    let ack = client.ack(json!({"type": "subscribe", "channel": "feed"})).await;
    let epoch = ack["epoch"].as_str().unwrap().to_owned();
    for i in 1..=3 {
        hub_a.publish("feed", &i).await.unwrap();
        assert_eq!(client.event_of("message").await["offset"], i);
    }
    drop(client);
    for i in 4..=6 {
        hub_a.publish("feed", &i).await.unwrap();
    }
    let mut moved = Client::connect(&b).await;
    let ack = moved.ack(json!({"type": "subscribe", "channel": "feed", "since": 3, "epoch": epoch})).await;
    assert_eq!(ack["recovered"], true, "{ack}");
    let offsets: Vec<u64> =
        ack["publications"].as_array().unwrap().iter().map(|p| p["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, [4, 5, 6]);
    assert_eq!(ack["epoch"], epoch.as_str());
    hub_a.publish("feed", &7).await.unwrap();
    assert_eq!(moved.event_of("message").await["offset"], 7, "live goes on after the recovered ones, none twice");
    let ack = moved.ack(json!({"type": "history", "channel": "feed", "since": 5})).await;
    assert_eq!(ack["publications"].as_array().unwrap().len(), 2);
    let wrong = moved.ack(json!({"type": "subscribe", "channel": "other", "since": 2, "epoch": "nope"})).await;
    assert_eq!(wrong["recovered"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_joins_direct_messages_and_disconnects_cross_nodes() {
    let redis = Redis::start();
    let (a, hub_a) = node(&redis, "t3", "a").await;
    let (b, hub_b) = node(&redis, "t3", "b").await;
    let mut ada = Client::connect(&a).await;
    let mut bob = Client::connect(&b).await;
    ada.ack(json!({"type": "subscribe", "channel": "room", "info": {"nick": "ada"}})).await;
    bob.ack(json!({"type": "subscribe", "channel": "room", "info": {"nick": "bob"}})).await;
    let join = ada.event_of("join").await;
    assert_eq!(join["connectionId"], bob.id().as_str());
    let ack = bob.ack(json!({"type": "presence", "channel": "room"})).await;
    assert_eq!(ack["members"].as_array().unwrap().len(), 2, "{ack}");

    bob.ack(json!({"type": "send", "to": ada.id(), "data": "hello from b"})).await;
    let direct = ada.event_of("direct").await;
    assert_eq!((direct["data"].clone(), direct["from"].clone()), (json!("hello from b"), json!(bob.id())));
    assert_eq!(bob.error_code(json!({"type": "send", "to": "AAAAAAAAAAAAAAAA", "data": 1})).await, "not_found");

    let done = hub_b.act(&Target::Connection(ada.id()), &Action::Disconnect { code: 4000, reason: "bye".into() }).await;
    assert_eq!(done.unwrap().connections, 1);
    let ack = bob.ack(json!({"type": "presence", "channel": "room"})).await;
    let members = ack["members"].as_array().unwrap().len();
    assert!(members <= 2);
    let nodes = hub_a.nodes().await.unwrap();
    assert_eq!(nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(nodes.iter().filter(|n| n.this).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_answers_unavailable_and_publishing_resumes_after_it() {
    let mut redis = Redis::start();
    let port = redis.port;
    let (a, hub) = node(&redis, "t4", "a").await;
    let mut client = Client::connect(&a).await;
    client.ack(json!({"type": "subscribe", "channel": "news"})).await;
    hub.publish("news", &1).await.unwrap();
    assert_eq!(client.event_of("message").await["data"], 1);
    redis.kill();
    assert_eq!(client.error_code(json!({"type": "publish", "channel": "news", "data": 2})).await, "unavailable");
    assert_eq!(client.error_code(json!({"type": "history", "channel": "news"})).await, "unavailable");
    let _redis = Redis::start_on(port);
    let started = Instant::now();
    loop {
        let answer = client.request(json!({"type": "publish", "channel": "news", "data": 3})).await;
        if answer["type"] == "ack" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no publish within 10 s of Redis coming back: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("publishing resumed {:?} after Redis came back", started.elapsed());
    let message = client.event_of("message").await;
    assert_eq!(message["data"], 3, "the node subscribed again: live delivery works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca_and_a_password_and_a_wrong_password_is_never_up() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("tether-hub-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let port_text = port.to_string();
    let _redis = Redis::spawn(
        port,
        &["--port", "0", "--tls-port", &port_text, "--tls-cert-file", cert, "--tls-key-file", key]
            .into_iter()
            .chain(["--tls-ca-cert-file", cert, "--tls-auth-clients", "no", "--requirepass", "s3cret"])
            .collect::<Vec<_>>(),
    );
    let url = format!("rediss://localhost:{port}/0");
    let options = RedisOptions::new(&url).password("s3cret").ca_pem(certified.cert.pem().into_bytes()).prefix("tls");
    let (ws, hub) = node_with(options, HubConfig::default());
    let ws = ws.await;
    wait_up(&hub).await;
    let mut client = Client::connect(&ws).await;
    client.ack(json!({"type": "subscribe", "channel": "secure"})).await;
    assert_eq!(client.ack(json!({"type": "publish", "channel": "secure", "data": 1})).await["offset"], 1);
    assert_eq!(client.event_of("message").await["data"], 1);

    let wrong = RedisOptions::new(&url).password("wrong").ca_pem(certified.cert.pem().into_bytes()).prefix("tls");
    let (ws, hub) = node_with(wrong, HubConfig::default());
    let mut client = Client::connect(&ws.await).await;
    assert_eq!(client.error_code(json!({"type": "publish", "channel": "secure", "data": 2})).await, "unavailable");
    assert!(matches!(hub.engine_status(), tether_hub::EngineStatus::Redis { up: false, errors } if errors > 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_history_nothing_is_recovered_and_a_small_history_recovers_only_what_it_holds() {
    let redis = Redis::start();
    for (size, recovered) in [(0, false), (2, false), (5, true)] {
        let options = RedisOptions::new(redis.url()).prefix(format!("t5-{size}"));
        let (url, hub) = node_with(options, HubConfig { history_size: size, ..HubConfig::default() });
        let url = url.await;
        wait_up(&hub).await;
        let mut client = Client::connect(&url).await;
        let epoch =
            client.ack(json!({"type": "subscribe", "channel": "c"})).await["epoch"].as_str().unwrap().to_owned();
        for i in 1..=3 {
            assert_eq!(hub.publish("c", &i).await.unwrap(), i);
        }
        let mut other = Client::connect(&url).await;
        let ack = other.ack(json!({"type": "subscribe", "channel": "c", "since": 0, "epoch": epoch})).await;
        assert_eq!(ack["recovered"], recovered, "history_size {size}: {ack}");
        assert_eq!(ack["offset"], 3);
        let held = ack["publications"].as_array().map_or(0, Vec::len);
        assert_eq!(held, if recovered { 3 } else { 0 }, "history_size {size}: {ack}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_and_a_server_subscribing_one_connection_at_once_are_both_answered_and_nothing_leaks() {
    let redis = Redis::start();
    let (url, hub) = node(&redis, "t6", "a").await;
    let subscribers = || redis.command("PUBSUB NUMSUB t6:ch:{room}");
    for round in 0..10 {
        let mut client = Client::connect(&url).await;
        let (target, action) = (Target::Connection(client.id()), Action::Subscribe { channel: "room".into() });
        let server_side = hub.act(&target, &action);
        let (ack, done) = tokio::join!(client.ack(json!({"type": "subscribe", "channel": "room"})), server_side);
        assert_eq!(ack["channel"], "room", "round {round}");
        assert_eq!(done.unwrap().connections, 1, "round {round}");
        let ack = client.ack(json!({"type": "presence", "channel": "room"})).await;
        assert_eq!(ack["members"].as_array().unwrap().len(), 1, "the joiner sees itself at once: {ack}");
        assert!(subscribers().ends_with(":1\r\n"), "round {round}: {}", subscribers());
        client.ack(json!({"type": "unsubscribe", "channel": "room"})).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !subscribers().ends_with(":0\r\n") {
            assert!(Instant::now() < deadline, "round {round}: the node stayed subscribed: {}", subscribers());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
