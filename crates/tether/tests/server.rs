//! The server's features end to end, against the real binary on an ephemeral port: the demo,
//! sub-protocols, settings reaching the server (Origin allowlist, route limits, queue limit, idle
//! timeout),
//! TLS, plain HTTP beside WebSocket, health probes, logs and graceful shutdown on SIGTERM.
//!
//! The runtime's behaviours themselves are tested in tether-tokio's tests on tokio's paused
//! clock: idle_timeout.rs, close_timeout.rs, slow_consumer.rs, drain.rs, origin.rs,
//! head_limits.rs, head_timeout.rs, limits.rs and at_capacity.rs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{read_head, status_of, upgrade, Client, Served};
use tether_proto::handshake::client::ClientRequest;
use tether_proto::{Event, Message};

fn offering(protocols: &[&str]) -> ClientRequest {
    ClientRequest { protocols: protocols.iter().map(|p| p.to_string()).collect(), ..ClientRequest::default() }
}

fn expect_close(client: &mut Client<impl Read + Write>) -> (u16, String) {
    loop {
        match client.next_event() {
            Ok(Event::Close(Some(frame))) => return (frame.code.0, frame.reason),
            Ok(Event::Close(None)) => return (1005, String::new()),
            Ok(_) => {}
            Err(error) => panic!("expected a Close frame, got {error}"),
        }
    }
}

#[test]
fn the_demo_chooses_a_sub_protocol_welcomes_and_answers_1_2_3() {
    let served = Served::start(&[]);
    let mut client = served.open("/", offering(&["soap", "json"]));
    assert_eq!(client.accepted.protocol.as_deref(), Some("json"), "the server prefers json");
    let welcome = client.next_json();
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["subProtocol"], "json");
    // The same `server` field as the token protocol's welcome: "tether/VERSION".
    assert_eq!(welcome["server"], format!("tether/{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(welcome["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(welcome["connectionId"].as_str().unwrap().len(), 16);

    client.send_text("1");
    assert_eq!(client.next_json()["answer"], format!("tether {}", env!("CARGO_PKG_VERSION")));
    client.send_text("2");
    let os = client.next_json()["answer"].as_str().unwrap().to_owned();
    assert!(os.starts_with("Linux "), "{os}");
    client.send_text("3");
    let time = client.next_json()["answer"].as_str().unwrap().to_owned();
    assert!(time.len() == 8 && time.as_bytes()[2] == b':' && time.as_bytes()[5] == b':', "{time}");
    client.send_text("what?");
    let error = client.next_json();
    assert_eq!(error["type"], "error");
    assert!(error["message"].as_str().unwrap().contains("send 1"));
    client.conn.send_binary(&[1, 2, 3]).unwrap();
    client.flush();
    assert_eq!(client.next_json()["answer"], "received 3 bytes");
    client.send_text("1");
    assert_eq!(client.next_json()["type"], "answer", "the connection stays open after an error");
}

#[test]
fn soap_clients_get_soap_and_unknown_protocols_get_none() {
    let served = Served::start(&[]);
    let mut soap = served.open("/", offering(&["soap"]));
    assert_eq!(soap.accepted.protocol.as_deref(), Some("soap"));
    let Message::Text(welcome) = soap.next_message() else { panic!() };
    assert!(welcome.contains("<soap:Envelope") && welcome.contains("<subProtocol>soap</subProtocol>"), "{welcome}");

    let none = served.open("/", offering(&["mqtt"]));
    assert_eq!(none.accepted.protocol, None, "no common protocol: accepted without one");
}

/// The `--allowed-origin` setting reaches the server's Origin policy. (The policy itself, default
/// and allowlist, on both APIs: tether-tokio's tests/origin.rs.)
#[test]
fn allowed_origin_lets_that_origin_in_and_no_other() {
    let allowing = Served::start(&["--allowed-origin", "http://app.example"]);
    let allowed = upgrade("/echo", "Sec-WebSocket-Version: 13\r\nOrigin: http://app.example\r\n");
    assert_eq!(status_of(&allowing.raw_head(allowed.as_bytes())), "101");
    let other = upgrade("/echo", "Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n");
    assert_eq!(status_of(&allowing.raw(other.as_bytes())), "403");
}

#[test]
fn plain_http_is_served_on_the_same_port_and_can_upgrade_later() {
    let served = Served::start(&[]);
    let mut stream = served.connect();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let head = read_head(&mut stream);
    assert_eq!(status_of(&head), "200", "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap()))
        .expect("content-length");
    let mut page = vec![0; length];
    stream.read_exact(&mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains(r#"id="question""#) && page.contains(r#"id="response""#));

    // The same kept-alive connection now upgrades.
    let mut client = Client::open(stream, &served.addr, "/echo", ClientRequest::default()).unwrap();
    client.send_text("over hyper");
    assert_eq!(client.next_message(), Message::Text("over hyper".into()));

    assert!(served.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ends_with("ok\n"));
    assert_eq!(status_of(&served.raw(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")), "404");
}

#[test]
fn wss_with_an_rcgen_certificate() {
    let (certified, cert_path, key_path) = common::self_signed_cert("tls");
    let served = Served::start(&["--tls-cert", cert_path.to_str().unwrap(), "--tls-key", key_path.to_str().unwrap()]);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = |served: &Served| {
        let name = "localhost".try_into().unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config.clone()), name).unwrap();
        rustls::StreamOwned::new(conn, served.connect())
    };
    let mut client = Client::open(tls(&served), &served.addr, "/", offering(&["json"])).unwrap();
    assert_eq!(client.next_json()["type"], "welcome");
    client.send_text("1");
    assert_eq!(client.next_json()["type"], "answer");

    let mut https = tls(&served);
    https.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = https.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("ok\n"), "{response}");
    std::fs::remove_dir_all(cert_path.parent().unwrap()).unwrap();
}

/// The one runtime behaviour kept end to end here: it shows `--max-queue-bytes` and
/// `--close-timeout` reach the server, in a fraction of a second. (Both sides of it, on the paused
/// clock: tether-tokio's tests/slow_consumer.rs.)
#[test]
fn a_slow_consumer_is_closed_with_1008_while_others_keep_their_echoes() {
    let served = Served::start(&["--max-queue-bytes", "65536", "--close-timeout", "30"]);
    // A small receive buffer: with an autotuned one the kernel may hold all the echoes, and the
    // server would never have to queue them.
    // Send ~8 MiB without reading a byte: the echoes pile up on the server.
    let mut slow = served.open_slow_consumer();
    let mut other = served.open("/echo", ClientRequest::default());
    other.send_text("fine");
    assert_eq!(other.next_message(), Message::Text("fine".into()));
    let (code, reason) = expect_close(&mut slow);
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("slow consumer"), "{reason}");
}

/// `--idle-timeout` reaches the server (the timer itself: tether-tokio's tests/idle_timeout.rs).
#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let served = Served::start(&["--idle-timeout", "1"]);
    let mut client = served.open("/echo", ClientRequest::default());
    let started = Instant::now();
    let (code, reason) = expect_close(&mut client);
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"));
    assert!(started.elapsed() >= Duration::from_millis(900) && started.elapsed() < Duration::from_secs(5));
}

#[test]
fn sigterm_closes_every_connection_with_1001_and_exits_0() {
    let mut served = Served::start(&[]);
    let mut echo = served.open("/echo", ClientRequest::default());
    let mut demo = served.open("/", offering(&["json"]));
    assert_eq!(demo.next_json()["type"], "welcome");
    let status = std::process::Command::new("kill").args(["-TERM", &served.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    for client in [&mut echo, &mut demo] {
        let (code, _) = expect_close(client);
        assert_eq!(code, 1001);
    }
    // Our Close answers went out with the reads; our FINs end the drain (without them the server
    // would wait out its close timeout for each).
    drop((echo, demo));
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = served.child.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(TcpStream::connect(&served.addr).is_err(), "no longer accepting");
}

#[test]
fn token_protocol_limits_are_settings() {
    let served = Served::start(&["--publish-rate", "0.001", "--publish-burst", "1", "--max-data-bytes", "10"]);
    let mut client = served.open("/tether", offering(&["tether.json"]));
    assert_eq!(client.next_json()["type"], "welcome");
    let mut answer = |request: &str| {
        client.send_text(request);
        client.next_json()
    };
    assert_eq!(answer(r#"{"type":"publish","id":1,"channel":"a","data":"x"}"#)["type"], "ack");
    assert_eq!(answer(r#"{"type":"publish","id":2,"channel":"a","data":"x"}"#)["code"], "rate_limited");
    assert_eq!(answer(r#"{"type":"publish","id":3,"channel":"a","data":"0123456789"}"#)["code"], "too_large");
}

fn http_get(served: &Served, path: &str) -> String {
    served.raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Opens a WebSocket connection on a server with room for it, once the sockets of earlier probes
/// have been let go: the client reads a probe's whole answer a moment before the server's task
/// for that socket ends, and until then it counts against `--max-connections` (a 503).
fn open_once_probes_are_gone(served: &Served) -> Client<TcpStream> {
    let started = Instant::now();
    loop {
        match Client::open(served.connect(), &served.addr, "/echo", ClientRequest::default()) {
            Ok(client) => return client,
            Err(_) if started.elapsed() < Duration::from_secs(2) => std::thread::sleep(Duration::from_millis(10)),
            Err(error) => panic!("no room after 2 s: {error:?}"),
        }
    }
}

#[test]
fn readyz_says_whether_new_connections_are_accepted() {
    // A server of one is ready while idle: the probe's own connection does not count.
    let served = Served::start(&["--max-connections", "1"]);
    let ready = http_get(&served, "/readyz");
    assert!(status_of(&ready) == "200" && ready.ends_with("ready\n"), "{ready}");
    // One WebSocket connection fills it; the probe, answered past the limit, says so.
    let _only = open_once_probes_are_gone(&served);
    let full = http_get(&served, "/readyz");
    assert!(status_of(&full) == "503" && full.ends_with("not ready\n"), "{full}");

    let served = Served::start(&["--max-connections", "3"]);
    let _first = open_once_probes_are_gone(&served);
    let _second = open_once_probes_are_gone(&served);
    let ready = http_get(&served, "/readyz");
    assert!(status_of(&ready) == "200", "two of three open leaves room for one: {ready}");
    let _third = open_once_probes_are_gone(&served);
    let full = http_get(&served, "/readyz");
    assert!(status_of(&full) == "503", "{full}");
}

/// Liveness stays 200 when the server is full (it is alive, only busy). Needs the accept loop of
/// tether-tokio to answer plain HTTP requests that arrive at the limit instead of a blanket 503.
#[test]
fn healthz_stays_200_when_the_server_is_full() {
    let served = Served::start(&["--max-connections", "1"]);
    let _only = served.open("/echo", ClientRequest::default());
    let health = http_get(&served, "/healthz");
    assert_eq!(status_of(&health), "200", "{health}");
}

#[test]
fn no_demos_keeps_the_token_protocol_health_and_static_files_only() {
    let dir = std::env::temp_dir().join(format!("tether-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.html"), "my app\n").unwrap();
    let config = dir.join("tether.toml");
    std::fs::write(&config, "demos = false\n").unwrap();
    for args in [vec!["--no-demos"], vec!["--config", config.to_str().unwrap()]] {
        let mut args = args.clone();
        args.extend(["--static", dir.to_str().unwrap()]);
        let served = Served::start(&args);
        for path in ["/", "/index.html", "/chat.html", "/tether.js"] {
            assert_eq!(status_of(&http_get(&served, path)), "404", "{args:?} {path}");
        }
        assert!(http_get(&served, "/app.html").ends_with("my app\n"), "{args:?}");
        assert!(http_get(&served, "/healthz").ends_with("ok\n"));
        assert!(http_get(&served, "/readyz").ends_with("ready\n"));
        for path in ["/", "/echo"] {
            let refused = served.raw(upgrade(path, "Sec-WebSocket-Version: 13\r\n").as_bytes());
            assert_eq!(status_of(&refused), "404", "{args:?} ws {path}: {refused}");
        }
        let mut token = served.open("/tether", offering(&["tether.json"]));
        assert_eq!(token.next_json()["type"], "welcome");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `tether serve` with stderr piped (not a terminal), stops it with SIGTERM and returns what
/// it logged.
fn logs_of(extra: &[&str]) -> String {
    use std::io::BufRead;
    let mut child = std::process::Command::new(common::tether_bin())
        .args(["serve", "--port", "0"])
        .args(extra)
        .env("TETHER_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn logs_have_no_colour_codes_off_a_terminal_and_json_lines_parse() {
    let text = logs_of(&[]);
    // SIGTERM comes right after `listening on`: the handlers are already installed then, so the
    // shutdown is graceful and logged.
    assert!(text.contains("listening") && text.contains("stopped"), "{text}");
    assert!(!text.contains('\u{1b}'), "escape codes in piped logs: {text:?}");

    let json = logs_of(&["--log-format", "json"]);
    let lines: Vec<&str> = json.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{json}");
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string() && value["fields"].is_object(), "{line}");
    }
}

fn frame_header(len: u64) -> Vec<u8> {
    // FIN + text, masked, the length in its shortest form (RFC 6455 §5.2: anything longer is a
    // protocol error, 1002), a mask key; the payload never follows.
    let mut header = vec![0x81];
    match u16::try_from(len) {
        Ok(short) if short > 125 => {
            header.push(0x80 | 126);
            header.extend_from_slice(&short.to_be_bytes());
        }
        _ if len > 125 => {
            header.push(0x80 | 127);
            header.extend_from_slice(&len.to_be_bytes());
        }
        _ => header.push(0x80 | len as u8),
    }
    header.extend_from_slice(&[1, 2, 3, 4]);
    header
}

/// `/tether` takes max_data_bytes plus envelope room (128 KiB by default) and the question demo
/// 4 KiB: a larger frame is refused with 1009 from its header alone, before its payload is
/// buffered. `/echo` keeps the server-wide 64 MiB. (Needs the library to enforce RouteOptions.)
#[test]
fn each_route_has_its_own_message_limit() {
    let served = Served::start(&[]);
    for (path, protocols, len) in [("/tether", &["tether.json"][..], 30u64 << 20), ("/", &["json"][..], 5000)] {
        let mut client = served.open(path, offering(protocols));
        let _welcome = client.next_json();
        client.stream.write_all(&frame_header(len)).unwrap();
        let (code, reason) = expect_close(&mut client);
        assert_eq!(code, 1009, "{path}: {reason}");
    }
    let mut echo = served.open("/echo", ClientRequest::default());
    let big = "x".repeat(200 * 1024);
    echo.send_text(&big);
    assert_eq!(echo.next_message().as_bytes().len(), big.len());
}
