//! Identity, permissions and server-side control over the token protocol, against a real server:
//! the welcome's `user` and `expiresAt`, expiry (4001) and `refresh`, every namespace rule,
//! user-limited and token channels, the application's hooks, the channels a token subscribes to,
//! and what the server API calls on the hub (disconnect by user, server-side subscriptions).
//!
//! The route's authorize hook reads the identity from the query (`?user=ada&exp=SECS&info=JSON`)
//! and the test verifier reads tokens of the form `ada:UNIX_SECS` (connection) and
//! `sub:ada:CHANNEL` (subscription): the hub's side of tokens is what is tested here; real JWTs are
//! tested against `tether serve`.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{read_json, Client};
use serde_json::{json, Value};
use tether_hub::{
    BoxFuture, ChannelHooks, ConnectionToken, Hub, HubConfig, HubError, InitialChannels, NamespacePolicy, Namespaces,
    PublishDecision, PublishRequest, PublishRule, SubscribeRequest, SubscribeRule, SubscriptionToken, TokenServer,
    TokenVerifier,
};
use tether_proto::handshake::response::Response;
use tether_tokio::{ClientBuilder, Identity, Message, RouteOptions, Server, ServerConfig};

struct TestVerifier;

impl TokenVerifier for TestVerifier {
    fn connection_token(&self, token: &str) -> Result<ConnectionToken, String> {
        let (user, exp) = token.split_once(':').ok_or("malformed")?;
        let exp: u64 = exp.parse().map_err(|_| "malformed exp")?;
        let expires_at = UNIX_EPOCH + Duration::from_secs(exp);
        if expires_at <= SystemTime::now() {
            return Err("expired".into());
        }
        Ok(ConnectionToken { user: Some(user.into()), expires_at: Some(expires_at) })
    }

    fn subscription_token(&self, token: &str) -> Result<SubscriptionToken, String> {
        let mut parts = token.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("sub"), Some(user), Some(channel)) => {
                Ok(SubscriptionToken { user: user.into(), channel: channel.into(), expires_at: None })
            }
            _ => Err("not a subscription token".into()),
        }
    }
}

/// Refuses publishes of `"forbidden words"`, replaces `"shout"` by `"SHOUT"`, and refuses
/// subscribes to `moderated:closed` with a code of its own.
struct Moderator;

impl ChannelHooks for Moderator {
    fn on_subscribe<'a>(&'a self, request: SubscribeRequest<'a>) -> BoxFuture<'a, Result<(), HubError>> {
        Box::pin(async move {
            if request.channel == "moderated:hang" {
                std::future::pending::<()>().await;
            }
            if request.channel == "moderated:closed" {
                return Err(HubError::Refused { code: "room_closed".into(), message: "closed for the night".into() });
            }
            Ok(())
        })
    }

    fn on_publish<'a>(&'a self, request: PublishRequest<'a>) -> BoxFuture<'a, Result<PublishDecision, HubError>> {
        Box::pin(async move {
            // A hook may wait (a backend call); the connection's next request waits with it.
            tokio::time::sleep(Duration::from_millis(5)).await;
            match request.data.get() {
                r#""forbidden words""# => Err(HubError::Forbidden("moderated".into())),
                r#""shout""# => Ok(PublishDecision::Replace(serde_json::value::to_raw_value("SHOUT").unwrap())),
                _ => Ok(PublishDecision::Accept),
            }
        })
    }
}

fn unix_secs_from_now(secs: u64) -> u64 {
    (SystemTime::now() + Duration::from_secs(secs)).duration_since(UNIX_EPOCH).unwrap().as_secs()
}

async fn identity_from_query(request: tether_tokio::server::AuthRequest) -> Result<Identity, Response> {
    let Some(user) = request.query_param("user") else { return Ok(Identity::anonymous()) };
    let mut identity = Identity::user(user);
    if let Some(exp) = request.query_param("exp") {
        identity = identity.with_expiry(UNIX_EPOCH + Duration::from_secs(exp.parse().unwrap()));
    }
    if let Some(info) = request.query_param("info") {
        identity = identity.with_info(info);
    }
    if let Some(channels) = request.query_param("channels") {
        identity = identity.with_data(InitialChannels(channels.split(',').map(str::to_owned).collect()));
    }
    Ok(identity)
}

fn namespaces() -> Namespaces {
    Namespaces::default()
        .with("members", NamespacePolicy::open().subscribe(SubscribeRule::Authenticated))
        .with("news", NamespacePolicy::open().publish(PublishRule::Server))
        .with("room", NamespacePolicy::open().publish(PublishRule::Subscribers).presence(false))
        .with("auth", NamespacePolicy::open().publish(PublishRule::Authenticated))
        .with("secret", NamespacePolicy::open().subscribe(SubscribeRule::Token))
        .with("quiet", NamespacePolicy::open().join_leave(false))
        .with(
            "dm",
            NamespacePolicy::open()
                .subscribe(SubscribeRule::Authenticated)
                .publish(PublishRule::Subscribers)
                .allow_user_limited(true),
        )
        .with("short", NamespacePolicy::open().history(Some(2), None))
        .with("pm", NamespacePolicy::open().allow_user_limited(true))
}

fn config() -> HubConfig {
    HubConfig {
        namespaces: namespaces(),
        sweep_interval: Duration::from_millis(100),
        hook_timeout: Duration::from_millis(300),
        ..HubConfig::default()
    }
}

async fn start() -> (String, Hub) {
    start_with(config()).await
}

async fn start_with(config: HubConfig) -> (String, Hub) {
    serve(config, |token| token.with_verifier(Arc::new(TestVerifier)).with_hooks(Arc::new(Moderator))).await
}

/// A server whose `/tether` route takes its identity from the query; `build` adds what the token
/// server verifies and calls.
async fn serve(config: HubConfig, build: impl FnOnce(TokenServer) -> TokenServer) -> (String, Hub) {
    let server = Server::new(ServerConfig::default());
    let hub = Hub::new(config, server.registry());
    let token = build(TokenServer::new(hub.clone(), Duration::from_secs(30)));
    let options = RouteOptions::protocols(["tether.json"]).authorize(identity_from_query);
    let server = server.route_with("/tether", options, token).bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/tether", server.local_addr().unwrap());
    tokio::spawn(server.run());
    (url, hub)
}

async fn as_user(url: &str, user: &str) -> Client {
    Client::connect(&format!("{url}?user={user}")).await
}

/// The close code and reason the server sends next, skipping text frames.
async fn close_of(client: &mut Client) -> (u16, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.ws.recv()).await.expect("a close in time") {
            Some(Ok(Message::Text(_))) => continue,
            other => {
                let closed = client.ws.closed().expect("closed");
                let _ = other;
                return (closed.code.0, closed.reason.clone());
            }
        }
    }
}

#[tokio::test]
async fn the_welcome_says_who_and_until_when() {
    let (url, _hub) = start().await;
    let anonymous = Client::connect(&url).await;
    assert_eq!((&anonymous.welcome["user"], &anonymous.welcome["expiresAt"]), (&Value::Null, &Value::Null));
    let exp = unix_secs_from_now(600);
    let ada = Client::connect(&format!("{url}?user=ada&exp={exp}")).await;
    assert_eq!(ada.welcome["user"], "ada");
    assert_eq!(ada.welcome["expiresAt"], json!(exp * 1000));
    let left = ada.welcome["expiresIn"].as_u64().expect("expiresIn");
    assert!((598_000..=600_000).contains(&left), "{left} ms left by the server's clock");
    assert_eq!(anonymous.welcome["expiresIn"], Value::Null);
}

#[tokio::test]
async fn an_expired_connection_is_closed_with_4001_unless_it_refreshed() {
    let (url, hub) = start().await;
    let soon = unix_secs_from_now(2);
    let mut lazy = Client::connect(&format!("{url}?user=lazy&exp={soon}")).await;
    let mut keen = Client::connect(&format!("{url}?user=keen&exp={soon}")).await;
    assert_eq!(hub.stats().expiring, 2);

    // A token of another user, an expired one, a malformed one, none: refused, expiry unchanged.
    let later = unix_secs_from_now(3600);
    for (token, code) in [
        (format!("lazy:{later}"), "invalid_token"),
        (format!("keen:{}", unix_secs_from_now(0) - 10), "invalid_token"),
        ("garbage".to_owned(), "invalid_token"),
    ] {
        assert_eq!(keen.error_code(json!({"type": "refresh", "token": token})).await, code);
    }
    assert_eq!(keen.error_code(json!({"type": "refresh"})).await, "bad_request");
    let ack = keen.ack(json!({"type": "refresh", "token": format!("keen:{later}")})).await;
    assert_eq!(ack["expiresAt"], json!(later * 1000));
    assert!(ack["expiresIn"].as_u64().is_some_and(|left| left > 3_590_000), "{ack}");

    assert_eq!(close_of(&mut lazy).await, (4001, "token expired".to_owned()));
    // `keen` outlived its first token: still served.
    tokio::time::sleep(Duration::from_secs(1)).await;
    keen.ack(json!({"type": "history", "channel": "c"})).await;
    assert_eq!(hub.stats().expiring, 1, "lazy's entry went with it; keen has one, not two");
    drop(keen);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hub.stats().expiring, 0, "a closed connection leaves no entry behind");
}

#[tokio::test]
async fn a_server_without_a_verifier_refuses_refresh_and_token_channels() {
    let (url, _hub) = serve(config(), |token| token).await;
    // A user, so that it is the missing verifier that refuses, not the lack of a user.
    let mut x = as_user(&url, "x").await;
    let refused = x.request(json!({"type": "refresh", "token": "x:99999999999"})).await;
    assert_eq!(
        (&refused["code"], &refused["message"]),
        (&json!("forbidden"), &json!("this server verifies no tokens"))
    );
    let subscribe = json!({"type": "subscribe", "channel": "secret:x", "token": "sub:x:secret:x"});
    let refused = x.request(subscribe).await;
    assert_eq!(
        (&refused["code"], &refused["message"]),
        (&json!("forbidden"), &json!("this server verifies no subscription tokens"))
    );
}

#[tokio::test]
async fn subscribe_rules_refuse_and_allow_as_documented() {
    let (url, _hub) = start().await;
    let mut anonymous = Client::connect(&url).await;
    let mut ada = as_user(&url, "ada").await;
    // `members`: users only.
    assert_eq!(anonymous.error_code(json!({"type": "subscribe", "channel": "members:x"})).await, "forbidden");
    assert_eq!(anonymous.error_code(json!({"type": "history", "channel": "members:x"})).await, "forbidden");
    ada.ack(json!({"type": "subscribe", "channel": "members:x"})).await;
    ada.ack(json!({"type": "history", "channel": "members:x"})).await;
    // The default namespace stays open.
    anonymous.ack(json!({"type": "subscribe", "channel": "lobby"})).await;
    anonymous.ack(json!({"type": "subscribe", "channel": "unknown:ns"})).await;

    // `secret`: a subscription token for this user and channel.
    let no_token = json!({"type": "subscribe", "channel": "secret:plans"});
    assert_eq!(ada.error_code(no_token).await, "forbidden");
    let bob_token = json!({"type": "subscribe", "channel": "secret:plans", "token": "sub:bob:secret:plans"});
    assert_eq!(ada.error_code(bob_token).await, "forbidden");
    let other_channel = json!({"type": "subscribe", "channel": "secret:plans", "token": "sub:ada:secret:other"});
    assert_eq!(ada.error_code(other_channel).await, "forbidden");
    let bad = json!({"type": "subscribe", "channel": "secret:plans", "token": "forged"});
    assert_eq!(ada.error_code(bad).await, "invalid_token");
    assert_eq!(ada.error_code(json!({"type": "history", "channel": "secret:plans"})).await, "forbidden");
    ada.ack(json!({"type": "subscribe", "channel": "secret:plans", "token": "sub:ada:secret:plans"})).await;
    ada.ack(json!({"type": "history", "channel": "secret:plans"})).await;
}

#[tokio::test]
async fn publish_rules_refuse_and_allow_as_documented() {
    let (url, hub) = start().await;
    let mut anonymous = Client::connect(&url).await;
    let mut ada = as_user(&url, "ada").await;
    // `news`: the server only.
    ada.ack(json!({"type": "subscribe", "channel": "news:today"})).await;
    assert_eq!(ada.error_code(json!({"type": "publish", "channel": "news:today", "data": 1})).await, "forbidden");
    hub.publish("news:today", &"from the server").await.unwrap();
    assert_eq!(ada.event_of("message").await["data"], "from the server");
    // `room`: subscribers only; presence off.
    let publish = json!({"type": "publish", "channel": "room:1", "data": 1});
    assert_eq!(anonymous.error_code(publish.clone()).await, "forbidden");
    anonymous.ack(json!({"type": "subscribe", "channel": "room:1"})).await;
    anonymous.ack(publish).await;
    assert_eq!(anonymous.error_code(json!({"type": "presence", "channel": "room:1"})).await, "forbidden");
    // `auth`: users only, subscribed or not.
    let publish = json!({"type": "publish", "channel": "auth:x", "data": 1});
    assert_eq!(anonymous.error_code(publish.clone()).await, "forbidden");
    ada.ack(publish).await;
    // The default: anyone, subscribed or not; `$` channels stay the server's.
    anonymous.ack(json!({"type": "publish", "channel": "lobby", "data": 1})).await;
    assert_eq!(anonymous.error_code(json!({"type": "publish", "channel": "$sys", "data": 1})).await, "forbidden");
}

#[tokio::test]
async fn user_limited_channels_admit_only_the_users_they_name() {
    let (url, _hub) = start().await;
    let mut alice = as_user(&url, "alice").await;
    let mut bob = as_user(&url, "bob").await;
    let mut eve = as_user(&url, "eve").await;
    let channel = "dm:chat#alice,bob";
    alice.ack(json!({"type": "subscribe", "channel": channel})).await;
    bob.ack(json!({"type": "subscribe", "channel": channel})).await;
    assert_eq!(eve.error_code(json!({"type": "subscribe", "channel": channel})).await, "forbidden");
    assert_eq!(eve.error_code(json!({"type": "history", "channel": channel})).await, "forbidden");
    assert_eq!(eve.error_code(json!({"type": "publish", "channel": channel, "data": "hi"})).await, "forbidden");
    alice.ack(json!({"type": "publish", "channel": channel, "data": "hi bob"})).await;
    assert_eq!(bob.event_of("message").await["data"], "hi bob");
}

#[tokio::test]
async fn presence_and_join_events_carry_the_user_and_the_tokens_info() {
    let (url, _hub) = start().await;
    let mut watcher = as_user(&url, "watcher").await;
    watcher.ack(json!({"type": "subscribe", "channel": "lobby"})).await;
    let info = r#"{"name":"Ada L."}"#;
    let mut ada = Client::connect(&format!("{url}?user=ada&info={}", urlencode(info))).await;
    // The client claims another name: the token's info wins.
    ada.ack(json!({"type": "subscribe", "channel": "lobby", "info": {"name": "Queen"}})).await;
    let join = watcher.event_of("join").await;
    assert_eq!((&join["user"], &join["info"]), (&json!("ada"), &json!({"name": "Ada L."})));
    let members = watcher.ack(json!({"type": "presence", "channel": "lobby"})).await["members"].clone();
    let ada_member = members.as_array().unwrap().iter().find(|m| m["user"] == "ada").expect("ada is there").clone();
    assert_eq!(ada_member["info"], json!({"name": "Ada L."}));
    // An anonymous client's own info is shown, without a user.
    let mut anonymous = Client::connect(&url).await;
    anonymous.ack(json!({"type": "subscribe", "channel": "lobby", "info": {"name": "guest"}})).await;
    let join = watcher.event_of("join").await;
    assert_eq!((join.get("user"), &join["info"]), (None, &json!({"name": "guest"})));
    drop(ada);
    let leave = watcher.event_of("leave").await;
    assert_eq!(leave["user"], "ada");
}

#[tokio::test]
async fn join_leave_off_sends_no_events() {
    let (url, _hub) = start().await;
    let mut first = Client::connect(&url).await;
    first.ack(json!({"type": "subscribe", "channel": "quiet:x"})).await;
    first.ack(json!({"type": "subscribe", "channel": "loud"})).await;
    let mut second = Client::connect(&url).await;
    second.ack(json!({"type": "subscribe", "channel": "quiet:x"})).await;
    second.ack(json!({"type": "subscribe", "channel": "loud"})).await;
    let event = first.event().await;
    assert_eq!((&event["type"], &event["channel"]), (&json!("join"), &json!("loud")), "no join for quiet:x");
}

#[tokio::test]
async fn a_namespace_has_its_own_history_size() {
    let (url, hub) = start().await;
    for i in 0..5 {
        hub.publish("short:x", &i).await.unwrap();
        hub.publish("long", &i).await.unwrap();
    }
    let mut client = Client::connect(&url).await;
    let short = client.ack(json!({"type": "history", "channel": "short:x"})).await;
    let long = client.ack(json!({"type": "history", "channel": "long"})).await;
    assert_eq!(
        (short["publications"].as_array().unwrap().len(), long["publications"].as_array().unwrap().len()),
        (2, 5)
    );
}

#[tokio::test]
async fn hooks_refuse_replace_and_accept() {
    let (url, _hub) = start().await;
    let mut client = Client::connect(&url).await;
    let refused = client.request(json!({"type": "subscribe", "channel": "moderated:closed"})).await;
    assert_eq!((&refused["code"], &refused["message"]), (&json!("room_closed"), &json!("closed for the night")));
    client.ack(json!({"type": "subscribe", "channel": "moderated:open"})).await;
    let publish = |data: &str| json!({"type": "publish", "channel": "moderated:open", "data": data});
    assert_eq!(client.error_code(publish("forbidden words")).await, "forbidden");
    client.ack(publish("shout")).await;
    assert_eq!(client.event_of("message").await["data"], "SHOUT", "the hook's copy is what subscribers get");
    client.ack(publish("fine")).await;
    assert_eq!(client.event_of("message").await["data"], "fine");
    let history = client.ack(json!({"type": "history", "channel": "moderated:open"})).await;
    assert_eq!(history["publications"].as_array().unwrap().len(), 2, "the refused one is nowhere");
}

#[tokio::test]
async fn a_tokens_channels_are_subscribed_as_the_connection_opens() {
    let (url, hub) = start().await;
    let mut ada = Client::connect(&format!("{url}?user=ada&channels=news:today,personal%23ada,bad%20name")).await;
    let mut subscribed = [ada.event_of("subscribed").await, ada.event_of("subscribed").await];
    subscribed.sort_by_key(|event| event["channel"].as_str().unwrap().to_owned());
    assert_eq!(subscribed[0]["channel"], "news:today");
    assert_eq!(subscribed[1]["channel"], "personal#ada");
    assert!(subscribed[0]["epoch"].is_string() && subscribed[0]["offset"] == 0);
    hub.publish("news:today", &"extra").await.unwrap();
    assert_eq!(ada.event_of("message").await["data"], "extra");
    // The server subscribed it, so it may unsubscribe like from any channel.
    ada.ack(json!({"type": "unsubscribe", "channel": "news:today"})).await;
}

#[tokio::test]
async fn server_side_subscribe_unsubscribe_and_disconnect_by_user() {
    let (url, hub) = start().await;
    let mut phone = as_user(&url, "ada").await;
    let mut laptop = as_user(&url, "ada").await;
    let mut other = as_user(&url, "bob").await;
    let _anonymous = Client::connect(&url).await;
    let stats = hub.stats();
    assert_eq!((stats.connections, stats.users), (4, 2));
    assert_eq!(hub.connections_of("ada").len(), 2);

    hub.subscribe_connection(&phone.id(), "alerts").await.unwrap();
    let pushed = phone.event_of("subscribed").await;
    assert_eq!(pushed["channel"], "alerts");
    hub.publish("alerts", &"fire").await.unwrap();
    assert_eq!(phone.event_of("message").await["data"], "fire");
    assert_eq!(
        hub.channels(Some("al")).iter().map(|c| (c.name.as_str(), c.subscribers)).collect::<Vec<_>>(),
        [("alerts", 1)]
    );
    hub.unsubscribe_connection(&phone.id(), "alerts").await.unwrap();
    assert_eq!(phone.event_of("unsubscribed").await["channel"], "alerts");
    assert_eq!(hub.unsubscribe_connection(&phone.id(), "alerts").await.unwrap_err().code(), "not_subscribed");
    assert_eq!(hub.subscribe_connection("AAAAAAAAAAAAAAAA", "alerts").await.unwrap_err().code(), "not_found");

    for conn in hub.connections_of("ada") {
        conn.close(tether_tokio::CloseCode(4000), "disconnected by server").unwrap();
    }
    assert_eq!(close_of(&mut phone).await, (4000, "disconnected by server".to_owned()));
    assert_eq!(close_of(&mut laptop).await, (4000, "disconnected by server".to_owned()));
    other.ack(json!({"type": "history", "channel": "c"})).await;
}

#[tokio::test]
async fn server_publish_answers_with_offset_and_epoch() {
    let (url, hub) = start().await;
    let data = serde_json::value::to_raw_value(&json!({"n": 1})).unwrap();
    let first = hub.publish_json("api:x", &data).await.unwrap();
    let second = hub.publish_json("api:x", &data).await.unwrap();
    assert_eq!((first.offset, second.offset), (1, 2));
    assert_eq!(first.epoch, second.epoch);
    let mut client = Client::connect(&url).await;
    let history = client.ack(json!({"type": "history", "channel": "api:x"})).await;
    assert_eq!(history["epoch"], json!(first.epoch));
    let big = serde_json::value::to_raw_value(&"x".repeat(70 * 1024)).unwrap();
    assert_eq!(hub.publish_json("api:x", &big).await.unwrap_err().code(), "too_large");
}

#[tokio::test]
async fn an_identity_that_expired_before_the_welcome_is_closed_at_once() {
    let (url, _hub) = start().await;
    let past = unix_secs_from_now(0) - 5;
    let (mut ws, _) =
        ClientBuilder::new(&format!("{url}?user=late&exp={past}")).protocol("tether.json").connect().await.unwrap();
    let welcome = read_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome");
    let next = tokio::time::timeout(Duration::from_secs(5), ws.recv()).await.unwrap();
    assert!(!matches!(next, Some(Ok(Message::Text(_)))), "{next:?}");
    assert_eq!(ws.closed().map(|c| c.code.0), Some(4001));
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test]
async fn user_limited_channels_refuse_everyone_else_whatever_the_publish_rule() {
    let (url, _hub) = start().await;
    let mut alice = as_user(&url, "alice").await;
    let mut eve = as_user(&url, "eve").await;
    let mut anonymous = Client::connect(&url).await;
    let channel = "pm:x#alice,bob";
    alice.ack(json!({"type": "subscribe", "channel": channel})).await;
    for client in [&mut eve, &mut anonymous] {
        assert_eq!(
            client.error_code(json!({"type": "publish", "channel": channel, "data": "psst"})).await,
            "forbidden"
        );
    }
    alice.ack(json!({"type": "publish", "channel": channel, "data": "note to self"})).await;
    // One `#` only: `pm:x#alice,bob#eve` could be read as naming `bob#eve`.
    let ambiguous = json!({"type": "subscribe", "channel": "pm:x#alice,bob#eve"});
    assert_eq!(eve.error_code(ambiguous.clone()).await, "forbidden");
    assert_eq!(alice.error_code(ambiguous).await, "forbidden");
}

#[tokio::test]
async fn refresh_is_refused_for_anonymous_connections_and_after_the_expiry_passed() {
    // A sweep that never comes in time: what a refresh that arrives late gets is the hub's answer.
    let (url, _hub) = start_with(HubConfig { sweep_interval: Duration::from_secs(3600), ..config() }).await;
    let mut anonymous = Client::connect(&url).await;
    let token = format!("nobody:{}", unix_secs_from_now(600));
    assert_eq!(anonymous.error_code(json!({"type": "refresh", "token": token})).await, "forbidden");

    let mut late = Client::connect(&format!("{url}?user=late&exp={}", unix_secs_from_now(1))).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let token = format!("late:{}", unix_secs_from_now(600));
    let refused = late.request(json!({"type": "refresh", "token": token})).await;
    assert_eq!(
        (&refused["code"], &refused["message"]),
        (&json!("invalid_token"), &json!("the connection's token expired already"))
    );
}

#[tokio::test]
async fn a_hook_that_hangs_is_answered_unavailable_and_the_connection_goes_on() {
    let (url, _hub) = start().await;
    let mut client = Client::connect(&url).await;
    let started = std::time::Instant::now();
    assert_eq!(client.error_code(json!({"type": "subscribe", "channel": "moderated:hang"})).await, "unavailable");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded by hook_timeout (300 ms here)");
    client.ack(json!({"type": "subscribe", "channel": "moderated:open"})).await;
}

#[tokio::test]
async fn direct_messages_follow_their_rule() {
    let config = HubConfig { direct_messages: tether_hub::SendRule::Authenticated, ..config() };
    let (url, _hub) = start_with(config).await;
    let mut anonymous = Client::connect(&url).await;
    let mut ada = as_user(&url, "ada").await;
    let to = ada.id();
    assert_eq!(anonymous.error_code(json!({"type": "send", "to": to, "data": 1})).await, "forbidden");
    let to = anonymous.id();
    ada.ack(json!({"type": "send", "to": to, "data": "hello"})).await;
    assert_eq!(anonymous.event_of("direct").await["data"], "hello");
}

#[tokio::test]
async fn join_leave_off_sends_no_leave_either() {
    let (url, _hub) = start().await;
    let mut first = Client::connect(&url).await;
    first.ack(json!({"type": "subscribe", "channel": "quiet:x"})).await;
    first.ack(json!({"type": "subscribe", "channel": "loud"})).await;
    let mut second = Client::connect(&url).await;
    second.ack(json!({"type": "subscribe", "channel": "quiet:x"})).await;
    second.ack(json!({"type": "subscribe", "channel": "loud"})).await;
    assert_eq!(first.event_of("join").await["channel"], "loud");
    second.ack(json!({"type": "unsubscribe", "channel": "quiet:x"})).await;
    second.ack(json!({"type": "unsubscribe", "channel": "loud"})).await;
    let event = first.event().await;
    assert_eq!((&event["type"], &event["channel"]), (&json!("leave"), &json!("loud")), "no leave for quiet:x");
}

#[tokio::test]
async fn server_side_subscriptions_keep_to_the_subscription_limit_and_the_clients_info() {
    let (url, hub) = start_with(HubConfig { max_subscriptions: 2, ..config() }).await;
    let mut client = Client::connect(&url).await;
    client.ack(json!({"type": "subscribe", "channel": "a", "info": {"nick": "mine"}})).await;
    hub.subscribe_connection(&client.id(), "a").await.unwrap();
    let members = hub.presence("a").await.unwrap();
    assert_eq!(members[0].info.as_ref().map(|i| i.get()), Some(r#"{"nick":"mine"}"#), "already in: unchanged");
    hub.subscribe_connection(&client.id(), "b").await.unwrap();
    assert_eq!(hub.subscribe_connection(&client.id(), "c").await.unwrap_err().code(), "limit_exceeded");
    assert_eq!(client.event_of("subscribed").await["channel"], "b", "one push, for b only");
}

#[tokio::test]
async fn a_server_side_subscribe_racing_the_connections_end_leaves_nobody_behind() {
    let (url, hub) = start().await;
    for round in 0..20 {
        let client = Client::connect(&url).await;
        let id = client.id();
        let channel = format!("race{round}");
        let subscriber = {
            let (hub, id, channel) = (hub.clone(), id.clone(), channel.clone());
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                while std::time::Instant::now() < deadline {
                    let subscribed = runtime.block_on(hub.subscribe_connection(&id, &channel));
                    if subscribed.is_err() && hub.connection(&id).is_none() {
                        return;
                    }
                    let _ = runtime.block_on(hub.unsubscribe_connection(&id, &channel));
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(round % 5)).await;
        drop(client);
        subscriber.await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !hub.presence(&channel).await.unwrap().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            hub.presence(&channel).await.unwrap().is_empty(),
            "round {round}: a closed connection is still in {channel}"
        );
    }
}

#[tokio::test]
async fn stats_count_subscriptions_publications_and_history_and_fanout_is_observed() {
    let (url, hub) = start().await;
    let observed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&observed);
    assert!(hub.on_fanout(move |took| seen.lock().unwrap().push(took)));
    assert!(!hub.on_fanout(|_| {}), "set once");
    let mut ada = as_user(&url, "ada").await;
    let mut bob = as_user(&url, "bob").await;
    hub.subscribe_connection(&ada.id(), "news").await.unwrap();
    hub.subscribe_connection(&ada.id(), "sport").await.unwrap();
    hub.subscribe_connection(&bob.id(), "news").await.unwrap();
    ada.event_of("subscribed").await;
    bob.event_of("subscribed").await;
    let before = hub.stats();
    assert_eq!((before.subscriptions, before.channels, before.publications), (3, 2, 0));

    hub.publish("news", &"one").await.unwrap();
    hub.publish("news", &"two").await.unwrap();
    // Nobody listens to "empty": a publication, kept in history, but no fan-out to time.
    hub.publish("empty", &"three").await.unwrap();
    assert_eq!(bob.event_of("message").await["data"], "one");
    let after = hub.stats();
    assert_eq!(after.publications, 3);
    assert_eq!(after.history_entries, before.history_entries + 3);
    assert!(after.history_bytes > before.history_bytes);
    assert_eq!(observed.lock().unwrap().len(), 2, "one per publish that reached a subscriber");

    let news = hub.channels(Some("news")).pop().unwrap();
    assert_eq!((news.subscribers, news.last_offset, news.history_size), (2, 2, 2));
    assert_eq!(news.epoch, hub.history("news", None, None).await.unwrap().epoch);
}
