//! The connection log lines end to end (docs/observability.md, "Logs"): the real `tether serve`
//! with stderr piped, a client that connects and closes, and the `open` and `close` lines it must
//! leave, one JSON object per line with `--log-format json`, and plain text without colour codes
//! when stderr is not a terminal.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::{http_request, serve_command};
use serde_json::Value;
use tether_proto::handshake::client::ClientRequest;
use tether_proto::Message;

/// `tether serve` logging at info with stderr piped (so not a terminal), its stderr lines sent to
/// a channel as they come; killed on drop.
struct Logging {
    child: Child,
    addr: String,
    lines: Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl Logging {
    fn start(extra: &[&str]) -> Self {
        let mut child = serve_command(extra)
            .env("TETHER_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tether");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit_once("://").expect("listening line").1.to_owned();
        let (sender, lines) = channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, addr, lines, seen: Vec::new() }
    }

    fn connect(&self, target: &str, request: ClientRequest) -> common::Client<std::net::TcpStream> {
        let stream = std::net::TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        common::Client::open(stream, &self.addr, target, request).expect("handshake succeeds")
    }

    /// The first line (from the start) that `matches`, waiting up to 10 s for it.
    fn line(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|line| matches(line)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what} line in 10 s; the log so far:\n{}", self.seen.join("\n")));
            self.seen.push(line.clone());
            if matches(&line) {
                return line;
            }
        }
    }
}

impl Drop for Logging {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON log line's `fields`, when it is a `message` line (`open`, `close`) of a connection on
/// `route`.
fn connection_line(line: &str, message: &str, route: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(line).ok()?;
    let fields = &value["fields"];
    (fields["message"] == message && fields["route"] == route).then(|| fields.clone())
}

/// A field that is a number, logged as one or as its decimal text.
fn number(field: &Value) -> Option<f64> {
    field.as_f64().or_else(|| field.as_str().and_then(|text| text.parse().ok()))
}

#[test]
fn json_logs_have_an_open_and_a_close_line_per_connection() {
    let mut logging = Logging::start(&["--log-format", "json", "--demo-tokens", "--ping-interval", "0"]);
    let mut client = logging.connect("/echo", ClientRequest::default());
    let peer = client.stream.local_addr().unwrap().to_string();
    client.send_text("hello");
    assert_eq!(client.next_message(), Message::Text("hello".into()));
    std::thread::sleep(Duration::from_millis(50));
    let (_, code) = client.close_and_drain(1000);
    assert_eq!(code, Some(1000));
    drop(client);

    let open = logging.line("open", |line| connection_line(line, "open", "/echo").is_some());
    let open = connection_line(&open, "open", "/echo").unwrap();
    let id = open["id"].as_str().filter(|id| !id.is_empty()).unwrap_or_else(|| panic!("an id: {open}"));
    assert_eq!(open["peer"], peer.as_str(), "{open}");
    assert_eq!(open["user"], "", "anonymous: {open}");
    let close = logging.line("close", |line| connection_line(line, "close", "/echo").is_some());
    let close = connection_line(&close, "close", "/echo").unwrap();
    assert_eq!(close["id"], id, "{close}");
    assert_eq!(close["peer"], peer.as_str(), "{close}");
    assert_eq!(number(&close["code"]), Some(1000.0), "{close}");
    assert_eq!(close["initiator"], "client", "{close}");
    assert_eq!(close["clean"], true, "{close}");
    let duration = number(&close["duration_ms"]).unwrap_or_else(|| panic!("a duration: {close}"));
    assert!((50.0..10_000.0).contains(&duration), "{close}");

    // A token-protocol connection with a token carries its user, and the id its welcome gave.
    let token = http_request(&logging.addr, "GET", "/demo/token?user=ada", &[], b"").json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = ClientRequest { protocols: vec!["tether.json".into()], ..ClientRequest::default() };
    let mut ada = logging.connect(&format!("/tether?token={token}"), request);
    let welcome = ada.next_json();
    let (_, code) = ada.close_and_drain(1000);
    assert_eq!(code, Some(1000));
    drop(ada);
    let open = logging.line("open of ada", |line| connection_line(line, "open", "/tether").is_some());
    let open = connection_line(&open, "open", "/tether").unwrap();
    assert_eq!(open["user"], "ada", "{open}");
    assert_eq!(open["id"], welcome["connectionId"], "{open}");
    assert_eq!(open["protocol"], "tether.json", "{open}");
    let close = logging.line("close of ada", |line| connection_line(line, "close", "/tether").is_some());
    let close = connection_line(&close, "close", "/tether").unwrap();
    assert_eq!(close["user"], "ada", "{close}");

    // A client's protocol error is logged at info (its mistake, not the server's), and its close
    // line has the server's 1002.
    let mut broken = logging.connect("/echo", ClientRequest::default());
    let broken_peer = broken.stream.local_addr().unwrap().to_string();
    std::io::Write::write_all(&mut broken.stream, &[0x81, 0x02, b'h', b'i']).unwrap(); // unmasked
    let code = loop {
        match broken.next_event() {
            Ok(tether_proto::Event::Close(frame)) => break frame.map(|frame| frame.code.0),
            Ok(_) => {}
            Err(error) => panic!("expected a Close, got {error}"),
        }
    };
    assert_eq!(code, Some(1002));
    drop(broken);
    let error = logging.line("protocol error", |line| line.contains("protocol error") && line.contains(&broken_peer));
    let error: Value = serde_json::from_str(&error).unwrap();
    assert_eq!(error["level"], "INFO", "{error}");
    let close = logging.line("close after the protocol error", |line| {
        connection_line(line, "close", "/echo").is_some_and(|fields| fields["peer"] == broken_peer.as_str())
    });
    let close = connection_line(&close, "close", "/echo").unwrap();
    assert_eq!((number(&close["code"]), &close["initiator"]), (Some(1002.0), &Value::from("server")), "{close}");

    // Every line is one JSON object.
    for line in logging.seen.iter().filter(|line| !line.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value.is_object() && value["level"].is_string(), "{line}");
    }
}

#[test]
fn text_logs_to_a_pipe_have_the_fields_and_no_colour_codes() {
    let mut logging = Logging::start(&["--ping-interval", "0"]);
    let mut client = logging.connect("/echo", ClientRequest::default());
    let peer = client.stream.local_addr().unwrap().to_string();
    let (_, code) = client.close_and_drain(1000);
    assert_eq!(code, Some(1000));
    drop(client);
    let close = logging.line("close", |line| line.contains(" close") && line.contains(&peer));
    // Strings are quoted (`user=""` when anonymous), addresses and numbers are not.
    for field in ["id=\"", "user=\"\"", "route=\"/echo\"", &format!("peer={peer} "), "code=1000", "duration_ms="] {
        assert!(close.contains(field), "{field} in {close}");
    }
    let open = logging.line("open", |line| line.contains(" open") && line.contains(&peer));
    for field in ["id=\"", "user=\"\"", "route=\"/echo\"", &format!("peer={peer} ")] {
        assert!(open.contains(field), "{field} in {open}");
    }
    // The same connection: the open line's id is the close line's.
    let id_of = |line: &str| line.split_whitespace().find(|word| word.starts_with("id=")).map(str::to_owned);
    assert!(id_of(&open).is_some_and(|id| id.len() > "id=\"\"".len()), "{open}");
    assert_eq!(id_of(&open), id_of(&close), "{open}\n{close}");
    for line in &logging.seen {
        assert!(!line.contains('\u{1b}'), "an escape code in piped logs: {line:?}");
    }
}

/// The startup line every `tether serve` logs once it listens.
fn listening(line: &str) -> bool {
    line.contains("listening")
}

/// The warning for `/metrics` on the main port of a reachable address.
const UNAUTHENTICATED: &str = "/metrics is served without authentication on";

#[test]
fn metrics_on_a_public_main_port_are_warned_about_at_startup() {
    let mut logging = Logging::start(&["--metrics", "--host", "0.0.0.0"]);
    let port = logging.addr.rsplit_once(':').unwrap().1.to_owned();
    let warning = logging.line("the warning", |line| line.contains(UNAUTHENTICATED));
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(
        warning.ends_with(&format!("{UNAUTHENTICATED} 0.0.0.0:{port}; use --internal-port behind a firewall")),
        "{warning}"
    );
    // Not on a loopback address, nor when the page is on the internal port.
    for quiet in [&["--metrics"][..], &["--metrics", "--host", "0.0.0.0", "--internal-port", "0"]] {
        let mut logging = Logging::start(quiet);
        logging.line("listening", listening);
        assert!(!logging.seen.iter().any(|line| line.contains(UNAUTHENTICATED)), "{quiet:?}: {:?}", logging.seen);
    }
}

/// `tether serve ARGS` (no `--port 0` of its own) run to its exit: its status and stderr lines.
fn run_to_exit(args: &[&str]) -> (Option<i32>, Vec<String>) {
    let output = std::process::Command::new(common::tether_bin())
        .arg("serve")
        .args(args)
        .env("TETHER_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run tether");
    let stderr = String::from_utf8_lossy(&output.stderr).lines().map(str::to_owned).collect();
    (output.status.code(), stderr)
}

#[test]
fn with_json_logs_a_fatal_error_is_a_json_line_too() {
    // A port already taken: `cannot listen`, exit status 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (status, lines) = run_to_exit(&["--port", &port, "--log-format", "json"]);
    assert_eq!(status, Some(1), "{lines:?}");
    let plain = format!("tether: cannot listen on 127.0.0.1:{port}: ");
    assert!(lines.iter().any(|line| line.starts_with(&plain)), "the plain line too: {lines:?}");
    let last: Value = serde_json::from_str(lines.last().expect("a line")).unwrap_or_else(|e| panic!("{e}: {lines:?}"));
    assert_eq!(last["level"], "ERROR", "{last}");
    let message = last["fields"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(&format!("cannot listen on 127.0.0.1:{port}: ")), "{last}");
    // Every line but the plain one is JSON.
    for line in lines.iter().filter(|line| !line.starts_with("tether: ")) {
        assert!(serde_json::from_str::<Value>(line).is_ok(), "{line}");
    }

    // A setting refused after logging started (the internal port with nothing to serve): exit
    // status 2, and the JSON line too.
    let (status, lines) = run_to_exit(&["--port", "0", "--internal-port", "0", "--log-format", "json"]);
    assert_eq!(status, Some(2), "{lines:?}");
    assert!(lines.first().is_some_and(|line| line.starts_with("tether: --internal-port 0: ")), "{lines:?}");
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap_or_else(|e| panic!("{e}: {lines:?}"));
    assert_eq!(last["level"], "ERROR", "{last}");

    // In text mode, only the plain line.
    let (status, lines) = run_to_exit(&["--port", &port]);
    assert_eq!(status, Some(1), "{lines:?}");
    assert!(lines.last().is_some_and(|line| line.starts_with(&plain)), "{lines:?}");
    assert_eq!(lines.iter().filter(|line| line.contains("cannot listen")).count(), 1, "{lines:?}");

    // A setting refused before logging starts (the flag's own range) is the plain line alone.
    let (status, lines) = run_to_exit(&["--port", "0", "--ping-interval", "0.5", "--log-format", "json"]);
    assert_eq!(status, Some(2), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("tether: --ping-interval 0.5: "), "{lines:?}");
    drop(taken);
}
