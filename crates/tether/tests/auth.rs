//! Auth on `/tether`, against the real binary: JWT connection tokens (HS256 made here, ES256 with
//! a key made by rcgen, RS256 made by Python's pyjwt and cryptography as an independent issuer),
//! refusals with 401 and `WWW-Authenticate` before any upgrade, anonymous clients, the connect
//! proxy against a test backend, the demo token endpoint, and auth settings refused at startup.
//!
//! The Python tests need `pyjwt` and `cryptography` on the `python3` of PATH (scripts/test.sh
//! installs them into its venv and puts it first on PATH).

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use common::{read_head, serve_command, serve_refusal, status_of, Served};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tether_proto::handshake::client::ClientRequest;

const SECRET: &str = "test-secret-of-at-least-32-bytes!!";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn hs256(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()).unwrap())
        .unwrap()
}

/// An upgrade request to `/tether` offering `tether.json`, with `extra` header lines.
fn upgrade(target: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: tether.json\r\n{extra}\r\n"
    )
}

/// The whole answer to an upgrade the server refuses (it closes after the body); fails at once if
/// the server upgrades instead.
fn refused(served: &Served, target: &str, extra: &str) -> String {
    let mut stream = served.connect();
    stream.write_all(upgrade(target, extra).as_bytes()).unwrap();
    let head = read_head(&mut stream);
    assert_ne!(status_of(&head), "101", "{target}: upgraded instead of refused: {head}");
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    head + &body
}

/// Asserts a 401 with the Bearer challenge, no upgrade, and the reason in the body.
fn assert_401(response: &str, reason: &str) {
    assert_eq!(status_of(response), "401", "{response}");
    assert!(response.contains("\r\nWWW-Authenticate: Bearer error=\"invalid_token\"\r\n"), "{response}");
    assert!(!response.contains("Sec-WebSocket-Accept"), "{response}");
    assert!(response.ends_with(&format!("\r\n\r\n{reason}\n")), "{response}");
}

/// Opens `/tether` at `target` (with `headers`) and reads the welcome: the connection is open.
fn opens(served: &Served, target: &str, headers: &[(&str, &str)]) {
    let request = ClientRequest {
        protocols: vec!["tether.json".into()],
        headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..ClientRequest::default()
    };
    let mut client = served.open(target, request);
    assert_eq!(client.accepted.protocol.as_deref(), Some("tether.json"));
    let welcome = client.next_json();
    assert_eq!(welcome["type"], "welcome", "{welcome}");
}

fn with_secret(extra: &[&str]) -> Served {
    let mut args = vec!["--no-demos", "--token-hmac-secret", SECRET];
    args.extend_from_slice(extra);
    Served::start(&args)
}

#[test]
fn a_valid_token_in_the_query_or_a_bearer_header_opens_the_connection() {
    let served = with_secret(&[]);
    let token =
        hs256(json!({"sub":"ada","exp":now() + 60,"iat":now(),"info":{"name":"Ada"},"channels":["news"]}), SECRET);
    opens(&served, &format!("/tether?token={token}"), &[]);
    opens(&served, "/tether", &[("Authorization", &format!("Bearer {token}"))]);
    // No exp: never expires (Centrifugo's rule).
    opens(&served, &format!("/tether?token={}", hs256(json!({"sub":"ada"}), SECRET)), &[]);
}

#[test]
fn missing_forged_expired_and_malformed_tokens_get_401_before_any_upgrade() {
    let served = with_secret(&[]);
    assert_401(&refused(&served, "/tether", ""), "token required");
    assert_401(&refused(&served, "/tether?token=", ""), "token required");
    let forged = hs256(json!({"sub":"ada"}), "another-secret-also-32-bytes-long!!");
    assert_401(&refused(&served, &format!("/tether?token={forged}"), ""), "bad token signature");
    let expired = hs256(json!({"sub":"ada","exp":now() - 10}), SECRET);
    assert_401(&refused(&served, &format!("/tether?token={expired}"), ""), "token expired");
    assert_401(&refused(&served, "/tether", &format!("Authorization: Bearer {expired}\r\n")), "token expired");
    assert_401(&refused(&served, "/tether?token=not.a.jwt", ""), "malformed token");
    // A good token offered with another scheme is no token.
    let good = hs256(json!({"sub":"ada"}), SECRET);
    assert_401(&refused(&served, "/tether", &format!("Authorization: Basic {good}\r\n")), "token required");
}

#[test]
fn audience_and_issuer_are_checked_when_configured() {
    let served = with_secret(&["--token-audience", "tether", "--token-issuer", "https://app.example"]);
    let token = |claims: Value| format!("/tether?token={}", hs256(claims, SECRET));
    opens(&served, &token(json!({"sub":"ada","aud":"tether","iss":"https://app.example"})), &[]);
    let wrong_aud = token(json!({"sub":"ada","aud":"other","iss":"https://app.example"}));
    assert_401(&refused(&served, &wrong_aud, ""), "wrong token audience");
    assert_401(&refused(&served, &token(json!({"sub":"ada","iss":"https://app.example"})), ""), "wrong token audience");
    let wrong_iss = token(json!({"sub":"ada","aud":"tether","iss":"https://evil.example"}));
    assert_401(&refused(&served, &wrong_iss, ""), "wrong token issuer");
}

#[test]
fn allow_anonymous_lets_tokenless_clients_in_but_not_bad_tokens() {
    let served = with_secret(&["--allow-anonymous"]);
    opens(&served, "/tether", &[]);
    let expired = hs256(json!({"sub":"ada","exp":now() - 10}), SECRET);
    assert_401(&refused(&served, &format!("/tether?token={expired}"), ""), "token expired");
    // And without any auth configured, nothing is checked (the demos work with no arguments).
    let open = Served::start(&["--no-demos"]);
    opens(&open, "/tether", &[]);
    opens(&open, "/tether?token=whatever", &[]);
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tether-auth-test-{}-{name}", std::process::id()))
}

#[test]
fn es256_tokens_verify_with_an_ec_p256_public_key() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pem = temp_path("ec.pem");
    std::fs::write(&pem, pair.public_key_pem()).unwrap();
    let served = Served::start(&["--no-demos", "--token-public-key", pem.to_str().unwrap()]);
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &json!({"sub":"ec","exp":now() + 60}), &key).unwrap();
    opens(&served, &format!("/tether?token={token}"), &[]);
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other_key = EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap();
    let forged = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &json!({"sub":"ec"}), &other_key).unwrap();
    assert_401(&refused(&served, &format!("/tether?token={forged}"), ""), "bad token signature");
    // An HS256 token on a server with only a public key: no key for that algorithm.
    let hs = hs256(json!({"sub":"ec"}), SECRET);
    assert_401(&refused(&served, &format!("/tether?token={hs}"), ""), "token algorithm not accepted");
    let _ = std::fs::remove_file(pem);
}

/// Runs Python with pyjwt and cryptography: an RSA key pair, and RS256 tokens signed with it.
/// Prints the public key PEM, then one token per line.
const PYJWT_RS256: &str = r#"
import sys, time, jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import serialization
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
print(pem.decode().strip().replace("\n", "|"))
now = int(time.time())
print(jwt.encode({"sub": "py", "iat": now, "exp": now + 60, "info": {"from": "pyjwt"}}, key, algorithm="RS256"))
print(jwt.encode({"sub": "py", "exp": now - 5}, key, algorithm="RS256"))
print(jwt.encode({"sub": "py", "exp": now + 60}, other, algorithm="RS256"))
"#;

#[test]
fn rs256_tokens_minted_by_pyjwt_are_accepted_and_its_bad_ones_refused() {
    let output = Command::new("python3").args(["-c", PYJWT_RS256]).output().expect("python3 runs");
    assert!(
        output.status.success(),
        "python3 with pyjwt and cryptography (scripts/test.sh installs them): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let [pem, good, expired, forged] = lines[..] else { panic!("unexpected output: {text}") };
    let path = temp_path("rsa.pem");
    std::fs::write(&path, pem.replace('|', "\n") + "\n").unwrap();
    let served = Served::start(&["--no-demos", "--token-public-key", path.to_str().unwrap()]);
    opens(&served, &format!("/tether?token={good}"), &[]);
    opens(&served, "/tether", &[("Authorization", &format!("Bearer {good}"))]);
    assert_401(&refused(&served, &format!("/tether?token={expired}"), ""), "token expired");
    assert_401(&refused(&served, &format!("/tether?token={forged}"), ""), "bad token signature");
    let _ = std::fs::remove_file(path);
}

/// A test backend for the connect proxy on 127.0.0.1: `/accept` admits Ada, `/forbid` answers
/// 403 with a body, `/slow` answers after 5 s, `/fail` answers 500. It records what it was sent.
type Seen = Arc<Mutex<Vec<Value>>>;

fn record(seen: &Seen, body: &str) {
    seen.lock().unwrap().push(serde_json::from_str(body).unwrap());
}

struct Backend {
    addr: SocketAddr,
    seen: Seen,
    _runtime: tokio::runtime::Runtime,
}

impl Backend {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route(
                "/accept",
                post(|State(seen): State<Seen>, body: String| async move {
                    record(&seen, &body);
                    axum::Json(json!({"user":"ada","info":{"name":"Ada"},"channels":["news"]}))
                }),
            )
            .route(
                "/anonymous",
                post(|State(seen): State<Seen>, body: String| async move {
                    record(&seen, &body);
                    axum::Json(json!({}))
                }),
            )
            .route(
                "/forbid",
                post(|State(seen): State<Seen>, body: String| async move {
                    record(&seen, &body);
                    (StatusCode::FORBIDDEN, [("content-type", "text/plain")], "banned user\n").into_response()
                }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    axum::Json(json!({"user":"late"}))
                }),
            )
            .route("/fail", post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "down\n").into_response() }))
            .route(
                "/busy",
                post(|| async {
                    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "120")], "slow down\n").into_response()
                }),
            )
            .route(
                "/busy-bad-retry",
                post(|| async {
                    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "soon")], "slow down\n").into_response()
                }),
            )
            .route(
                "/forbid-long",
                post(|| async {
                    let body = format!(r#"{{"error":"{}é"}}"#, "x".repeat(1020));
                    (StatusCode::FORBIDDEN, [("content-type", "application/json")], body).into_response()
                }),
            )
            .route("/bad-user", post(|| async { axum::Json(json!({"user":"ad\u{0}a\n"})) }))
            .route("/long-user", post(|| async { axum::Json(json!({"user":"x".repeat(257)})) }))
            .with_state(Arc::clone(&seen));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, seen, _runtime: runtime }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

#[test]
fn the_connect_proxy_admits_with_what_the_backend_says_and_sees_the_request() {
    let backend = Backend::start();
    let served = Served::start(&["--no-demos", "--connect-proxy", &backend.url("/accept")]);
    opens(&served, "/tether?room=1&x=%20y", &[("X-Trace", "t-1"), ("Cookie", "session=abc")]);
    let seen = backend.seen.lock().unwrap()[0].clone();
    let id = seen["connectionId"].as_str().unwrap();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{seen}");
    assert!(seen["remoteAddr"].as_str().unwrap().starts_with("127.0.0.1:"), "{seen}");
    assert_eq!(seen["headers"]["x-trace"], "t-1", "{seen}");
    assert_eq!(seen["headers"]["cookie"], "session=abc", "{seen}");
    assert_eq!(seen["query"], "room=1&x=%20y", "{seen}");
    assert_eq!(seen["protocol"], "tether.json", "{seen}");
    // An answer without a user admits an anonymous client.
    let anonymous = Served::start(&["--no-demos", "--connect-proxy", &backend.url("/anonymous")]);
    opens(&anonymous, "/tether", &[]);
}

#[test]
fn a_4xx_from_the_connect_proxy_is_the_clients_answer() {
    let backend = Backend::start();
    let served = Served::start(&["--no-demos", "--connect-proxy", &backend.url("/forbid")]);
    let response = refused(&served, "/tether", "");
    assert_eq!(status_of(&response), "403", "{response}");
    assert!(response.ends_with("\r\n\r\nbanned user\n"), "{response}");
    assert!(response.contains("Content-Type: text/plain\r\n"), "{response}");
    assert!(!response.contains("Sec-WebSocket-Accept"), "{response}");
    assert_eq!(backend.requests(), 1);
}

#[test]
fn a_backends_retry_after_is_passed_on_when_valid() {
    let backend = Backend::start();
    let served = Served::start(&["--no-demos", "--connect-proxy", &backend.url("/busy")]);
    let response = refused(&served, "/tether", "");
    assert_eq!(status_of(&response), "429", "{response}");
    assert!(response.contains("\r\nRetry-After: 120\r\n"), "{response}");
    let bad = Served::start(&["--no-demos", "--connect-proxy", &backend.url("/busy-bad-retry")]);
    let response = refused(&bad, "/tether", "");
    assert_eq!(status_of(&response), "429", "{response}");
    assert!(!response.to_ascii_lowercase().contains("retry-after"), "{response}");
}

#[test]
fn a_refusal_body_over_1_kib_is_replaced_not_cut() {
    let backend = Backend::start();
    let served = Served::start(&["--no-demos", "--connect-proxy", &backend.url("/forbid-long")]);
    let response = refused(&served, "/tether", "");
    assert_eq!(status_of(&response), "403", "{response}");
    assert!(response.ends_with("\r\n\r\nrefused by the application\n"), "{response}");
    assert!(response.contains("Content-Type: text/plain; charset=utf-8\r\n"), "{response}");
    assert!(!response.contains("application/json"), "{response}");
}

#[test]
fn a_connect_proxy_user_with_control_characters_or_too_long_is_503() {
    let backend = Backend::start();
    for path in ["/bad-user", "/long-user"] {
        let served = Served::start(&["--no-demos", "--connect-proxy", &backend.url(path)]);
        let response = refused(&served, "/tether", "");
        assert_eq!(status_of(&response), "503", "{path}: {response}");
        assert!(!response.contains("ad\u{0}a"), "{response}");
    }
}

#[test]
fn a_slow_failing_or_absent_connect_proxy_is_503() {
    let backend = Backend::start();
    let slow = Served::start(&["--no-demos", "--connect-proxy", &backend.url("/slow"), "--proxy-timeout", "0.2"]);
    let started = Instant::now();
    let response = refused(&slow, "/tether", "");
    assert_eq!(status_of(&response), "503", "{response}");
    assert!(started.elapsed() < Duration::from_secs(3), "the proxy timeout, not the backend, decides");
    let failing = Served::start(&["--no-demos", "--connect-proxy", &backend.url("/fail")]);
    assert_eq!(status_of(&refused(&failing, "/tether", "")), "503");
    // Nothing listens on port 1.
    let absent = Served::start(&["--no-demos", "--connect-proxy", "http://127.0.0.1:1/connect"]);
    assert_eq!(status_of(&refused(&absent, "/tether", "")), "503");
}

#[test]
fn with_a_token_and_a_connect_proxy_the_token_is_checked_first() {
    let backend = Backend::start();
    let served = with_secret(&["--connect-proxy", &backend.url("/forbid")]);
    assert_401(&refused(&served, "/tether", ""), "token required");
    assert_eq!(backend.requests(), 0, "a client without a token never reaches the backend");
    let token = hs256(json!({"sub":"ada"}), SECRET);
    let response = refused(&served, &format!("/tether?token={token}"), "");
    assert_eq!(status_of(&response), "403", "a good token, then the backend's refusal: {response}");
    assert_eq!(backend.requests(), 1);
    let accepting = with_secret(&["--connect-proxy", &backend.url("/accept")]);
    opens(&accepting, &format!("/tether?token={token}"), &[]);
}

/// `GET path` on the server; the status and the body.
fn get(served: &Served, path: &str) -> (String, String) {
    let mut stream = served.connect();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let head = read_head(&mut stream);
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    (status_of(&head).to_owned(), body)
}

#[test]
fn demo_tokens_are_signed_for_a_nickname_and_let_that_client_in() {
    let served = Served::start(&["--demo-tokens"]);
    assert_eq!(get(&served, "/demo/config"), ("200".into(), r#"{"tokens":true}"#.into()));
    let (status, body) = get(&served, "/demo/token?user=nick_1");
    assert_eq!(status, "200", "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["user"], "nick_1");
    let expires_at = answer["expiresAt"].as_u64().unwrap();
    let in_30_s = (now() + 30) * 1000;
    assert!(expires_at.abs_diff(in_30_s) <= 2000, "{expires_at} vs {in_30_s}");
    opens(&served, &format!("/tether?token={}", answer["token"].as_str().unwrap()), &[]);
    assert_401(&refused(&served, "/tether", ""), "token required");
    for bad in
        ["/demo/token", "/demo/token?user=", "/demo/token?user=a%20b", &format!("/demo/token?user={}", "x".repeat(33))]
    {
        let (status, body) = get(&served, bad);
        assert_eq!(status, "400", "{bad}: {body}");
        assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string(), "{body}");
    }
    // A token signed by another process's random secret does not verify here.
    let other = Served::start(&["--demo-tokens"]);
    let (_, body) = get(&other, "/demo/token?user=nick");
    let foreign: Value = serde_json::from_str(&body).unwrap();
    assert_401(
        &refused(&served, &format!("/tether?token={}", foreign["token"].as_str().unwrap()), ""),
        "bad token signature",
    );
}

#[test]
fn without_demo_tokens_the_config_says_so_and_there_is_no_token_endpoint() {
    let served = Served::start(&[]);
    assert_eq!(get(&served, "/demo/config"), ("200".into(), r#"{"tokens":false}"#.into()));
    assert_eq!(get(&served, "/demo/token?user=nick").0, "404");
}

#[test]
fn demo_tokens_with_a_configured_secret_are_refused_at_startup() {
    // `/demo/token` signs for anyone: with the real secret, its tokens would be good on every
    // service sharing it.
    let (status, stderr) = serve_refusal(&["--token-hmac-secret", SECRET, "--demo-tokens"]);
    assert_eq!(status, Some(2), "{stderr}");
    assert_eq!(
        stderr,
        "tether: --demo-tokens: expected no --token-hmac-secret or --token-hmac-secret-file: demo tokens use a random per-process secret; they must not be signed with a real one\n"
    );
    assert!(!stderr.contains(SECRET));
}

#[test]
fn demo_tokens_let_clients_in_when_an_audience_and_issuer_are_required() {
    let served =
        Served::start(&["--demo-tokens", "--token-audience", "tether", "--token-issuer", "https://app.example"]);
    let (status, body) = get(&served, "/demo/token?user=nick");
    assert_eq!(status, "200", "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["token"].as_str().unwrap().to_owned();
    opens(&served, &format!("/tether?token={token}"), &[]);
}

#[test]
fn a_subscription_token_does_not_open_a_connection() {
    let served = with_secret(&[]);
    let subscription = hs256(json!({"sub":"ada","channel":"chat:x"}), SECRET);
    assert_401(
        &refused(&served, &format!("/tether?token={subscription}"), ""),
        "a subscription token is not a connection token",
    );
}

#[test]
fn a_token_sub_with_control_characters_or_too_long_is_401() {
    let served = with_secret(&[]);
    for sub in ["ad\u{0}a\n".to_owned(), "x".repeat(257)] {
        let token = hs256(json!({ "sub": sub }), SECRET);
        assert_401(
            &refused(&served, &format!("/tether?token={token}"), ""),
            "token sub must be 1..=256 characters, no control characters",
        );
    }
}

#[test]
fn the_example_files_placeholder_secrets_are_refused() {
    let config = temp_path("placeholder.toml");
    std::fs::write(&config, "api_key = \"change-me-api-key-0123456789\"\n").unwrap();
    let config_arg = config.to_str().unwrap();
    let (status, stderr) = serve_refusal(&["--config", config_arg]);
    assert_eq!(status, Some(2), "{stderr}");
    assert_eq!(
        stderr,
        format!("tether: {config_arg}: api_key = <28 bytes, hidden>: expected a secret of your own, not a placeholder starting with change-me\n")
    );
    let (status, stderr) = serve_refusal(&["--token-hmac-secret", "change-me-to-32-or-more-random-bytes!"]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("tether: --token-hmac-secret <37 bytes, hidden>: expected a secret of your own"),
        "{stderr}"
    );
    // The example has no live secret: as it is, it asks for one (its chat namespace needs users).
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tether.example.toml");
    let (status, stderr) = serve_refusal(&["--config", example]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.starts_with("tether: namespaces.chat.subscribe = \"authenticated\": expected a way"), "{stderr}");
    let _ = std::fs::remove_file(config);
}

#[test]
fn bad_auth_settings_stop_the_server_with_one_line_and_status_2() {
    let not_pem = temp_path("not.pem");
    std::fs::write(&not_pem, "not a key\n").unwrap();
    let not_pem_arg = not_pem.to_str().unwrap();
    let config = temp_path("ns.toml");
    std::fs::write(&config, "[namespaces.chat]\nhistory_size = 100001\n").unwrap();
    let config_arg = config.to_str().unwrap();
    let cases: &[(&[&str], String)] = &[
        (
            &["--token-hmac-secret", "hunter2"],
            "--token-hmac-secret <7 bytes, hidden>: expected a secret of 32..=4096 bytes (RFC 7518 §3.2: at least the hash's size)".into(),
        ),
        (
            &["--token-hmac-secret", SECRET, "--token-hmac-secret-file", "/tmp/x"],
            "--token-hmac-secret and token_hmac_secret_file: expected one of the two, not both".into(),
        ),
        (&["--proxy-timeout", "0"], "--proxy-timeout 0: expected decimal seconds 0.01..=60".into()),
        (&["--proxy-timeout", "abc"], "--proxy-timeout abc: expected decimal seconds 0.01..=60".into()),
        (
            &["--publish-proxy", "http://app/publish?key=s3cret"],
            "--publish-proxy http://app/publish?key=s3cret: expected an http://host[:port]/path URL, no credentials, no query (https is not supported: keep the backend on a private network)".into(),
        ),
        (
            &["--connect-proxy", "https://app/connect"],
            "--connect-proxy https://app/connect: expected an http://host[:port]/path URL, no credentials, no query (https is not supported: keep the backend on a private network)".into(),
        ),
        (&["--token-public-key", "/nonexistent.pem"], "--token-public-key /nonexistent.pem: cannot read: No such file or directory (os error 2)".into()),
        (
            &["--token-public-key", not_pem_arg],
            format!("--token-public-key {not_pem_arg}: expected a PEM public key of RSA or EC P-256 (not a PEM public key of RSA or EC P-256)"),
        ),
        (&["--internal-port", "9001"], "--internal-port 9001: expected an API key (--api-key or --api-key-file), --metrics or an admin password (--admin-password or --admin-password-file) too: it serves nothing without one".into()),
        (&["--config", config_arg], format!("{config_arg}: namespaces.chat.history_size = 100001: expected a whole number 0..=100000 (0 = no history)")),
    ];
    for (args, message) in cases {
        let (status, stderr) = serve_refusal(args);
        assert_eq!(status, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr, format!("tether: {message}\n"), "{args:?}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    let _ = std::fs::remove_file(not_pem);
    let _ = std::fs::remove_file(config);
}

#[test]
fn neither_the_secret_nor_a_token_reaches_the_log() {
    use std::io::BufRead;
    let log_path = temp_path("debug.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let backend = Backend::start();
    let mut child =
        serve_command(&["--no-demos", "--token-hmac-secret", SECRET, "--connect-proxy", &backend.url("/fail")])
            .env("TETHER_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let served = Served { child, addr: line.trim().rsplit_once("://").unwrap().1.to_owned() };
    let good = hs256(json!({"sub":"ada"}), SECRET);
    let expired = hs256(json!({"sub":"ada","exp":now() - 10}), SECRET);
    assert_eq!(status_of(&refused(&served, &format!("/tether?token={good}"), "")), "503");
    assert_401(&refused(&served, "/tether", &format!("Authorization: Bearer {expired}\r\n")), "token expired");
    drop(served);
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.contains("connect proxy"), "the log is on: {logged}");
    for secret in [SECRET, &good, &expired] {
        assert!(!logged.contains(secret), "{secret} in the log: {logged}");
    }
    // A token's signature alone is a secret too.
    assert!(!logged.contains(good.rsplit('.').next().unwrap()), "{logged}");
    let _ = std::fs::remove_file(log_path);
}
