//! The server HTTP API (docs/server-api.md) end to end: the real `tether serve` on an ephemeral
//! port with `--api-key`, called over raw HTTP/1.1, with the effect of each method checked on real
//! token-protocol clients (tether-tokio's client on `/tether`), and every refusal's status.

mod common;

use std::collections::VecDeque;
use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{http_request, serve_command, serve_refusal, HttpAnswer, Served};
use serde_json::{json, Value};
use tether_tokio::{ClientBuilder, Message, Transport, WebSocket};

const KEY: &str = "api-key-for-tests-0123456789";

/// A server with the API on, and calls to it.
struct Api {
    served: Served,
}

impl Api {
    fn start(extra: &[&str]) -> Self {
        let mut args = vec!["--api-key", KEY];
        args.extend_from_slice(extra);
        Self { served: Served::start(&args) }
    }

    fn call_with_key(&self, key: Option<&str>, method: &str, body: &str) -> HttpAnswer {
        let headers: Vec<(&str, &str)> =
            key.map(|key| vec![("X-API-Key", key), ("Content-Type", "application/json")]).unwrap_or_default();
        http_request(&self.served.addr, "POST", &format!("/api/{method}"), &headers, body.as_bytes())
    }

    fn call(&self, method: &str, body: Value) -> HttpAnswer {
        self.call_with_key(Some(KEY), method, &body.to_string())
    }

    /// The `result` of a call that must succeed.
    fn ok(&self, method: &str, body: Value) -> Value {
        let answer = self.call(method, body.clone());
        assert_eq!(answer.status, 200, "{method} {body} -> {answer:?}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        answer.json()["result"].clone()
    }

    fn url(&self) -> String {
        format!("ws://{}/tether", self.served.addr)
    }
}

/// The status and error code of a refused call, after checking the error body's shape.
fn refusal(answer: &HttpAnswer) -> (u16, String) {
    assert_eq!(answer.header("content-type"), Some("application/json"), "{answer:?}");
    let body = answer.json();
    let error = &body["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer:?}");
    assert!(body.get("result").is_none(), "{answer:?}");
    (answer.status, error["code"].as_str().expect("a code").to_owned())
}

/// A token-protocol client on `/tether`.
struct Client {
    ws: WebSocket<Transport>,
    id: String,
    next_id: u64,
    events: VecDeque<Value>,
}

impl Client {
    async fn connect(url: &str) -> Self {
        let (mut ws, _) = ClientBuilder::new(url).protocol("tether.json").connect().await.unwrap();
        let welcome = read_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome");
        let id = welcome["connectionId"].as_str().unwrap().to_owned();
        Self { ws, id, next_id: 1, events: VecDeque::new() }
    }

    /// Sends a request and returns its ack, keeping other frames as events.
    async fn ack(&mut self, mut request: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = json!(id);
        self.ws.send(&Message::Text(request.to_string().into())).await.unwrap();
        loop {
            let frame = read_json(&mut self.ws).await;
            if frame["id"] == json!(id) {
                assert_eq!(frame["type"], "ack", "{request} -> {frame}");
                return frame;
            }
            self.events.push_back(frame);
        }
    }

    async fn subscribe(&mut self, channel: &str) -> Value {
        self.ack(json!({"type": "subscribe", "channel": channel})).await
    }

    async fn event(&mut self) -> Value {
        match self.events.pop_front() {
            Some(event) => event,
            None => read_json(&mut self.ws).await,
        }
    }

    /// The next event other than presence's `join` and `leave`.
    async fn next(&mut self) -> Value {
        loop {
            let event = self.event().await;
            if event["type"] != "join" && event["type"] != "leave" {
                return event;
            }
        }
    }

    /// How the server closed the connection: (code, reason).
    async fn closed(mut self) -> (u16, String) {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.recv()).await.expect("closed in time") {
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("{error}"),
                None => break,
            }
        }
        let closed = self.ws.closed().expect("closed");
        (closed.code.0, closed.reason.clone())
    }
}

async fn read_json(ws: &mut WebSocket<Transport>) -> Value {
    let message = tokio::time::timeout(Duration::from_secs(10), ws.recv()).await.expect("a frame in time");
    match message {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Waits until `info` counts `n` connections: the server forgets a closed one when its task ends,
/// a moment after the client saw the closing handshake complete.
async fn wait_for_connections(api: &Api, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.ok("info", json!({}))["connections"] != n {
        assert!(Instant::now() < deadline, "info never counted {n} connections");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn from_server(event: &Value) -> bool {
    event.get("from").is_none_or(Value::is_null)
}

#[tokio::test]
async fn publish_reaches_a_subscriber_with_the_offset_and_epoch_it_answers() {
    let api = Api::start(&[]);
    let mut client = Client::connect(&api.url()).await;
    let ack = client.subscribe("news").await;
    let result = api.ok("publish", json!({"channel": "news", "data": {"headline": "hi"}}));
    assert_eq!(result["offset"], 1);
    assert_eq!(result["epoch"], ack["epoch"], "the subscriber's epoch");
    let message = client.next().await;
    assert_eq!(
        (&message["type"], &message["channel"], &message["offset"]),
        (&json!("message"), &json!("news"), &json!(1))
    );
    assert_eq!(message["data"], json!({"headline": "hi"}));
    assert!(from_server(&message), "{message}");
    assert_eq!(api.ok("publish", json!({"channel": "news", "data": null}))["offset"], 2, "null is data too");
    assert_eq!(client.next().await["offset"], 2);
}

#[test]
fn broadcast_takes_at_most_1000_distinct_channels() {
    let api = Api::start(&[]);
    let channels = |n: usize| (0..n).map(|i| format!("c{i}")).collect::<Vec<_>>();
    let result = api.ok("broadcast", json!({"channels": channels(1000), "data": 1}));
    assert_eq!(result["responses"].as_array().unwrap().len(), 1000);
    let too_many = api.call("broadcast", json!({"channels": channels(1001), "data": 1}));
    assert_eq!(refusal(&too_many), (400, "bad_request".into()));
    assert!(too_many.json()["error"]["message"].as_str().unwrap().contains("at most 1000"), "{too_many:?}");
    let twice = api.call("broadcast", json!({"channels": ["x", "y", "x"], "data": 1}));
    assert_eq!(refusal(&twice), (400, "bad_request".into()));
    assert_eq!(api.ok("history", json!({"channel": "x"}))["offset"], 0, "nothing of a refused broadcast is published");
}

#[tokio::test]
async fn broadcast_reaches_each_channel_and_answers_for_each() {
    let api = Api::start(&[]);
    let mut a = Client::connect(&api.url()).await;
    let mut b = Client::connect(&api.url()).await;
    a.subscribe("a").await;
    b.subscribe("b").await;
    api.ok("publish", json!({"channel": "b", "data": 0}));
    let result = api.ok("broadcast", json!({"channels": ["a", "b", "not a channel!"], "data": "all"}));
    let responses = result["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 3);
    assert_eq!((&responses[0]["channel"], &responses[0]["offset"]), (&json!("a"), &json!(1)));
    assert_eq!((&responses[1]["channel"], &responses[1]["offset"]), (&json!("b"), &json!(2)));
    assert!(responses[0]["epoch"].is_string() && responses[0].get("error").is_none());
    assert_eq!(responses[2]["channel"], "not a channel!");
    assert_eq!(responses[2]["error"]["code"], "bad_request");
    let got_a = a.next().await;
    assert_eq!((&got_a["channel"], &got_a["data"]), (&json!("a"), &json!("all")));
    assert_eq!(b.next().await["offset"], 1);
    let got_b = b.next().await;
    assert_eq!((&got_b["channel"], &got_b["offset"], &got_b["data"]), (&json!("b"), &json!(2), &json!("all")));
}

#[tokio::test]
async fn send_arrives_as_a_direct_message_from_the_server() {
    let api = Api::start(&[]);
    let mut client = Client::connect(&api.url()).await;
    assert_eq!(api.ok("send", json!({"connection": client.id, "data": {"note": "psst"}})), json!({}));
    let direct = client.next().await;
    assert_eq!(direct, json!({"type": "direct", "from": null, "data": {"note": "psst"}}));
}

#[tokio::test]
async fn disconnect_closes_a_connection_with_4000_by_default_or_the_code_given() {
    let api = Api::start(&[]);
    let first = Client::connect(&api.url()).await;
    let second = Client::connect(&api.url()).await;
    let bystander = Client::connect(&api.url()).await;
    let (first_id, second_id) = (first.id.clone(), second.id.clone());
    assert_eq!(api.ok("disconnect", json!({"connection": first_id}))["connections"], 1);
    assert_eq!(first.closed().await, (4000, "disconnected by server".to_owned()));
    let explicit = json!({"connection": second_id, "code": 4403, "reason": "banned"});
    assert_eq!(api.ok("disconnect", explicit)["connections"], 1);
    assert_eq!(second.closed().await, (4403, "banned".to_owned()));
    let normal = Client::connect(&api.url()).await;
    api.ok("disconnect", json!({"connection": normal.id, "code": 1000}));
    assert_eq!(normal.closed().await.0, 1000);
    // Gone now: 410, and the bystander was never touched.
    assert_eq!(refusal(&api.call("disconnect", json!({"connection": first_id}))), (410, "not_found".into()));
    let mut bystander = bystander;
    api.ok("send", json!({"connection": bystander.id, "data": "still here"}));
    assert_eq!(bystander.next().await["data"], "still here");
    wait_for_connections(&api, 1).await;
}

#[tokio::test]
async fn disconnect_by_user_closes_none_of_the_anonymous_connections() {
    let api = Api::start(&[]);
    let mut anonymous = Client::connect(&api.url()).await;
    assert_eq!(api.ok("disconnect", json!({"user": "alice"}))["connections"], 0);
    api.ok("send", json!({"connection": anonymous.id, "data": 1}));
    assert_eq!(anonymous.next().await["type"], "direct", "still open");
}

/// A token for `user` from `--demo-tokens`' endpoint (issue 11's contract).
fn demo_token(addr: &str, user: &str) -> String {
    let answer = http_request(addr, "GET", &format!("/demo/token?user={user}"), &[], b"");
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()["token"].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn disconnect_by_user_closes_every_connection_of_that_user() {
    let api = Api::start(&["--demo-tokens", "--max-subscriptions", "1"]);
    let addr = api.served.addr.clone();
    let url = |user: &str| format!("{}?token={}", api.url(), demo_token(&addr, user));
    let alice_tab = Client::connect(&url("alice")).await;
    let alice_phone = Client::connect(&url("alice")).await;
    let mut bob = Client::connect(&url("bob")).await;
    assert_eq!(api.ok("info", json!({}))["users"], 2);
    let result = api.ok("disconnect", json!({"user": "alice", "code": 4003, "reason": "banned"}));
    assert_eq!(result["connections"], 2);
    assert_eq!(alice_tab.closed().await, (4003, "banned".to_owned()));
    assert_eq!(alice_phone.closed().await, (4003, "banned".to_owned()));
    api.ok("send", json!({"connection": bob.id, "data": "bob stays"}));
    assert_eq!(bob.next().await["data"], "bob stays");
    // And without a code: 4000, for every connection of the user.
    let bob_again = Client::connect(&url("bob")).await;
    assert_eq!(api.ok("disconnect", json!({"user": "bob"}))["connections"], 2);
    assert_eq!(bob.closed().await, (4000, "disconnected by server".to_owned()));
    assert_eq!(bob_again.closed().await.0, 4000);
    // Server-side subscriptions by user, too: each connection of the user gets `subscribed`.
    let mut carol = Client::connect(&url("carol")).await;
    let mut carol_too = Client::connect(&url("carol")).await;
    assert_eq!(api.ok("subscribe", json!({"user": "carol", "channel": "inbox"}))["connections"], 2);
    assert_eq!(carol.next().await["type"], "subscribed");
    assert_eq!(carol_too.next().await["type"], "subscribed");
    let members = api.ok("presence", json!({"channel": "inbox"}))["members"].clone();
    assert_eq!((members.as_array().unwrap().len(), &members[0]["user"]), (2, &json!("carol")));
    assert_eq!(api.ok("unsubscribe", json!({"user": "carol", "channel": "inbox"}))["connections"], 2);
    assert_eq!(carol.next().await["type"], "unsubscribed");
    assert_eq!(carol_too.next().await["type"], "unsubscribed");
    assert_eq!(api.ok("presence", json!({"channel": "inbox"}))["members"], json!([]));
    // One of them at its subscription limit (1): the other is subscribed, that one is listed.
    carol_too.subscribe("elsewhere").await;
    let result = api.ok("subscribe", json!({"user": "carol", "channel": "inbox"}));
    assert_eq!(result["connections"], 1);
    assert_eq!(result["failed"], json!([{"connection": carol_too.id, "error": result["failed"][0]["error"]}]));
    assert_eq!(result["failed"][0]["error"]["code"], "limit_exceeded");
}

#[tokio::test]
async fn subscribe_and_unsubscribe_server_side_start_and_stop_the_messages() {
    let api = Api::start(&[]);
    let mut client = Client::connect(&api.url()).await;
    api.ok("publish", json!({"channel": "feed", "data": "before"}));
    assert_eq!(api.ok("subscribe", json!({"connection": client.id, "channel": "feed"}))["connections"], 1);
    let subscribed = client.next().await;
    assert_eq!((&subscribed["type"], &subscribed["channel"]), (&json!("subscribed"), &json!("feed")));
    assert_eq!(subscribed["offset"], 1, "the channel's current offset");
    assert!(subscribed["epoch"].is_string());
    api.ok("publish", json!({"channel": "feed", "data": "live"}));
    let message = client.next().await;
    assert_eq!(
        (&message["type"], &message["offset"], &message["data"]),
        (&json!("message"), &json!(2), &json!("live"))
    );
    let members = api.ok("presence", json!({"channel": "feed"}));
    assert_eq!(members["members"][0]["connectionId"], json!(client.id));

    assert_eq!(api.ok("unsubscribe", json!({"connection": client.id, "channel": "feed"}))["connections"], 1);
    assert_eq!(client.next().await, json!({"type": "unsubscribed", "channel": "feed"}));
    api.ok("publish", json!({"channel": "feed", "data": "after"}));
    // A direct message as a marker: had the publish reached the client, it would come first.
    api.ok("send", json!({"connection": client.id, "data": "marker"}));
    assert_eq!(client.next().await["data"], "marker", "no message after unsubscribe");
    assert_eq!(api.ok("presence", json!({"channel": "feed"}))["members"], json!([]));
    let again = api.call("unsubscribe", json!({"connection": client.id, "channel": "feed"}));
    assert_eq!(refusal(&again), (409, "not_subscribed".into()));
    // A user without connections: nothing to do, not an error.
    assert_eq!(api.ok("subscribe", json!({"user": "nobody", "channel": "feed"}))["connections"], 0);
}

#[tokio::test]
async fn subscribe_past_a_connections_limit_is_400_limit_exceeded() {
    let api = Api::start(&["--max-subscriptions", "1"]);
    let mut client = Client::connect(&api.url()).await;
    client.subscribe("one").await;
    let answer = api.call("subscribe", json!({"connection": client.id, "channel": "two"}));
    assert_eq!(refusal(&answer), (400, "limit_exceeded".into()));
}

#[tokio::test]
async fn presence_lists_the_members_with_their_info() {
    let api = Api::start(&[]);
    let mut ada = Client::connect(&api.url()).await;
    let mut bob = Client::connect(&api.url()).await;
    ada.ack(json!({"type": "subscribe", "channel": "room", "info": {"nick": "ada"}})).await;
    bob.subscribe("room").await;
    let mut members = api.ok("presence", json!({"channel": "room"}))["members"].as_array().unwrap().clone();
    members.sort_by_key(|member| member["connectionId"] != json!(ada.id));
    assert_eq!(
        members,
        vec![
            json!({"connectionId": ada.id, "user": null, "info": {"nick": "ada"}}),
            json!({"connectionId": bob.id, "user": null, "info": null}),
        ]
    );
    assert_eq!(api.ok("presence", json!({"channel": "empty"}))["members"], json!([]));
}

#[tokio::test]
async fn history_pages_by_limit_and_since_and_checks_the_epoch() {
    let api = Api::start(&[]);
    let mut epoch = Value::Null;
    for n in 1..=5 {
        epoch = api.ok("publish", json!({"channel": "log", "data": {"n": n}}))["epoch"].clone();
    }
    let offsets = |page: &Value| -> Vec<u64> {
        page["publications"].as_array().unwrap().iter().map(|p| p["offset"].as_u64().unwrap()).collect()
    };
    let all = api.ok("history", json!({"channel": "log"}));
    assert_eq!((&all["offset"], &all["epoch"], &all["truncated"]), (&json!(5), &epoch, &json!(false)));
    assert_eq!(offsets(&all), [1, 2, 3, 4, 5]);
    assert_eq!(all["publications"][0], json!({"offset": 1, "data": {"n": 1}, "from": null}));
    assert_eq!(offsets(&api.ok("history", json!({"channel": "log", "limit": 2}))), [4, 5]);
    assert_eq!(offsets(&api.ok("history", json!({"channel": "log", "since": 3}))), [4, 5]);
    assert_eq!(offsets(&api.ok("history", json!({"channel": "log", "since": 1, "limit": 1}))), [5]);
    let none = api.ok("history", json!({"channel": "log", "limit": 0}));
    assert_eq!((offsets(&none), &none["offset"]), (vec![], &json!(5)), "limit 0: the position only");
    let same_epoch = api.ok("history", json!({"channel": "log", "since": 4, "epoch": epoch}));
    assert_eq!(offsets(&same_epoch), [5]);
    let other = api.call("history", json!({"channel": "log", "since": 4, "epoch": "notthis"}));
    assert_eq!(refusal(&other), (409, "epoch_mismatch".into()));
    let unknown = api.ok("history", json!({"channel": "never"}));
    assert_eq!((offsets(&unknown), &unknown["offset"]), (vec![], &json!(0)));
}

#[tokio::test]
async fn channels_lists_names_and_subscribers_by_prefix() {
    let api = Api::start(&[]);
    let mut one = Client::connect(&api.url()).await;
    let mut two = Client::connect(&api.url()).await;
    one.subscribe("room:1").await;
    two.subscribe("room:1").await;
    two.subscribe("room:2").await;
    one.subscribe("other").await;
    let rooms = api.ok("channels", json!({"prefix": "room:"}));
    assert_eq!(rooms["channels"], json!([{"name": "room:1", "subscribers": 2}, {"name": "room:2", "subscribers": 1}]));
    let all = api.ok("channels", json!({}));
    let names: Vec<&str> = all["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["other", "room:1", "room:2"]);
    assert_eq!(api.ok("channels", json!({"prefix": "zzz"}))["channels"], json!([]));
}

#[tokio::test]
async fn info_counts_connections_users_and_channels() {
    let api = Api::start(&[]);
    let empty = api.ok("info", json!({}));
    assert_eq!((&empty["connections"], &empty["users"], &empty["channels"]), (&json!(0), &json!(0), &json!(0)));
    assert_eq!(empty["version"], env!("CARGO_PKG_VERSION"));
    assert!(empty["uptimeSecs"].as_u64().is_some_and(|secs| secs < 60));
    let mut one = Client::connect(&api.url()).await;
    let _two = Client::connect(&api.url()).await;
    one.subscribe("a").await;
    api.ok("publish", json!({"channel": "b", "data": 1}));
    // An empty body is `{}`.
    let answer = api.call_with_key(Some(KEY), "info", "");
    assert_eq!(answer.status, 200, "{answer:?}");
    let info = &answer.json()["result"];
    assert_eq!((&info["connections"], &info["users"], &info["channels"]), (&json!(2), &json!(0), &json!(2)));
}

#[test]
fn bad_arguments_are_400() {
    let api = Api::start(&[]);
    let cases = [
        ("publish", "{", "bad_json"),
        ("publish", "not json", "bad_json"),
        ("publish", r#"{"channel":"a"}"#, "bad_request"),
        ("publish", r#"{"data":1}"#, "bad_request"),
        ("publish", r#"{"channel":5,"data":1}"#, "bad_request"),
        ("publish", r#"{"channel":"a","data":1,"extra":true}"#, "bad_request"),
        ("publish", r#"{"channel":"bad channel","data":1}"#, "bad_request"),
        ("publish", "[]", "bad_request"),
        ("broadcast", r#"{"channels":[],"data":1}"#, "bad_request"),
        ("broadcast", r#"{"channels":"a","data":1}"#, "bad_request"),
        ("broadcast", r#"{"channels":["a","b","a"],"data":1}"#, "bad_request"),
        ("send", r#"{"connection":"x"}"#, "bad_request"),
        ("disconnect", r#"{"connection":"x","code":1001}"#, "bad_request"),
        ("disconnect", r#"{"connection":"x","code":2999}"#, "bad_request"),
        ("disconnect", r#"{"connection":"x","code":5000}"#, "bad_request"),
        ("disconnect", r#"{"connection":"x","code":70000}"#, "bad_request"),
        ("disconnect", r#"{"connection":"x","code":"4000"}"#, "bad_request"),
        ("disconnect", r#"{}"#, "bad_request"),
        ("disconnect", r#"{"user":"u","connection":"x"}"#, "bad_request"),
        ("disconnect", r#"{"user":""}"#, "bad_request"),
        ("subscribe", r#"{"connection":"x"}"#, "bad_request"),
        ("subscribe", r#"{"channel":"a"}"#, "bad_request"),
        ("unsubscribe", r#"{"connection":"x","channel":"no spaces"}"#, "bad_request"),
        ("presence", r#"{}"#, "bad_request"),
        ("history", r#"{"channel":"a","limit":-1}"#, "bad_request"),
        ("history", r#"{"channel":"a","since":"3"}"#, "bad_request"),
        ("channels", r#"{"prefix":1}"#, "bad_request"),
        ("info", r#"{"verbose":true}"#, "bad_request"),
    ];
    for (method, body, code) in cases {
        let answer = api.call_with_key(Some(KEY), method, body);
        assert_eq!(refusal(&answer), (400, code.to_owned()), "{method} {body}");
    }
    let long_reason = json!({"connection": "x", "reason": "r".repeat(124)});
    assert_eq!(refusal(&api.call("disconnect", long_reason)), (400, "bad_request".into()));
    // 123 bytes is the most a Close frame holds: accepted (then 410, there is no such connection).
    let longest = json!({"connection": "x", "reason": "r".repeat(123)});
    assert_eq!(refusal(&api.call("disconnect", longest)).0, 410);
}

#[test]
fn a_missing_or_wrong_key_is_401_and_nothing_is_done() {
    let api = Api::start(&[]);
    let same_length: String = KEY.chars().rev().collect();
    let upper = KEY.to_uppercase();
    let prefix = &KEY[..KEY.len() - 1];
    let longer = format!("{KEY}x");
    for key in
        [None, Some("wrong"), Some(same_length.as_str()), Some(upper.as_str()), Some(prefix), Some(&longer), Some("")]
    {
        let publish = api.call_with_key(key, "publish", r#"{"channel":"secret","data":1}"#);
        assert_eq!(refusal(&publish), (401, "unauthorized".into()), "key {key:?}");
        // Without the key, not even which methods exist shows.
        assert_eq!(refusal(&api.call_with_key(key, "no-such-method", "{}")).0, 401, "key {key:?}");
        let get = http_request(
            &api.served.addr,
            "GET",
            "/api/info",
            &key.map(|k| vec![("X-API-Key", k)]).unwrap_or_default(),
            b"",
        );
        assert_eq!(get.status, 401, "key {key:?}");
    }
    let history = api.ok("history", json!({"channel": "secret"}));
    assert_eq!(history["offset"], 0, "no refused publish was published");
}

#[test]
fn an_unknown_method_is_404_and_other_http_methods_405() {
    let api = Api::start(&[]);
    for method in ["nope", "Publish", "publish/extra", "info/"] {
        assert_eq!(refusal(&api.call(method, json!({}))), (404, "unknown_method".into()), "{method}");
    }
    for verb in ["GET", "PUT", "DELETE"] {
        let answer = http_request(&api.served.addr, verb, "/api/info", &[("X-API-Key", KEY)], b"");
        assert_eq!(refusal(&answer), (405, "method_not_allowed".into()), "{verb}");
        assert_eq!(answer.header("allow"), Some("POST"));
    }
}

#[test]
fn without_a_key_every_api_path_is_404() {
    let served = Served::start(&[]);
    for (verb, path) in [("POST", "/api/info"), ("POST", "/api/publish"), ("GET", "/api/info"), ("POST", "/api/nope")] {
        let answer = http_request(&served.addr, verb, path, &[("X-API-Key", KEY)], b"{}");
        assert_eq!(answer.status, 404, "{verb} {path}: {answer:?}");
        assert!(!answer.body.contains("result"), "{answer:?}");
    }
    assert_eq!(http_request(&served.addr, "GET", "/healthz", &[], b"").status, 200);
}

#[tokio::test]
async fn a_connection_that_is_not_open_is_410() {
    let api = Api::start(&[]);
    let mut client = Client::connect(&api.url()).await;
    let id = client.id.clone();
    client.ws.close(tether_tokio::CloseCode::NORMAL, "bye").await.unwrap();
    while client.ws.recv().await.is_some() {}
    wait_for_connections(&api, 0).await;
    for gone in [id.as_str(), "never-existed"] {
        let calls = [
            ("send", json!({"connection": gone, "data": 1})),
            ("disconnect", json!({"connection": gone})),
            ("subscribe", json!({"connection": gone, "channel": "c"})),
            ("unsubscribe", json!({"connection": gone, "channel": "c"})),
        ];
        for (method, body) in calls {
            assert_eq!(refusal(&api.call(method, body.clone())), (410, "not_found".into()), "{method} {body}");
        }
    }
}

#[test]
fn a_body_or_data_too_large_is_413() {
    let api = Api::start(&["--max-data-bytes", "1024"]);
    // The body cap is max_data_bytes + 64 KiB, and holds before the body is parsed: this one is
    // not even JSON (unterminated), and would be 400 if it were read whole.
    let huge = format!(r#"{{"channel":"a","data":"{}"#, "x".repeat(1024 + 64 * 1024));
    let answer = api.call_with_key(Some(KEY), "publish", &huge);
    assert_eq!(refusal(&answer), (413, "too_large".into()));
    assert!(answer.json()["error"]["message"].as_str().unwrap().contains("body"), "{answer:?}");
    let just_under = format!(r#"{{"channel":"a","data":"{}"#, "x".repeat(1024 + 64 * 1024 - 100));
    assert_eq!(refusal(&api.call_with_key(Some(KEY), "publish", &just_under)), (400, "bad_json".into()));
    // Within the body cap, but data over max_data_bytes: the hub's own limit.
    let big_data = json!({"channel": "a", "data": "x".repeat(1100)});
    assert_eq!(refusal(&api.call("publish", big_data.clone())), (413, "too_large".into()));
    let broadcast = json!({"channels": ["a", "b"], "data": "x".repeat(1100)});
    assert_eq!(refusal(&api.call("broadcast", broadcast)), (413, "too_large".into()));
    let send = json!({"connection": "x", "data": "x".repeat(1100)});
    assert_eq!(refusal(&api.call("send", send)), (413, "too_large".into()));
    assert_eq!(api.ok("publish", json!({"channel": "a", "data": "x".repeat(1000)}))["offset"], 1);
}

#[test]
fn the_internal_port_serves_the_api_and_the_main_port_does_not() {
    let (served, lines) = Served::start_reading(&["--api-key", KEY, "--internal-port", "0"], 2);
    let internal = lines[1].strip_prefix("server API on http://").and_then(|rest| rest.strip_suffix("/api/"));
    let internal = internal.unwrap_or_else(|| panic!("{lines:?}"));
    assert_ne!(internal, served.addr);
    let on_internal = http_request(internal, "POST", "/api/info", &[("X-API-Key", KEY)], b"{}");
    assert_eq!(on_internal.status, 200, "{on_internal:?}");
    assert_eq!(on_internal.json()["result"]["version"], env!("CARGO_PKG_VERSION"));
    let wrong = http_request(internal, "POST", "/api/info", &[("X-API-Key", "wrong")], b"{}");
    assert_eq!(wrong.status, 401, "the key is checked there too");
    assert_eq!(http_request(internal, "GET", "/chat.html", &[], b"").status, 404, "only the API there");
    let upgrade = http_request(
        internal,
        "GET",
        "/tether",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        b"",
    );
    assert_eq!(upgrade.status, 404, "no WebSocket route there: {upgrade:?}");
    let on_main = http_request(&served.addr, "POST", "/api/info", &[("X-API-Key", KEY)], b"{}");
    assert_eq!(on_main.status, 404, "{on_main:?}");
    assert_eq!(http_request(&served.addr, "GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn the_key_never_appears_in_the_log() {
    let wrong = "wrong-key-that-must-not-be-logged";
    let mut child = serve_command(&["--api-key", KEY])
        .env("TETHER_LOG", "debug")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tether");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let addr = line.trim().rsplit_once("://").unwrap().1.to_owned();
    for key in [KEY, wrong] {
        for method in ["info", "publish", "nope"] {
            http_request(
                &addr,
                "POST",
                &format!("/api/{method}"),
                &[("X-API-Key", key)],
                b"{\"channel\":\"c\",\"data\":1}",
            );
        }
    }
    http_request(&addr, "POST", &format!("/api/{KEY}"), &[("X-API-Key", KEY)], b"{}");
    let _ = child.kill();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let _ = child.wait();
    assert!(log.contains("server API call"), "the calls were logged at all:\n{log}");
    // A wrong key is a warn line (rate-limited: the three quick refusals make one line).
    let warned: Vec<&str> = log.lines().filter(|line| line.contains("a missing or wrong X-API-Key")).collect();
    assert_eq!(warned.len(), 1, "one warn line for the refused keys:\n{log}");
    assert!(warned[0].contains("WARN") && warned[0].contains("peer=127.0.0.1:"), "{}", warned[0]);
    assert!(!log.contains(KEY), "the key is in the log:\n{log}");
    assert!(!log.contains(wrong), "a presented key is in the log:\n{log}");
}

#[test]
fn the_key_comes_from_a_flag_or_a_file_never_both_never_empty() {
    let dir = std::env::temp_dir().join(format!("tether-api-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("key");
    std::fs::write(&file, "key-from-a-file-0123\r\n").unwrap();
    let path = file.to_str().unwrap();
    let served = Served::start(&["--api-key-file", path]);
    let call = |key| http_request(&served.addr, "POST", "/api/info", &[("X-API-Key", key)], b"{}").status;
    assert_eq!(call("key-from-a-file-0123"), 200, "the file's content without its newline");
    assert_eq!(call("key-from-a-file-012"), 401);

    let (status, stderr) = serve_refusal(&["--api-key", "k", "--api-key-file", path]);
    assert_eq!(status, Some(2), "{stderr}");
    let (status, stderr) = serve_refusal(&["--api-key", ""]);
    assert_eq!(status, Some(2), "{stderr}");
    std::fs::write(&file, "\n").unwrap();
    let (status, stderr) = serve_refusal(&["--api-key-file", path]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("--api-key-file") && stderr.lines().count() == 1, "{stderr}");
    let (status, stderr) = serve_refusal(&["--api-key-file", "/nonexistent/key"]);
    assert_eq!(status, Some(2), "{stderr}");
    let (status, stderr) = serve_refusal(&["--internal-port", "0"]);
    assert_eq!(status, Some(2), "without a key: {stderr}");
    let config = dir.join("both.toml");
    std::fs::write(&config, format!("api_key = \"k\"\napi_key_file = {path:?}\n")).unwrap();
    let (status, stderr) = serve_refusal(&["--config", config.to_str().unwrap()]);
    assert_eq!(status, Some(2), "both in the file: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
