//! `GET /metrics` end to end: the real `tether serve --metrics` on an ephemeral port, scraped
//! before and after clients connect, send text and binary, get refused (403 for a foreign Origin,
//! 401 for `/tether` without a token), publish, call the server API and close; each listed metric
//! must move by exactly what happened (the difference between two scrapes).
//!
//! The server builds its page at most once per 200 ms and serves the same bytes in between;
//! [`scrape`] waits until the previous scrape of the same server is older than that, so that every
//! page it returns was built after everything the test did before asking.
//!
//! Every scrape is read by an independent parser, Python prometheus-client's (PyPI), through
//! tests/interop/parse_metrics.py: its strict OpenMetrics parser must accept the whole page, the
//! classic text parser must see the same samples, and the values compared here are the ones it
//! read. It needs `prometheus-client` on the `python3` of PATH (scripts/test.sh installs it into
//! its venv and puts that first on PATH).

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{http_request, status_of, upgrade, wait_until, Served};
use serde_json::{json, Value};
use tether_proto::handshake::client::ClientRequest;
use tether_proto::Message;

const KEY: &str = "api-key-for-metrics-0123456789";

/// The OpenMetrics text format's content type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every family the issue lists, by the name the parser gives it (a counter's without `_total`),
/// and its type.
const LISTED: &[(&str, &str)] = &[
    ("tether_connections", "gauge"),
    ("tether_connections_accepted", "counter"),
    ("tether_handshake_rejections", "counter"),
    ("tether_messages_received", "counter"),
    ("tether_messages_sent", "counter"),
    ("tether_bytes_received", "counter"),
    ("tether_bytes_sent", "counter"),
    ("tether_closes", "counter"),
    ("tether_slow_consumer_disconnects", "counter"),
    ("tether_queued_bytes", "gauge"),
    ("tether_channels", "gauge"),
    ("tether_subscriptions", "gauge"),
    ("tether_publications", "counter"),
    ("tether_publish_fanout_seconds", "histogram"),
    ("tether_api_requests", "counter"),
    ("tether_build_info", "gauge"),
];

/// One scrape, as the independent parser read it.
struct Page {
    text: String,
    /// parse_metrics.py's `families`: name -> {type, unit, help, samples: [[name, labels, value]]}.
    families: serde_json::Map<String, Value>,
}

impl Page {
    /// The value of the sample `name{labels}` (labels in any order), if the page has it.
    fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: serde_json::Map<String, Value> =
            labels.iter().map(|(key, value)| ((*key).to_owned(), json!(value))).collect();
        let found = self
            .families
            .values()
            .flat_map(|family| family["samples"].as_array().unwrap())
            .find(|sample| sample[0] == name && sample[1].as_object() == Some(&wanted))?;
        Some(found[2].as_f64().unwrap_or_else(|| panic!("a number: {found}")))
    }

    /// The value of the sample `name{labels}`; a panic naming it when the page does not have it.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sample(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{}", self.text))
    }

    /// The value of `name{labels}`, 0 when the page has no such sample: only for a labelled series
    /// that legitimately appears at its first event (a status, a close code, an API call).
    fn value_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sample(name, labels).unwrap_or(0.0)
    }

    fn family(&self, name: &str) -> &Value {
        self.families.get(name).unwrap_or_else(|| panic!("no family {name} in\n{}", self.text))
    }
}

/// How long the server serves a page it built before it builds a new one (`metrics::PAGE_TTL`),
/// and a margin over it.
const PAGE_TTL: Duration = Duration::from_millis(200);
const TTL_MARGIN: Duration = Duration::from_millis(20);

/// When each server's last scrape was answered.
static LAST_SCRAPE: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

/// `GET /metrics` of `addr` once its previous scrape's page has expired: the page it gets was built
/// during this call, after everything the caller did before.
fn fresh_page(addr: &str) -> common::HttpAnswer {
    let last = LAST_SCRAPE.lock().unwrap().get_or_insert_with(HashMap::new).get(addr).copied();
    if let Some(expired) = last.map(|last| last + PAGE_TTL + TTL_MARGIN) {
        std::thread::sleep(expired.saturating_duration_since(Instant::now()));
    }
    let answer = http_request(addr, "GET", "/metrics", &[], b"");
    LAST_SCRAPE.lock().unwrap().get_or_insert_with(HashMap::new).insert(addr.to_owned(), Instant::now());
    answer
}

/// Scrapes `addr`'s `/metrics` (a fresh page, see [`fresh_page`]) and has the independent parser
/// read it.
fn scrape(addr: &str) -> Page {
    let answer = fresh_page(addr);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some(OPENMETRICS), "{answer:?}");
    let parsed = parse(&answer.body);
    let families = parsed["families"].as_object().expect("families").clone();
    // The classic parser reads the same samples (its types differ: it takes an OpenMetrics
    // counter's `_total` samples as untyped, which is why only the samples are compared).
    let mut strict: Vec<String> =
        families.values().flat_map(|family| family["samples"].as_array().unwrap()).map(Value::to_string).collect();
    let mut classic: Vec<String> = parsed["classic"].as_array().unwrap().iter().map(Value::to_string).collect();
    strict.sort();
    classic.sort();
    assert_eq!(strict, classic, "the two parsers read different samples from\n{}", answer.body);
    Page { text: answer.body, families }
}

/// tests/interop/parse_metrics.py over `page`: its JSON, or a panic with the parser's refusal.
fn parse(page: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/interop/parse_metrics.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "parse_metrics.py (needs prometheus-client on python3, scripts/test.sh installs it): {stderr}\n{page}"
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The change of `name{labels}` from `before` to `after`; both pages must have the sample.
fn delta(before: &Page, after: &Page, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

/// The change of a labelled series that appears at its first event: absent counts as 0 (on
/// `after` too, for a check that it did not move).
fn delta_or_zero(before: &Page, after: &Page, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value_or_zero(name, labels) - before.value_or_zero(name, labels)
}

/// The size on the wire of a frame with a `len`-byte payload: 2 bytes of header, the extended
/// length (RFC 6455 §5.2), and the 4-byte mask key of a client's frame.
fn frame_size(len: usize, masked: bool) -> usize {
    let extended = match len {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    2 + extended + if masked { 4 } else { 0 } + len
}

fn offering(protocol: &str) -> ClientRequest {
    ClientRequest { protocols: vec![protocol.to_owned()], ..ClientRequest::default() }
}

#[test]
fn the_page_is_openmetrics_that_an_independent_parser_reads_whole() {
    let served = Served::start(&["--metrics", "--api-key", KEY]);
    // One API call, so that the API family has a sample to show.
    http_request(&served.addr, "POST", "/api/info", &[("X-API-Key", KEY)], b"{}");
    let page = scrape(&served.addr);
    assert!(page.text.ends_with("# EOF\n"), "{}", page.text);
    for (name, kind) in LISTED {
        let family = page.family(name);
        assert_eq!(family["type"], *kind, "{name}: {family}");
        assert!(family["help"].as_str().is_some_and(|help| !help.is_empty()), "{name}: {family}");
    }
    assert_eq!(page.family("tether_queued_bytes")["unit"], "bytes");
    assert_eq!(page.family("tether_publish_fanout_seconds")["unit"], "seconds");
    assert_eq!(page.value("tether_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert_eq!(page.value("tether_api_requests_total", &[("method", "info"), ("status", "200")]), 1.0);
    // Every route of the server is there from the start, zeros included.
    for route in ["/", "/echo", "/tether"] {
        assert!(page.text.contains(&format!("tether_connections{{route=\"{route}\"}} 0\n")), "{route}: {}", page.text);
    }
    // The histogram has its buckets from 50 µs, and +Inf.
    let buckets: Vec<&Value> = page.family("tether_publish_fanout_seconds")["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|sample| sample[0] == "tether_publish_fanout_seconds_bucket")
        .collect();
    assert_eq!(buckets.len(), 16, "{buckets:?}");
    assert_eq!(buckets.last().unwrap()[1]["le"], "+Inf");
    // No label anywhere carries an id: every label is one of these.
    for family in page.families.values() {
        for sample in family["samples"].as_array().unwrap() {
            for label in sample[1].as_object().unwrap().keys() {
                assert!(
                    ["route", "status", "kind", "code", "method", "version", "le"].contains(&label.as_str()),
                    "{sample}"
                );
            }
        }
    }
    // Only GET (and HEAD).
    assert_eq!(http_request(&served.addr, "POST", "/metrics", &[], b"").status, 405);
    assert_eq!(http_request(&served.addr, "HEAD", "/metrics", &[], b"").status, 200);
}

/// The page is built at most once per 200 ms: a scrape within that window gets the same bytes,
/// even when something changed in between; the next one after it sees the change.
#[test]
fn scrapes_within_200_ms_share_one_page() {
    let served = Served::start(&["--metrics", "--ping-interval", "0"]);
    let open_line = |body: &str| {
        let line = body.lines().find(|line| line.starts_with("tether_connections{route=\"/echo\"} "));
        line.unwrap_or_else(|| panic!("{body}")).to_owned()
    };
    // Retried: on a loaded machine the two scrapes may land more than the window apart.
    let mut clients = Vec::new();
    let shared = (0..5).any(|_| {
        let started = Instant::now();
        let first = fresh_page(&served.addr).body;
        clients.push(served.open("/echo", ClientRequest::default()));
        let second = http_request(&served.addr, "GET", "/metrics", &[], b"").body;
        if started.elapsed() >= Duration::from_millis(150) {
            return false;
        }
        assert_eq!(first, second, "the same page, uptime included");
        true
    });
    assert!(shared, "two scrapes never came within 150 ms of each other");
    let after = fresh_page(&served.addr).body;
    assert_eq!(open_line(&after), format!("tether_connections{{route=\"/echo\"}} {}", clients.len()), "{after}");
}

#[test]
fn without_metrics_there_is_no_page() {
    let served = Served::start(&[]);
    assert_eq!(http_request(&served.addr, "GET", "/metrics", &[], b"").status, 404);
}

#[test]
fn with_an_internal_port_the_page_is_served_there_only() {
    let (served, lines) = Served::start_reading(&["--metrics", "--internal-port", "0"], 2);
    let internal = lines[1].strip_prefix("metrics on http://").and_then(|rest| rest.strip_suffix("/metrics"));
    let internal = internal.unwrap_or_else(|| panic!("{lines:?}"));
    assert_ne!(internal, served.addr);
    let page = scrape(internal);
    assert_eq!(page.value("tether_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert_eq!(http_request(&served.addr, "GET", "/metrics", &[], b"").status, 404, "not on the main port");
    // With the API too, both are on the internal port, and the API's calls are counted.
    let (served, lines) = Served::start_reading(&["--metrics", "--api-key", KEY, "--internal-port", "0"], 3);
    assert!(lines[1].starts_with("server API on http://"), "{lines:?}");
    let internal = lines[2].strip_prefix("metrics on http://").and_then(|rest| rest.strip_suffix("/metrics")).unwrap();
    assert_eq!(http_request(internal, "POST", "/api/info", &[("X-API-Key", KEY)], b"").status, 200);
    let page = scrape(internal);
    assert_eq!(page.value("tether_api_requests_total", &[("method", "info"), ("status", "200")]), 1.0);
    assert_eq!(http_request(&served.addr, "GET", "/metrics", &[], b"").status, 404);
}

#[test]
fn connections_messages_bytes_refusals_and_closes_move_by_exactly_what_happened() {
    let served = Served::start(&[
        "--metrics",
        "--ping-interval",
        "0",
        "--allowed-origin",
        "http://app.example",
        "--demo-tokens",
    ]);
    let echo = [("route", "/echo")];
    let before = scrape(&served.addr);
    assert_eq!(before.value("tether_connections", &echo), 0.0);

    let texts = ["alpha", "beta", "gamma"];
    let binaries: [&[u8]; 2] = [&[1, 2, 3], &[7; 200]];
    let mut clients: Vec<_> = (0..2).map(|_| served.open("/echo", ClientRequest::default())).collect();
    for client in &mut clients {
        for text in texts {
            client.send_text(text);
            assert_eq!(client.next_message(), Message::Text(text.into()));
        }
        for binary in binaries {
            client.conn.send_binary(binary).unwrap();
            client.flush();
            assert_eq!(client.next_message(), Message::Binary(binary.to_vec().into()));
        }
    }
    // A foreign Origin: 403. `/tether` without a token (demo tokens are on): 401.
    let foreign = upgrade("/echo", "Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n");
    assert_eq!(status_of(&served.raw(foreign.as_bytes())), "403");
    let tokenless = upgrade("/tether", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether.json\r\n");
    assert_eq!(status_of(&served.raw_head(tokenless.as_bytes())), "401");
    let empty_token = upgrade("/tether?token=", "Sec-WebSocket-Version: 13\r\n");
    assert_eq!(status_of(&served.raw_head(empty_token.as_bytes())), "401");

    let during = scrape(&served.addr);
    assert_eq!(during.value("tether_connections", &echo), 2.0, "{}", during.text);
    assert_eq!(delta(&before, &during, "tether_connections_accepted_total", &echo), 2.0);
    assert_eq!(during.value("tether_queued_bytes", &[]), 0.0, "every echo was read");

    for client in &mut clients {
        let (rest, code) = client.close_and_drain(1000);
        assert!(rest.is_empty() && code == Some(1000), "{rest:?} {code:?}");
    }
    // The server's TCP close is answered at once (else it waits for ours up to its close timeout).
    drop(clients);
    // The server ends each connection a moment after its Close: wait until both have left the
    // open set. A connection leaves it and has its close and its counts added in one step, under
    // the registry's lock, so the page that shows them gone shows all of that (checked exactly
    // below, with no more waiting).
    let mut after = scrape(&served.addr);
    wait_until("both connections are forgotten", || {
        after = scrape(&served.addr);
        after.value("tether_connections", &echo) == 0.0
    });

    assert_eq!(delta(&before, &after, "tether_connections_accepted_total", &echo), 2.0);
    assert_eq!(delta(&before, &after, "tether_connections_accepted_total", &[("route", "/tether")]), 0.0);
    assert_eq!(delta_or_zero(&before, &after, "tether_handshake_rejections_total", &[("status", "403")]), 1.0);
    assert_eq!(delta_or_zero(&before, &after, "tether_handshake_rejections_total", &[("status", "401")]), 2.0);
    let text = [("route", "/echo"), ("kind", "text")];
    let binary = [("route", "/echo"), ("kind", "binary")];
    assert_eq!(delta(&before, &after, "tether_messages_received_total", &text), 6.0);
    assert_eq!(delta(&before, &after, "tether_messages_received_total", &binary), 4.0);
    assert_eq!(delta(&before, &after, "tether_messages_sent_total", &echo), 10.0);
    // Frames as on the wire: the client's masked, the server's not, each Close with its code.
    let payloads: Vec<usize> = texts.iter().map(|t| t.len()).chain(binaries.iter().map(|b| b.len())).collect();
    let received: usize = payloads.iter().map(|&len| frame_size(len, true)).sum::<usize>() + frame_size(2, true);
    let sent: usize = payloads.iter().map(|&len| frame_size(len, false)).sum::<usize>() + frame_size(2, false);
    assert_eq!(delta(&before, &after, "tether_bytes_received_total", &[]), 2.0 * received as f64);
    assert_eq!(delta(&before, &after, "tether_bytes_sent_total", &[]), 2.0 * sent as f64);
    assert_eq!(delta_or_zero(&before, &after, "tether_closes_total", &[("code", "1000")]), 2.0);
    assert_eq!(delta(&before, &after, "tether_slow_consumer_disconnects_total", &[]), 0.0);
    assert_eq!(after.value("tether_queued_bytes", &[]), 0.0);
}

/// A client that sends but does not read is closed with 1008: one slow-consumer disconnect, one
/// close with code 1008, and the queued-bytes gauge back to zero once it is gone.
#[test]
fn a_slow_consumer_moves_its_counter_and_the_1008_closes() {
    let served = Served::start(&["--metrics", "--max-queue-bytes", "65536", "--close-timeout", "2"]);
    let before = scrape(&served.addr);
    let mut slow = served.open_slow_consumer();
    // Reading at last, the client finds the server's Close after the echoes that fit (and answers it).
    let code = loop {
        match slow.next_event() {
            Ok(tether_proto::Event::Close(frame)) => break frame.map(|frame| frame.code.0),
            Ok(_) => {}
            Err(error) => panic!("expected a Close, got {error}"),
        }
    };
    assert_eq!(code, Some(1008));
    // Its writes may have stopped mid-frame (TCP backpressure): end TCP too, so the server need
    // not wait out its close timeout.
    drop(slow);
    let mut after = scrape(&served.addr);
    wait_until("the slow consumer is forgotten", || {
        after = scrape(&served.addr);
        after.value("tether_connections", &[("route", "/echo")]) == 0.0
    });
    assert_eq!(delta(&before, &after, "tether_slow_consumer_disconnects_total", &[]), 1.0);
    assert_eq!(delta_or_zero(&before, &after, "tether_closes_total", &[("code", "1008")]), 1.0, "{}", after.text);
    assert_eq!(after.value("tether_queued_bytes", &[]), 0.0, "its queue went with it");
}

/// A client that stops reading leaves its echoes queued on the server: `tether_queued_bytes`
/// counts them while it stalls (the queue bound is far above what it sends, so it is not closed),
/// and is back to 0 once the client has read them all.
#[test]
fn queued_bytes_count_what_a_stalled_client_has_not_read_yet() {
    const CHUNK: usize = 64 * 1024;
    // 16 MiB: far more than the kernel's socket buffers hold (the server's send buffer grows to
    // 4 MiB at most, the client's receive buffer is fixed at 16 KiB).
    const CHUNKS: usize = 256;
    let served = Served::start(&["--metrics", "--ping-interval", "0", "--max-queue-bytes", "67108864"]);
    let before = scrape(&served.addr);
    assert_eq!(before.value("tether_queued_bytes", &[]), 0.0);
    let mut stalled = served.open_with_small_receive_buffer("/echo");
    let chunk = "q".repeat(CHUNK);
    for _ in 0..CHUNKS {
        stalled.conn.send_text(&chunk).unwrap();
    }
    // Written from a thread: the server reads all of it, but the client's writes may wait for it.
    let out = stalled.conn.take_output();
    let mut writer = stalled.stream.try_clone().unwrap();
    let writing = std::thread::spawn(move || writer.write_all(&out));
    let mut stalling = scrape(&served.addr);
    wait_until("the echoes pile up in the server's queue", || {
        stalling = scrape(&served.addr);
        stalling.value("tether_queued_bytes", &[]) > 0.0
    });
    let queued = stalling.value("tether_queued_bytes", &[]);
    let echoed = (CHUNKS * frame_size(CHUNK, false)) as f64;
    assert!(queued <= echoed, "{queued} queued of {echoed} echoed");
    assert_eq!(stalling.value("tether_connections", &[("route", "/echo")]), 1.0, "not closed for it");
    // Reading at last: every echo arrives, and the queue empties.
    for _ in 0..CHUNKS {
        assert_eq!(stalled.next_message(), Message::Text(chunk.clone().into()));
    }
    writing.join().unwrap().unwrap();
    let mut drained = scrape(&served.addr);
    wait_until("the queue is empty", || {
        drained = scrape(&served.addr);
        drained.value("tether_queued_bytes", &[]) == 0.0
    });
    assert_eq!(delta(&before, &drained, "tether_slow_consumer_disconnects_total", &[]), 0.0);
    let (rest, code) = stalled.close_and_drain(1000);
    assert!(rest.is_empty() && code == Some(1000), "{rest:?} {code:?}");
}

/// A token for `user` from `--demo-tokens`' endpoint.
fn demo_token(addr: &str, user: &str) -> String {
    let answer = http_request(addr, "GET", &format!("/demo/token?user={user}"), &[], b"");
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()["token"].as_str().expect("a token").to_owned()
}

#[test]
fn publications_fanout_channels_and_api_calls_move_by_exactly_what_happened() {
    let served = Served::start(&["--metrics", "--ping-interval", "0", "--demo-tokens", "--api-key", KEY]);
    let api = |key: &str, method: &str, body: Value| {
        let headers = [("X-API-Key", key), ("Content-Type", "application/json")];
        http_request(&served.addr, "POST", &format!("/api/{method}"), &headers, body.to_string().as_bytes())
    };
    let tether = [("route", "/tether")];
    let before = scrape(&served.addr);

    let token = demo_token(&served.addr, "ada");
    let mut ada = served.open(&format!("/tether?token={token}"), offering("tether.json"));
    let mut received = vec![ada.next_json()];
    assert_eq!(received[0]["type"], "welcome");
    ada.send_text(&json!({"type": "subscribe", "id": 1, "channel": "news"}).to_string());
    received.push(ada.next_json());
    assert_eq!(received[1]["type"], "ack", "{received:?}");
    let subscribed = scrape(&served.addr);
    assert_eq!(delta(&before, &subscribed, "tether_subscriptions", &[]), 1.0);
    assert_eq!(delta(&before, &subscribed, "tether_channels", &[]), 1.0);
    assert_eq!(subscribed.value("tether_users", &[]), 1.0);
    assert_eq!(subscribed.value("tether_connections", &tether), 1.0);

    // Two publishes that reach a subscriber (the API's and ada's own), one that reaches nobody.
    assert_eq!(api(KEY, "publish", json!({"channel": "news", "data": {"n": 1}})).status, 200);
    received.push(ada.next_json());
    assert_eq!(received[2]["type"], "message", "{received:?}");
    ada.send_text(&json!({"type": "publish", "id": 2, "channel": "news", "data": "mine"}).to_string());
    received.push(ada.next_json());
    received.push(ada.next_json());
    assert_eq!((&received[3]["type"], &received[4]["type"]), (&json!("message"), &json!("ack")), "{received:?}");
    assert_eq!(api(KEY, "publish", json!({"channel": "empty", "data": 0})).status, 200);
    // Calls the API refuses are counted by their status, an unknown method as "(unknown)".
    assert_eq!(api("a-wrong-key-0123456789", "info", json!({})).status, 401);
    assert_eq!(api(KEY, "no-such-method", json!({})).status, 404);
    assert_eq!(api(KEY, "publish", json!({"channel": "news"})).status, 400, "no data");

    let published = scrape(&served.addr);
    assert_eq!(delta(&before, &published, "tether_publications_total", &[]), 3.0);
    assert_eq!(delta(&before, &published, "tether_publish_fanout_seconds_count", &[]), 2.0, "{}", published.text);
    let fanout_sum = delta(&before, &published, "tether_publish_fanout_seconds_sum", &[]);
    assert!(fanout_sum > 0.0 && fanout_sum < 10.0, "{fanout_sum}");
    let inf = [("le", "+Inf")];
    assert_eq!(delta(&before, &published, "tether_publish_fanout_seconds_bucket", &inf), 2.0);
    assert_eq!(delta(&before, &published, "tether_channels", &[]), 2.0, "news and empty hold history");
    assert_eq!(delta(&before, &published, "tether_history_entries", &[]), 3.0);
    assert!(delta(&before, &published, "tether_history_bytes", &[]) > 0.0);
    let calls = |page: &Page, method: &str, status: &str| {
        delta_or_zero(&before, page, "tether_api_requests_total", &[("method", method), ("status", status)])
    };
    assert_eq!(calls(&published, "publish", "200"), 2.0);
    assert_eq!(calls(&published, "info", "401"), 1.0);
    assert_eq!(calls(&published, "(unknown)", "404"), 1.0);
    assert_eq!(calls(&published, "publish", "400"), 1.0);
    assert!(!published.text.contains("no-such-method"), "never the caller's text as a label");

    let (rest, code) = ada.close_and_drain(1000);
    assert_eq!(code, Some(1000));
    drop(ada);
    received.extend(rest.into_iter().map(|message| match message {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("{other:?}"),
    }));
    let mut after = scrape(&served.addr);
    wait_until("ada is forgotten", || {
        after = scrape(&served.addr);
        after.value("tether_connections", &tether) == 0.0
    });
    assert_eq!(delta(&before, &after, "tether_subscriptions", &[]), 0.0);
    assert_eq!(after.value("tether_users", &[]), 0.0);
    assert_eq!(delta(&before, &after, "tether_connections_accepted_total", &tether), 1.0);
    // ada sent two requests (subscribe, publish) as text and got every message she read.
    assert_eq!(
        delta(&before, &after, "tether_messages_received_total", &[("route", "/tether"), ("kind", "text")]),
        2.0
    );
    assert_eq!(delta(&before, &after, "tether_messages_sent_total", &tether), received.len() as f64, "{received:?}");
    assert_eq!(delta_or_zero(&before, &after, "tether_closes_total", &[("code", "1000")]), 1.0);
}
