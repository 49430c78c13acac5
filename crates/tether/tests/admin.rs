//! The admin dashboard (docs/admin.md) end to end: the real `tether serve --admin-password` on an
//! ephemeral port, driven over raw HTTP/1.1 and WebSockets: the login (a wrong password refused
//! and slowed, then the address locked out; a trusted device still signs in; a 4 KiB body limit),
//! the cookies' attributes (`Secure` over TLS or with `--admin-secure-cookie`, which also wants an
//! `https` Origin), the `Host` check against DNS rebinding, the security headers on axum's own
//! 405, the session and CSRF checks of `/admin/api/*` and `/admin/ws`, paging and search over real
//! connections, Disconnect, a publish whose escapes double its body, and the internal port.

mod common;

use std::time::{Duration, Instant};

use common::{http_request, read_head, serve_refusal, status_of, upgrade, HttpAnswer, Served};
use serde_json::{json, Value};
use tether_tokio::{ClientBuilder, Message, Transport, WebSocket};

const PASSWORD: &str = "s3cret-admin-pw";

fn start(extra: &[&str]) -> Served {
    let mut args = vec!["--admin-password", PASSWORD];
    args.extend_from_slice(extra);
    Served::start(&args)
}

fn login(addr: &str, password: &str, extra: &[(&str, &str)]) -> HttpAnswer {
    let body = format!("password={}", url_encode(password));
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    headers.extend_from_slice(extra);
    http_request(addr, "POST", "/admin/login", &headers, body.as_bytes())
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A signed-in dashboard: its cookie (`tether_admin=...`) and CSRF token.
struct Session {
    addr: String,
    cookie: String,
    csrf: String,
}

impl Session {
    fn sign_in(addr: &str) -> Self {
        let answer = login(addr, PASSWORD, &[]);
        assert_eq!(answer.status, 303, "{answer:?}");
        let set_cookie = answer.header("set-cookie").expect("a cookie");
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let page = http_request(addr, "GET", "/admin", &[("Cookie", &cookie)], b"");
        let csrf =
            page.body.split("name=\"csrf-token\" content=\"").nth(1).expect("the dashboard's token")[..64].to_owned();
        Self { addr: addr.to_owned(), cookie, csrf }
    }

    fn call_with(&self, call: &str, headers: &[(&str, &str)], body: &Value) -> HttpAnswer {
        let mut all = vec![("Cookie", self.cookie.as_str()), ("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        http_request(&self.addr, "POST", &format!("/admin/api/{call}"), &all, body.to_string().as_bytes())
    }

    fn call(&self, call: &str, body: Value) -> HttpAnswer {
        self.call_with(call, &[("X-CSRF-Token", &self.csrf)], &body)
    }

    /// The answer of a call that must succeed.
    fn ok(&self, call: &str, body: Value) -> Value {
        let answer = self.call(call, body.clone());
        assert_eq!(answer.status, 200, "{call} {body} -> {answer:?}");
        answer.json()
    }
}

#[test]
fn without_a_password_every_admin_path_is_the_plain_404() {
    let served = Served::start(&[]);
    for path in ["/admin", "/admin/", "/admin/admin.js", "/admin/api/connections"] {
        assert_eq!(http_request(&served.addr, "GET", path, &[], b"").status, 404, "{path}");
    }
    assert_eq!(status_of(&served.raw_head(upgrade("/admin/ws", "Sec-WebSocket-Version: 13\r\n").as_bytes())), "404");
}

#[test]
fn bad_passwords_are_refused_at_startup_naming_the_setting() {
    let (status, stderr) = serve_refusal(&["--admin-password", "short"]);
    assert_eq!(status, Some(2));
    assert_eq!(
        stderr.trim(),
        "tether: --admin-password <5 bytes, hidden>: expected a password of 8..=1024 bytes, no control characters"
    );
    let (status, stderr) = serve_refusal(&["--admin-password-file", "/nonexistent/pw"]);
    assert_eq!(status, Some(2));
    assert!(stderr.starts_with("tether: --admin-password-file /nonexistent/pw: cannot read"), "{stderr}");
}

#[test]
fn a_wrong_password_is_refused_slowly_and_parallel_guesses_lock_the_address_out() {
    let served = start(&[]);
    let page = http_request(&served.addr, "GET", "/admin", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("name=\"password\"") && !page.body.contains("csrf-token"), "the login form");
    let started = Instant::now();
    let wrong = login(&served.addr, "not-the-password", &[]);
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(started.elapsed() >= Duration::from_millis(950), "answered after {:?}", started.elapsed());
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.body.contains("Wrong password."), "{}", wrong.body);
    // Three more at once: each counts from the moment it starts, so the fourth wrong one locks
    // the address out (2 s) even though none had its answer yet.
    let addr = served.addr.clone();
    let guesses: Vec<_> = (0..3)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || login(&addr, &format!("guess-{i}-wrong"), &[]).status)
        })
        .collect();
    let statuses: Vec<u16> = guesses.into_iter().map(|guess| guess.join().unwrap()).collect();
    assert_eq!(statuses, [401, 401, 401]);
    let locked = login(&served.addr, PASSWORD, &[]);
    assert_eq!(locked.status, 429, "even the right password waits: {locked:?}");
    assert!(locked.header("retry-after").is_some_and(|secs| secs.parse::<u64>().is_ok_and(|s| (1..=2).contains(&s))));
    assert!(locked.header("set-cookie").is_none());
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(login(&served.addr, PASSWORD, &[]).status, 303, "the lock ran out");
}

#[test]
fn the_session_cookie_is_http_only_strict_and_scoped_to_admin() {
    let served = start(&[]);
    let answer = login(&served.addr, PASSWORD, &[("Origin", &format!("http://{}", served.addr))]);
    assert_eq!(answer.status, 303, "{answer:?}");
    assert_eq!(answer.header("location"), Some("/admin"));
    let cookie = answer.header("set-cookie").unwrap();
    let attributes: Vec<&str> = cookie.split("; ").collect();
    assert!(
        attributes[0].starts_with("tether_admin=") && attributes[0].len() == "tether_admin=".len() + 64,
        "{cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=43200"] {
        assert!(attributes.contains(&attribute), "{attribute} in {cookie}");
    }
    assert!(!attributes.contains(&"Secure"), "plain HTTP: {cookie}");
    // The dashboard's answers forbid framing and inline script.
    let session = Session::sign_in(&served.addr);
    let page = http_request(&served.addr, "GET", "/admin", &[("Cookie", &session.cookie)], b"");
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline")
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(page.body.contains("src=\"/admin/admin.js\"") && !page.body.contains("<script>"));
    // A login posted by another site's page is refused, right password or not.
    let cross = login(&served.addr, PASSWORD, &[("Origin", "http://evil.example")]);
    assert_eq!(cross.status, 403);
    assert!(cross.header("set-cookie").is_none());
}

#[test]
fn the_api_needs_a_live_session_and_its_csrf_token() {
    let served = start(&[]);
    let session = Session::sign_in(&served.addr);
    let body = json!({});
    let no_session =
        http_request(&served.addr, "POST", "/admin/api/connections", &[("X-CSRF-Token", &session.csrf)], b"{}");
    assert_eq!(no_session.status, 401);
    let forged = http_request(
        &served.addr,
        "POST",
        "/admin/api/connections",
        &[("Cookie", "tether_admin=0000000000000000000000000000000000000000000000000000000000000000")],
        b"{}",
    );
    assert_eq!(forged.status, 401);
    assert_eq!(session.call_with("connections", &[], &body).status, 403, "no token");
    let wrong = "0".repeat(64);
    assert_eq!(session.call_with("connections", &[("X-CSRF-Token", &wrong)], &body).status, 403);
    let cross =
        session.call_with("connections", &[("X-CSRF-Token", &session.csrf), ("Origin", "http://evil.example")], &body);
    assert_eq!(cross.status, 403, "another origin, even with the token");
    let same = format!("http://{}", served.addr);
    let ok = session.call_with("connections", &[("X-CSRF-Token", &session.csrf), ("Origin", &same)], &body);
    assert_eq!(ok.status, 200, "{ok:?}");
    let get = http_request(&served.addr, "GET", "/admin/api/connections", &[("Cookie", &session.cookie)], b"");
    assert_eq!(get.status, 405);
    assert_eq!(session.call("nothing", json!({})).status, 404);
    assert_eq!(session.call("connections", json!({"page": "one"})).status, 400);
    // The disconnect, publish and logout calls are CSRF-checked the same way.
    for call in ["disconnect", "publish", "logout"] {
        assert_eq!(session.call_with(call, &[], &body).status, 403, "{call}");
    }
    let out = session.call("logout", json!({}));
    assert_eq!(out.status, 200);
    assert!(out.header("set-cookie").is_some_and(|cookie| cookie.contains("Max-Age=0")));
    assert_eq!(session.call("connections", json!({})).status, 401, "signed out");
    let page = http_request(&served.addr, "GET", "/admin", &[("Cookie", &session.cookie)], b"");
    assert!(page.body.contains("name=\"password\""), "the login form again");
}

async fn admin_socket(addr: &str, session: &Session) -> WebSocket<Transport> {
    let (ws, _) = ClientBuilder::new(&format!("ws://{addr}/admin/ws"))
        .header("Cookie", &session.cookie)
        .origin(&format!("http://{addr}"))
        .connect()
        .await
        .expect("the dashboard's socket opens");
    ws
}

async fn read_json(ws: &mut WebSocket<Transport>) -> Value {
    match tokio::time::timeout(Duration::from_secs(10), ws.recv()).await.expect("a frame in time") {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

#[tokio::test]
async fn the_live_socket_needs_the_session_and_the_dashboards_origin_and_pushes_samples() {
    let served = start(&[]);
    let session = Session::sign_in(&served.addr);
    let version = "Sec-WebSocket-Version: 13\r\n";
    // (`upgrade` sends `Host: localhost`.)
    let origin = "Origin: http://localhost\r\n";
    let cookie = format!("Cookie: {}\r\n", session.cookie);
    let refused = |extra: String| status_of(&served.raw_head(upgrade("/admin/ws", &extra).as_bytes())).to_owned();
    assert_eq!(refused(format!("{version}{origin}")), "401", "no session");
    assert_eq!(refused(format!("{version}{cookie}")), "403", "no Origin");
    assert_eq!(refused(format!("{version}{cookie}Origin: http://evil.example\r\n")), "403");
    let mut ws = admin_socket(&served.addr, &session).await;
    let history = read_json(&mut ws).await;
    assert_eq!(history["type"], "history");
    assert!(history["samples"].as_array().is_some_and(|samples| samples.len() <= 300));
    // A client connects; within a few samples the count says so (the socket itself is not counted).
    let (mut client, _) = ClientBuilder::new(&format!("ws://{}/echo", served.addr)).connect().await.unwrap();
    client.send(&Message::Text("hi".into())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let sample = loop {
        let message = read_json(&mut ws).await;
        assert_eq!(message["type"], "sample");
        let sample = message["sample"].clone();
        if sample["connections"] == 1 || Instant::now() > deadline {
            break sample;
        }
    };
    assert_eq!(sample["connections"], 1, "{sample}");
    for field in [
        "t",
        "uptime_secs",
        "users",
        "channels",
        "messages_in_per_sec",
        "messages_out_per_sec",
        "bytes_in_per_sec",
        "bytes_out_per_sec",
        "slow_consumer_closes",
    ] {
        assert!(sample[field].is_number(), "{field} in {sample}");
    }
    // Signing out closes the socket with 4001.
    assert_eq!(session.call("logout", json!({})).status, 200);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.recv().await {}
        ws.closed().map(|closed| closed.code.0)
    })
    .await
    .expect("closed in time");
    assert_eq!(closed, Some(4001));
    drop(client);
}

/// A token-protocol client's connection id (from its welcome).
async fn token_client(addr: &str) -> (WebSocket<Transport>, String) {
    let (mut ws, _) =
        ClientBuilder::new(&format!("ws://{addr}/tether")).protocol("tether.json").connect().await.unwrap();
    let welcome = read_json(&mut ws).await;
    let id = welcome["connectionId"].as_str().unwrap().to_owned();
    (ws, id)
}

#[tokio::test]
async fn tables_are_searched_and_paged_on_the_server_and_disconnect_closes_with_4000() {
    let served = start(&[]);
    let session = Session::sign_in(&served.addr);
    let mut clients = Vec::new();
    for _ in 0..120 {
        clients.push(token_client(&served.addr).await);
    }
    let first = session.ok("connections", json!({}));
    assert_eq!(
        (first["total"].as_u64(), first["page"].as_u64(), first["pages"].as_u64()),
        (Some(120), Some(1), Some(3))
    );
    assert_eq!(first["rows"].as_array().unwrap().len(), 50);
    let row = &first["rows"][0];
    for field in ["id", "route", "protocol", "remote", "connected_at", "messages_in", "messages_out", "queued_bytes"] {
        assert!(!row[field].is_null(), "{field} in {row}");
    }
    assert_eq!(row["route"], "/tether");
    assert_eq!(row["protocol"], "tether.json");
    assert!(row["messages_out"].as_u64() >= Some(1), "the welcome: {row}");
    let last = session.ok("connections", json!({"page": 3}));
    assert_eq!(last["rows"].as_array().unwrap().len(), 20);
    let beyond = session.ok("connections", json!({"page": 99}));
    assert_eq!(beyond["page"], 3);
    // Oldest first, and no row twice over the pages.
    let mut ids: Vec<String> = Vec::new();
    for page in 1..=3 {
        let answer = session.ok("connections", json!({"page": page}));
        ids.extend(answer["rows"].as_array().unwrap().iter().map(|row| row["id"].as_str().unwrap().to_owned()));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 120);
    // Search by id finds that one connection.
    let (mut target, target_id) = clients.remove(37);
    let found = session.ok("connections", json!({"search": target_id}));
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["rows"][0]["id"], target_id.as_str());
    let none = session.ok("connections", json!({"search": "no-such-connection"}));
    assert_eq!((none["total"].as_u64(), none["rows"].as_array().map(Vec::len)), (Some(0), Some(0)));
    assert_eq!(session.call("connections", json!({"search": "x".repeat(257)})).status, 400);
    // Disconnect: the client gets 4000 "disconnected by admin".
    let answer = session.ok("disconnect", json!({"id": target_id}));
    assert_eq!(answer["code"], 4000);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = target.recv().await {}
        target.closed().map(|closed| (closed.code.0, closed.reason.clone()))
    })
    .await
    .expect("closed in time");
    assert_eq!(closed, Some((4000, "disconnected by admin".to_owned())));
    assert_eq!(session.call("disconnect", json!({"id": target_id})).status, 404, "gone");
    assert_eq!(session.call("disconnect", json!({"id": "nope"})).status, 404);
    // Channels: a subscriber, publishes from the Publish box (JSON and text), the history peek.
    let (ws, _) = &mut clients[0];
    ws.send(&Message::Text(json!({"type": "subscribe", "channel": "news", "id": 1}).to_string().into())).await.unwrap();
    let ack = read_json(ws).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    for i in 0..12 {
        session.ok("publish", json!({"channel": "news", "data": format!("{{\"n\":{i}}}")}));
    }
    let published = session.ok("publish", json!({"channel": "news", "data": "plain words", "text": true}));
    assert_eq!(published["offset"], 13);
    let pushed = loop {
        let message = read_json(ws).await;
        if message["type"] == "message" && message["data"] == "plain words" {
            break message;
        }
    };
    assert_eq!(pushed["channel"], "news");
    assert_eq!(session.call("publish", json!({"channel": "news", "data": "plain words"})).status, 400, "not JSON");
    session.ok("publish", json!({"channel": "other", "data": "1"}));
    let channels = session.ok("channels", json!({"search": "NEW"}));
    assert_eq!(channels["total"], 1, "{channels}");
    let news = &channels["rows"][0];
    assert_eq!(
        (news["name"].as_str(), news["subscribers"].as_u64(), news["last_offset"].as_u64()),
        (Some("news"), Some(1), Some(13))
    );
    assert_eq!(news["history_size"], 13);
    let peek = session.ok("history", json!({"channel": "news"}));
    let offsets: Vec<u64> =
        peek["entries"].as_array().unwrap().iter().map(|entry| entry["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, (4..=13).rev().collect::<Vec<_>>(), "the newest 10, newest first");
    assert_eq!(peek["entries"][0]["data"], "\"plain words\"");
    assert_eq!(session.ok("channels", json!({}))["total"], 2);
}

#[tokio::test]
async fn with_an_internal_port_the_dashboard_is_served_there_only() {
    let (served, lines) = Served::start_reading(&["--admin-password", PASSWORD, "--internal-port", "0"], 2);
    let internal = lines[1].strip_prefix("admin dashboard on http://").and_then(|rest| rest.strip_suffix("/admin"));
    let internal = internal.unwrap_or_else(|| panic!("{lines:?}")).to_owned();
    assert_eq!(http_request(&served.addr, "GET", "/admin", &[], b"").status, 404, "not on the main port");
    assert_eq!(http_request(&internal, "GET", "/admin", &[], b"").status, 200);
    let session = Session::sign_in(&internal);
    let (_client, id) = token_client(&served.addr).await;
    let found = session.ok("connections", json!({"search": id}));
    assert_eq!(found["total"], 1, "the main port's connections: {found}");
    let mut ws = admin_socket(&internal, &session).await;
    assert_eq!(read_json(&mut ws).await["type"], "history");
    let mut stream = std::net::TcpStream::connect(&served.addr).unwrap();
    std::io::Write::write_all(
        &mut stream,
        upgrade("/admin/ws", &format!("Sec-WebSocket-Version: 13\r\nCookie: {}\r\n", session.cookie)).as_bytes(),
    )
    .unwrap();
    assert_eq!(status_of(&read_head(&mut stream)), "404", "no socket on the main port");
}

#[test]
fn over_tls_the_cookie_is_secure_but_not_on_the_plain_internal_port() {
    use std::io::{Read as _, Write as _};
    use std::sync::Arc;

    let (certified, cert, key) = common::self_signed_cert("admin-tls");
    let tls_args = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let served = start(&tls_args);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut https = rustls::StreamOwned::new(conn, served.connect());
    let body = format!("password={PASSWORD}");
    let request = format!(
        "POST /admin/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    https.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = https.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    let cookie = response.lines().find(|line| line.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
    assert!(cookie.trim_end().ends_with("; Secure"), "{cookie}");
    drop(served);

    let mut args = tls_args.to_vec();
    args.extend(["--internal-port", "0"]);
    let (_served, lines) = Served::start_reading(&[&["--admin-password", PASSWORD][..], &args].concat(), 2);
    let internal = lines[1].trim_start_matches("admin dashboard on http://").trim_end_matches("/admin");
    let answer = login(internal, PASSWORD, &[]);
    assert_eq!(answer.status, 303);
    assert!(!answer.header("set-cookie").unwrap().contains("Secure"), "plain HTTP: the browser would drop it");
    std::fs::remove_dir_all(cert.parent().unwrap()).unwrap();
}

/// The `Set-Cookie` line of the cookie `name` in an answer (an answer may set two).
fn set_cookie_named<'a>(answer: &'a HttpAnswer, name: &str) -> Option<&'a str> {
    answer.head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        (key.eq_ignore_ascii_case("set-cookie") && value.starts_with(&format!("{name}="))).then_some(value)
    })
}

#[test]
fn a_trusted_device_signs_in_while_its_address_is_locked_out() {
    let served = start(&[]);
    let first = login(&served.addr, PASSWORD, &[]);
    assert_eq!(first.status, 303);
    let device = set_cookie_named(&first, "tether_admin_device").expect("a device cookie");
    let attributes: Vec<&str> = device.split("; ").collect();
    assert_eq!(attributes[0].len(), "tether_admin_device=".len() + 64, "{device}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=2592000"] {
        assert!(attributes.contains(&attribute), "{attribute} in {device}");
    }
    let device = attributes[0].to_owned();
    // Someone sharing the address locks it out...
    for i in 0..4 {
        assert_eq!(login(&served.addr, &format!("wrong-{i}-guess"), &[]).status, 401);
    }
    assert_eq!(login(&served.addr, PASSWORD, &[]).status, 429, "locked without the device cookie");
    // A forged device cookie is no exemption.
    let forged = format!("tether_admin_device={}", "0".repeat(64));
    assert_eq!(login(&served.addr, PASSWORD, &[("Cookie", &forged)]).status, 429);
    // ...but the trusted browser still gets in (a wrong password from it still waits its second).
    let started = Instant::now();
    assert_eq!(login(&served.addr, "a-typo-here", &[("Cookie", &device)]).status, 401, "checked, not locked");
    assert!(started.elapsed() >= Duration::from_millis(950));
    let again = login(&served.addr, PASSWORD, &[("Cookie", &device)]);
    assert_eq!(again.status, 303, "{again:?}");
    assert!(set_cookie_named(&again, "tether_admin").is_some());
    assert!(set_cookie_named(&again, "tether_admin_device").is_none(), "still trusted: no new device");
}

#[test]
fn the_login_reads_at_most_4_kib() {
    let served = start(&[]);
    let body = format!("password={}", "p".repeat(64 * 1024));
    let answer = http_request(
        &served.addr,
        "POST",
        "/admin/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.header("x-frame-options"), Some("DENY"));
}

#[test]
fn axums_own_answers_carry_the_security_headers() {
    let served = start(&[]);
    let answer = http_request(&served.addr, "GET", "/admin/login", &[], b"");
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{answer:?}");
    assert!(answer.header("content-security-policy").is_some_and(|csp| csp.contains("frame-ancestors 'none'")));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
}

fn raw_get(served: &Served, path: &str, host: &str) -> String {
    served.raw_head(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
}

#[test]
fn only_ip_addresses_localhost_and_admin_hosts_are_answered_against_dns_rebinding() {
    let served = start(&["--admin-host", "admin.example"]);
    let port = served.addr.rsplit_once(':').unwrap().1;
    for host in [served.addr.clone(), format!("localhost:{port}"), format!("Admin.Example:{port}")] {
        assert_eq!(status_of(&raw_get(&served, "/admin", &host)), "200", "{host}");
    }
    // evil.example rebound to this server's address: its page would pass the origin check.
    let rebound = format!("evil.example:{port}");
    let head = raw_get(&served, "/admin", &rebound);
    assert_eq!(status_of(&head), "421", "{head}");
    assert!(head.to_ascii_lowercase().contains("x-frame-options: deny"), "{head}");
    let login = served.raw_head(
        format!(
            "POST /admin/login HTTP/1.1\r\nHost: {rebound}\r\nOrigin: http://{rebound}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\npassword={PASSWORD}",
            PASSWORD.len() + 9
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&login), "421", "{login}");
    let session = Session::sign_in(&served.addr);
    let socket = served.raw_head(
        upgrade(
            "/admin/ws",
            &format!("Sec-WebSocket-Version: 13\r\nCookie: {}\r\nOrigin: http://{rebound}\r\n", session.cookie),
        )
        .replace("Host: localhost", &format!("Host: {rebound}"))
        .as_bytes(),
    );
    assert_eq!(status_of(&socket), "403", "{socket}");
    let (status, stderr) = serve_refusal(&["--admin-password", PASSWORD, "--admin-host", "https://admin.example"]);
    assert_eq!(status, Some(2));
    assert!(stderr.contains("--admin-host https://admin.example: expected a host name"), "{stderr}");
}

#[tokio::test]
async fn with_admin_secure_cookie_the_cookies_are_secure_and_only_an_https_origin_passes() {
    let served = start(&["--admin-secure-cookie"]);
    let plain = login(&served.addr, PASSWORD, &[("Origin", &format!("http://{}", served.addr))]);
    assert_eq!(plain.status, 403, "a plain-http page is not the dashboard behind a TLS proxy");
    let answer = login(&served.addr, PASSWORD, &[("Origin", &format!("https://{}", served.addr))]);
    assert_eq!(answer.status, 303, "{answer:?}");
    assert!(set_cookie_named(&answer, "tether_admin").unwrap().ends_with("; Secure"));
    assert!(set_cookie_named(&answer, "tether_admin_device").unwrap().ends_with("; Secure"));
    let session = Session::sign_in(&served.addr);
    let http = session.call_with(
        "connections",
        &[("X-CSRF-Token", &session.csrf), ("Origin", &format!("http://{}", served.addr))],
        &json!({}),
    );
    assert_eq!(http.status, 403);
    let https = session.call_with(
        "connections",
        &[("X-CSRF-Token", &session.csrf), ("Origin", &format!("https://{}", served.addr))],
        &json!({}),
    );
    assert_eq!(https.status, 200, "{https:?}");
    let refused = ClientBuilder::new(&format!("ws://{}/admin/ws", served.addr))
        .header("Cookie", &session.cookie)
        .origin(&format!("http://{}", served.addr))
        .connect()
        .await;
    assert!(refused.is_err(), "the socket wants an https origin too");
    let (_ws, _) = ClientBuilder::new(&format!("ws://{}/admin/ws", served.addr))
        .header("Cookie", &session.cookie)
        .origin(&format!("https://{}", served.addr))
        .connect()
        .await
        .expect("an https origin opens it");
}

#[test]
fn a_json_publish_may_take_twice_its_data_in_escapes_and_the_hubs_limit_reaches_the_page() {
    let served = start(&["--max-data-bytes", "1048576"]);
    let session = Session::sign_in(&served.addr);
    // `["","",...]`: two of every three bytes are quotes, each escaped as `\"` in the body.
    let data = |bytes: usize| {
        let mut data = String::from("[");
        while data.len() + 4 <= bytes {
            data.push_str("\"\",");
        }
        data.push_str("\"\"]");
        while data.len() < bytes {
            data.insert(1, ' ');
        }
        data
    };
    let fits = data(1_048_576);
    assert_eq!(fits.len(), 1_048_576);
    let body = json!({"channel": "news", "data": fits});
    assert!(body.to_string().len() > 1_048_576 + 64 * 1024, "more than the old limit");
    assert_eq!(session.ok("publish", body)["offset"], 1);
    let over = session.call("publish", json!({"channel": "news", "data": data(1_048_577)}));
    assert_eq!(over.status, 413, "{over:?}");
    // The hub's refusal (the body itself was within the dashboard's limit).
    assert_eq!(over.json()["error"], "larger than the limit of 1048576 bytes");
}
