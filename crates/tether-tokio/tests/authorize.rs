//! A route's authorize hook (`RouteOptions::authorize`): it runs after the server's own checks and
//! before the 101; a refusal is the hook's own HTTP answer and no WebSocket opens (the listener
//! never hears of the client); an identity is carried by the connection (`Conn::user`, `info`,
//! `expires_at`, typed data); a hook that does not decide within the handshake timeout gets 503;
//! the same holds on an upgrade that follows plain HTTP on one connection.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{read_head, response_head, status_of, upgrade_request, RawClient};
use tether_proto::frame::OpCode;
use tether_proto::handshake::response::Response;
use tether_tokio::server::AuthRequest;
use tether_tokio::{Conn, Identity, Listener, Message, RouteOptions, Server, ServerConfig};
use tokio::io::AsyncWriteExt;

/// The application's data a hook hands to the connection.
#[derive(Debug, PartialEq)]
struct Claims {
    scope: &'static str,
}

/// Answers each message with what the connection knows of its user.
#[derive(Clone, Default)]
struct WhoAmI {
    opened: Arc<AtomicUsize>,
}

impl Listener for WhoAmI {
    async fn opened(&self, _conn: &Conn) {
        self.opened.fetch_add(1, Ordering::SeqCst);
    }

    async fn message(&self, conn: &Conn, _message: Message) {
        let claims = conn.data::<Claims>().map(|claims| claims.scope).unwrap_or("-");
        let expires = conn.expires_at().map(|at| at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs());
        let answer = format!("{:?} {:?} {claims} {expires:?}", conn.user(), conn.info());
        let _ = conn.send_text(answer);
    }
}

/// The hook: `?token=good` is Ada, `?token=anon` is let in anonymously, `?token=slow` never
/// decides, anything else is refused with 401 and a `WWW-Authenticate` challenge. It records what
/// it saw.
async fn hook(request: AuthRequest, seen: Arc<Mutex<Vec<String>>>) -> Result<Identity, Response> {
    seen.lock().unwrap().push(format!(
        "{} {:?} {:?} {}",
        request.path(),
        request.query_param("token"),
        request.header("x-trace"),
        request.remote_addr.ip()
    ));
    match request.query_param("token").as_deref() {
        Some("good") => Ok(Identity::user("ada")
            .with_info(r#"{"name":"Ada"}"#)
            .with_expiry(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000))
            .with_data(Claims { scope: "chat" })),
        Some("anon") => Ok(Identity::anonymous()),
        Some("slow") => std::future::pending().await,
        // A hook that copies what the client sent into a header: CR LF must not start a new one.
        Some("split") => Err(Response::new(401).header("WWW-Authenticate", "Bearer x\r\nSet-Cookie: pwn=1")),
        Some("switch") => Err(Response::new(101)),
        _ => Err(Response::new(401).header("WWW-Authenticate", r#"Bearer error="invalid_token""#).text("no entry\n")),
    }
}

fn options_for_streams(seen: &Arc<Mutex<Vec<String>>>) -> RouteOptions {
    let recorded = Arc::clone(seen);
    RouteOptions::default().authorize(move |request| hook(request, Arc::clone(&recorded)))
}

/// The stream API's face of the same: the identity is on the `WebSocket`.
async fn who_am_i_stream(
    mut ws: tether_tokio::WebSocket<tether_tokio::Transport>,
    _request: tether_proto::handshake::server::UpgradeRequest,
) {
    while let Some(Ok(_)) = ws.recv().await {
        let identity = ws.identity().expect("a route with a hook gives every connection an identity");
        let claims = identity.data::<Claims>().map(|claims| claims.scope).unwrap_or("-");
        let answer = format!("{:?} {:?} {claims}", identity.user_id(), identity.info());
        if ws.send(&Message::Text(answer.into())).await.is_err() {
            break;
        }
    }
}

struct Setup {
    addr: String,
    seen: Arc<Mutex<Vec<String>>>,
    opened: Arc<AtomicUsize>,
}

async fn setup() -> Setup {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    let options = RouteOptions::default().authorize(move |request| hook(request, Arc::clone(&recorded)));
    let listener = WhoAmI::default();
    let opened = Arc::clone(&listener.opened);
    let config = ServerConfig { handshake_timeout: Duration::from_secs(10), ..ServerConfig::default() };
    let server = Server::new(config)
        .route_with("/who", options, listener)
        .route("/open", WhoAmI::default())
        .route_stream("/stream", options_for_streams(&seen), who_am_i_stream)
        .http(axum::Router::new().route("/", axum::routing::get(|| async { "ok" })));
    Setup { addr: common::serve(server).await, seen, opened }
}

async fn ask(client: &mut RawClient) -> String {
    client.send(OpCode::Text, b"?").await;
    let (opcode, payload) = client.next_frame().await.expect("an answer");
    assert_eq!(opcode, OpCode::Text);
    String::from_utf8(payload).unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_identity_from_the_hook_is_carried_by_the_connection() {
    let setup = setup().await;
    let mut ada = RawClient::connect(&setup.addr, "/who?token=good").await;
    assert_eq!(ask(&mut ada).await, r#"Some("ada") Some("{\"name\":\"Ada\"}") chat Some(2000000000)"#);
    let mut anonymous = RawClient::connect(&setup.addr, "/who?token=anon").await;
    assert_eq!(ask(&mut anonymous).await, "None None - None");
    // A route without a hook: no identity at all, and the hook is not asked.
    let mut open = RawClient::connect(&setup.addr, "/open").await;
    assert_eq!(ask(&mut open).await, "None None - None");
    assert_eq!(setup.seen.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_hook_sees_path_query_headers_and_peer() {
    let setup = setup().await;
    let request = upgrade_request("/who?token=go%6Fd&x=1", &setup.addr, "X-Trace: t-1\r\n");
    let head = response_head(&setup.addr, &request).await;
    assert_eq!(status_of(&head), "101", "{head}");
    assert_eq!(setup.seen.lock().unwrap().as_slice(), [r#"/who Some("good") Some("t-1") 127.0.0.1"#]);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_the_hooks_answer_and_no_websocket_opens() {
    let setup = setup().await;
    let request = upgrade_request("/who?token=bad", &setup.addr, "");
    let head = response_head(&setup.addr, &request).await;
    assert_eq!(status_of(&head), "401", "{head}");
    assert!(head.contains("WWW-Authenticate: Bearer error=\"invalid_token\"\r\n"), "{head}");
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(!head.contains("Sec-WebSocket-Accept"), "{head}");
    let head = response_head(&setup.addr, &upgrade_request("/who", &setup.addr, "")).await;
    assert_eq!(status_of(&head), "401", "{head}");
    assert_eq!(setup.opened.load(Ordering::SeqCst), 0, "a refused client reached the listener");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_that_could_split_the_response_or_pose_as_an_upgrade_is_a_500() {
    let setup = setup().await;
    for token in ["split", "switch"] {
        let head = response_head(&setup.addr, &upgrade_request(&format!("/who?token={token}"), &setup.addr, "")).await;
        assert_eq!(status_of(&head), "500", "{token}: {head}");
        assert!(!head.contains("Set-Cookie") && !head.contains("pwn"), "{head}");
        // After plain HTTP (hyper's path): the same 500, and no panic of the connection's task.
        let (status, head, _) = after_plain_http(&setup.addr, token).await;
        assert_eq!(status, "500", "{token}: {head}");
        assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    }
    assert_eq!(setup.opened.load(Ordering::SeqCst), 0);
}

/// Plain HTTP first, then an upgrade on the same connection (hyper serves both): the upgrade's
/// status, its head, and the socket for what follows.
async fn after_plain_http(addr: &str, token: &str) -> (String, String, RawClient) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    stream.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let head = read_head(&mut stream, &mut buf).await;
    assert_eq!(status_of(&head), "200", "{head}");
    while buf.len() < 2 {
        assert!(tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf).await.unwrap() > 0);
    }
    assert_eq!(&buf.split()[..], b"ok");
    stream.write_all(upgrade_request(&format!("/who?token={token}"), addr, "").as_bytes()).await.unwrap();
    let head = read_head(&mut stream, &mut buf).await;
    (status_of(&head).to_owned(), head, RawClient { stream, buf })
}

/// A client refused by the hook cannot try again on the same socket: the connection ends after
/// the answer on either path.
#[tokio::test(start_paused = true)]
async fn the_connection_ends_after_the_hooks_refusal_on_either_path() {
    let setup = setup().await;
    let mut stream = tokio::net::TcpStream::connect(&setup.addr).await.unwrap();
    stream.write_all(upgrade_request("/who?token=bad", &setup.addr, "").as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest).await.unwrap();
    assert!(rest.starts_with(b"HTTP/1.1 401"), "{}", String::from_utf8_lossy(&rest));

    let (status, head, mut client) = after_plain_http(&setup.addr, "bad").await;
    assert_eq!(status, "401", "{head}");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut client.stream, &mut rest).await.unwrap();
    // The 401's body, then EOF: no second request is read on this socket.
    assert!(!String::from_utf8_lossy(&rest).contains("HTTP/1.1"), "{}", String::from_utf8_lossy(&rest));
}

#[tokio::test(start_paused = true)]
async fn a_hook_still_deciding_at_the_timeout_after_plain_http_gets_503() {
    let setup = setup().await;
    let started = tokio::time::Instant::now();
    let (status, head, _) = after_plain_http(&setup.addr, "slow").await;
    assert_eq!(status, "503", "{head}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(9_900) && waited <= Duration::from_secs(11), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_missing_sub_protocol_is_refused_before_the_hook_is_asked() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    let options = RouteOptions::protocols(["json"])
        .require_protocol()
        .authorize(move |request| hook(request, Arc::clone(&recorded)));
    let addr = common::serve(Server::new(ServerConfig::default()).route_with("/who", options, WhoAmI::default())).await;
    let offer = "Sec-WebSocket-Protocol: soap\r\n";
    let head = response_head(&addr, &upgrade_request("/who?token=good", &addr, offer)).await;
    assert_eq!(status_of(&head), "400", "{head}");
    assert!(seen.lock().unwrap().is_empty());
    let offer = "Sec-WebSocket-Protocol: json\r\n";
    let head = response_head(&addr, &upgrade_request("/who?token=good", &addr, offer)).await;
    assert_eq!(status_of(&head), "101", "{head}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_origin_refusal_comes_first_and_skips_the_hook() {
    let setup = setup().await;
    let foreign = upgrade_request("/who?token=good", &setup.addr, "Origin: https://evil.test\r\n");
    assert_eq!(status_of(&response_head(&setup.addr, &foreign).await), "403");
    assert!(setup.seen.lock().unwrap().is_empty(), "the hook was asked about a request already refused");
}

#[tokio::test(start_paused = true)]
async fn a_hook_that_does_not_decide_in_time_gets_503_at_the_handshake_timeout() {
    let setup = setup().await;
    let mut stream = tokio::net::TcpStream::connect(&setup.addr).await.unwrap();
    let started = tokio::time::Instant::now();
    stream.write_all(upgrade_request("/who?token=slow", &setup.addr, "").as_bytes()).await.unwrap();
    let head = read_head(&mut stream, &mut bytes::BytesMut::new()).await;
    assert_eq!(status_of(&head), "503", "{head}");
    assert!(head.contains("Retry-After: 1\r\n"), "{head}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(9_900) && waited <= Duration::from_secs(11), "{waited:?}");
    assert_eq!(setup.opened.load(Ordering::SeqCst), 0);
}

/// hyper serves plain HTTP first; an upgrade on the same connection afterwards meets the same hook.
#[tokio::test(start_paused = true)]
async fn the_hook_also_decides_upgrades_after_plain_http() {
    let setup = setup().await;
    let (status, head, _) = after_plain_http(&setup.addr, "bad").await;
    assert_eq!(status, "401", "{head}");
    assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer error=\"invalid_token\""), "{head}");
    let (status, head, mut client) = after_plain_http(&setup.addr, "good").await;
    assert_eq!(status, "101", "{head}");
    assert!(ask(&mut client).await.starts_with(r#"Some("ada")"#));
    assert_eq!(setup.opened.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stream_route_has_the_same_hook_and_its_websocket_the_identity() {
    let setup = setup().await;
    let mut ada = RawClient::connect(&setup.addr, "/stream?token=good").await;
    assert_eq!(ask(&mut ada).await, r#"Some("ada") Some("{\"name\":\"Ada\"}") chat"#);
    let head = response_head(&setup.addr, &upgrade_request("/stream?token=bad", &setup.addr, "")).await;
    assert_eq!(status_of(&head), "401", "{head}");
}
