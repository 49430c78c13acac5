//! The token protocol with auth on, against the real binary and JWTs made here: the welcome's
//! `user` and `expiresAt`, the token's `channels` and `info`, refresh before `exp` versus 4001
//! without it, every namespace rule of a TOML file (user-limited and token channels included),
//! and the publish proxy accepting, replacing and refusing against a test backend.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use common::{Client, Served};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tether_proto::handshake::client::ClientRequest;
use tether_proto::{Event, Message};

const SECRET: &str = "flow-secret-of-at-least-32-bytes!!";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn jwt(claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes()).unwrap())
        .unwrap()
}

/// A connection token for `user`, valid for `secs`.
fn token_for(user: &str, secs: u64) -> String {
    jwt(json!({"sub": user, "exp": now() + secs, "iat": now()}))
}

/// A token-protocol client: numbered requests, and the frames that arrive meanwhile kept.
struct Tp {
    client: Client<TcpStream>,
    next_id: u64,
    events: Vec<Value>,
    welcome: Value,
}

impl Tp {
    fn open(served: &Served, token: Option<&str>) -> Self {
        let target = token.map_or("/tether".to_owned(), |token| format!("/tether?token={token}"));
        let request = ClientRequest { protocols: vec!["tether.json".into()], ..ClientRequest::default() };
        let mut client = served.open(&target, request);
        client.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let welcome = client.next_json();
        assert_eq!(welcome["type"], "welcome");
        Self { client, next_id: 1, events: Vec::new(), welcome }
    }

    fn request(&mut self, mut request: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = json!(id);
        self.client.send_text(&request.to_string());
        loop {
            let frame = self.client.next_json();
            if frame["id"] == json!(id) && (frame["type"] == "ack" || frame["type"] == "error") {
                return frame;
            }
            self.events.push(frame);
        }
    }

    fn ack(&mut self, request: Value) -> Value {
        let answer = self.request(request.clone());
        assert_eq!(answer["type"], "ack", "{request} -> {answer}");
        answer
    }

    fn refused(&mut self, request: Value) -> String {
        let answer = self.request(request.clone());
        assert_eq!(answer["type"], "error", "{request} -> {answer}");
        answer["code"].as_str().unwrap().to_owned()
    }

    /// The next frame of `kind`, from those kept or the socket.
    fn event_of(&mut self, kind: &str) -> Value {
        if let Some(at) = self.events.iter().position(|event| event["type"] == kind) {
            return self.events.remove(at);
        }
        loop {
            let frame = self.client.next_json();
            if frame["type"] == kind {
                return frame;
            }
            self.events.push(frame);
        }
    }

    /// The close code and reason the server sends, skipping anything before it.
    fn close(&mut self) -> (u16, String) {
        loop {
            match self.client.next_event() {
                Ok(Event::Close(frame)) => {
                    let frame = frame.expect("a close code");
                    return (frame.code.0, frame.reason);
                }
                Ok(Event::Message(Message::Text(_)) | Event::Ping(_) | Event::Pong(_)) => {}
                other => panic!("expected a close, got {other:?}"),
            }
        }
    }
}

fn serve(extra: &[&str]) -> Served {
    let mut args = vec!["--no-demos", "--token-hmac-secret", SECRET];
    args.extend_from_slice(extra);
    Served::start(&args)
}

#[test]
fn the_welcome_names_the_user_and_the_tokens_channels_and_info_take_effect() {
    let served = serve(&["--allow-anonymous"]);
    let exp = now() + 600;
    let token = jwt(json!({"sub":"ada","exp":exp,"iat":now(),"info":{"name":"Ada L."},"channels":["news:today"]}));
    let mut ada = Tp::open(&served, Some(&token));
    assert_eq!((&ada.welcome["user"], &ada.welcome["expiresAt"]), (&json!("ada"), &json!(exp * 1000)));
    let subscribed = ada.event_of("subscribed");
    assert_eq!(subscribed["channel"], "news:today");
    let mut anonymous = Tp::open(&served, None);
    assert_eq!((&anonymous.welcome["user"], &anonymous.welcome["expiresAt"]), (&Value::Null, &Value::Null));
    anonymous.ack(json!({"type":"subscribe","channel":"news:today"}));
    let members = anonymous.ack(json!({"type":"presence","channel":"news:today"}))["members"].clone();
    let ada_member = members.as_array().unwrap().iter().find(|m| m["user"] == "ada").cloned().expect("ada listed");
    assert_eq!(ada_member["info"], json!({"name":"Ada L."}), "the token's info, shown in presence");
}

#[test]
fn a_refresh_before_exp_keeps_the_connection_and_without_one_it_is_closed_with_4001() {
    let served = serve(&[]);
    let mut keen = Tp::open(&served, Some(&token_for("keen", 2)));
    let mut lazy = Tp::open(&served, Some(&token_for("lazy", 2)));
    let later = now() + 3600;
    let ack = keen.ack(json!({"type":"refresh","token": jwt(json!({"sub":"keen","exp":later}))}));
    assert_eq!(ack["expiresAt"], json!(later * 1000));
    // Another user's token, or a forged one, is no refresh.
    assert_eq!(keen.refused(json!({"type":"refresh","token": token_for("lazy", 3600)})), "invalid_token");
    assert_eq!(keen.refused(json!({"type":"refresh","token": "not.a.jwt"})), "invalid_token");
    let started = Instant::now();
    assert_eq!(lazy.close(), (4001, "token expired".to_owned()));
    assert!(started.elapsed() < Duration::from_secs(5), "closed about when exp passed");
    std::thread::sleep(Duration::from_secs(1));
    keen.ack(json!({"type":"history","channel":"c"}));
}

const NAMESPACES: &str = r#"
[namespaces.members]
subscribe = "authenticated"

[namespaces.news]
publish = "server"

[namespaces.room]
publish = "subscribers"
presence = false
join_leave = false

[namespaces.secret]
subscribe = "token"

[namespaces.dm]
subscribe = "authenticated"
allow_user_limited = true

[namespaces.short]
history_size = 2
"#;

fn serve_with_namespaces(extra: &[&str]) -> (Served, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("tether-namespaces-{}-{:?}.toml", std::process::id(), Instant::now()));
    std::fs::write(&path, NAMESPACES).unwrap();
    let mut args = vec!["--allow-anonymous", "--config", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    (serve(&args), path)
}

#[test]
fn each_namespace_rule_refuses_and_allows_as_documented() {
    let (served, config) = serve_with_namespaces(&[]);
    let mut anonymous = Tp::open(&served, None);
    let mut ada = Tp::open(&served, Some(&token_for("ada", 600)));
    let subscribe = |channel: &str| json!({"type":"subscribe","channel":channel});
    let publish = |channel: &str| json!({"type":"publish","channel":channel,"data":"hi"});

    // subscribe = "authenticated"
    assert_eq!(anonymous.refused(subscribe("members:x")), "forbidden");
    assert_eq!(anonymous.refused(json!({"type":"history","channel":"members:x"})), "forbidden");
    ada.ack(subscribe("members:x"));
    // publish = "server"
    ada.ack(subscribe("news:x"));
    assert_eq!(ada.refused(publish("news:x")), "forbidden");
    // publish = "subscribers", presence off, no join/leave
    assert_eq!(anonymous.refused(publish("room:1")), "forbidden");
    ada.ack(subscribe("room:1"));
    anonymous.ack(subscribe("room:1"));
    anonymous.ack(publish("room:1"));
    assert_eq!(ada.refused(json!({"type":"presence","channel":"room:1"})), "forbidden");
    assert_eq!(ada.event_of("message")["channel"], "room:1");
    assert!(!ada.events.iter().any(|e| e["type"] == "join"), "join_leave = false: {:?}", ada.events);
    // subscribe = "token": a subscription JWT for this user and channel
    let sub_token = |user: &str, channel: &str| jwt(json!({"sub":user,"channel":channel,"exp":now() + 60}));
    assert_eq!(ada.refused(subscribe("secret:plans")), "forbidden");
    let wrong_user = json!({"type":"subscribe","channel":"secret:plans","token": sub_token("bob", "secret:plans")});
    assert_eq!(ada.refused(wrong_user), "forbidden");
    let wrong_channel = json!({"type":"subscribe","channel":"secret:plans","token": sub_token("ada", "secret:x")});
    assert_eq!(ada.refused(wrong_channel), "forbidden");
    let expired = jwt(json!({"sub":"ada","channel":"secret:plans","exp":now() - 10}));
    assert_eq!(ada.refused(json!({"type":"subscribe","channel":"secret:plans","token": expired})), "invalid_token");
    ada.ack(json!({"type":"subscribe","channel":"secret:plans","token": sub_token("ada", "secret:plans")}));
    // allow_user_limited
    let mut bob = Tp::open(&served, Some(&token_for("bob", 600)));
    let mut eve = Tp::open(&served, Some(&token_for("eve", 600)));
    ada.ack(subscribe("dm:chat#ada,bob"));
    bob.ack(subscribe("dm:chat#ada,bob"));
    assert_eq!(eve.refused(subscribe("dm:chat#ada,bob")), "forbidden");
    assert_eq!(eve.refused(publish("dm:chat#ada,bob")), "forbidden");
    ada.ack(publish("dm:chat#ada,bob"));
    assert_eq!(bob.event_of("message")["channel"], "dm:chat#ada,bob");
    // history_size per namespace; the default namespace stays open
    for _ in 0..4 {
        anonymous.ack(publish("short:x"));
    }
    let history = anonymous.ack(json!({"type":"history","channel":"short:x"}));
    assert_eq!(history["publications"].as_array().unwrap().len(), 2);
    anonymous.ack(subscribe("lobby"));
    anonymous.ack(publish("lobby"));
    let _ = std::fs::remove_file(config);
}

/// A publish backend on 127.0.0.1: `"bad"` is refused with a message, `"shout"` replaced by
/// `"SHOUT"`, `"down"` answered 500, anything else accepted.
fn publish_backend() -> (SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let app = axum::Router::new().route(
        "/publish",
        post(|axum::Json(request): axum::Json<Value>| async move {
            assert!(request["connectionId"].is_string() && request["channel"] == "chat:x", "{request}");
            match request["data"].as_str() {
                Some("bad") => (StatusCode::FORBIDDEN, axum::Json(json!({"error":"no bad words"}))).into_response(),
                Some("shout") => axum::Json(json!({"data":"SHOUT"})).into_response(),
                Some("down") => (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
                Some("huge") => axum::Json(json!({"data":"x".repeat(100 * 1024)})).into_response(),
                _ => axum::Json(json!({})).into_response(),
            }
        }),
    );
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, runtime)
}

#[test]
fn the_publish_proxy_accepts_replaces_and_refuses() {
    let (backend, _runtime) = publish_backend();
    let url = format!("http://{backend}/publish");
    let served = serve(&["--allow-anonymous", "--publish-proxy", &url]);
    let mut client = Tp::open(&served, Some(&token_for("ada", 600)));
    client.ack(json!({"type":"subscribe","channel":"chat:x"}));
    let publish = |data: &str| json!({"type":"publish","channel":"chat:x","data":data});
    client.ack(publish("hello"));
    assert_eq!(client.event_of("message")["data"], "hello");
    client.ack(publish("shout"));
    assert_eq!(client.event_of("message")["data"], "SHOUT", "the backend's data is what is published");
    let refused = client.request(publish("bad"));
    assert_eq!((&refused["code"], &refused["message"]), (&json!("forbidden"), &json!("no bad words")));
    assert_eq!(client.refused(publish("down")), "unavailable");
    let history = client.ack(json!({"type":"history","channel":"chat:x"}));
    let data: Vec<Value> = history["publications"].as_array().unwrap().iter().map(|p| p["data"].clone()).collect();
    assert_eq!(data, [json!("hello"), json!("SHOUT")], "refused publishes are nowhere");
}

#[test]
fn the_publish_proxy_reads_at_most_max_data_bytes_of_answer_and_tells_clients_no_details() {
    let (backend, _runtime) = publish_backend();
    let url = format!("http://{backend}/publish");
    // 1024 + 64 KiB of answer at most: a 100 KiB replacement is not even read.
    let served = serve(&["--allow-anonymous", "--max-data-bytes", "1024", "--publish-proxy", &url]);
    let mut client = Tp::open(&served, Some(&token_for("ada", 600)));
    client.ack(json!({"type":"subscribe","channel":"chat:x"}));
    let unavailable = (json!("unavailable"), json!("the application's backend is unavailable"));
    let refused = client.request(json!({"type":"publish","channel":"chat:x","data":"huge"}));
    assert_eq!((refused["code"].clone(), refused["message"].clone()), unavailable, "{refused}");
    // Nothing listens on port 1: the connection error stays in the server's log.
    let absent = serve(&["--allow-anonymous", "--publish-proxy", "http://127.0.0.1:1/publish"]);
    let mut client = Tp::open(&absent, Some(&token_for("ada", 600)));
    client.ack(json!({"type":"subscribe","channel":"chat:x"}));
    let refused = client.request(json!({"type":"publish","channel":"chat:x","data":"hello"}));
    assert_eq!((refused["code"].clone(), refused["message"].clone()), unavailable, "{refused}");
}
