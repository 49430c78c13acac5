//! `tether bench` end to end: the real binary against `tether serve` on an ephemeral port.
//!
//! Every run is short (one second of load) and bounded: a bench that has not finished within a
//! minute is killed and the test fails.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Served;
use serde_json::Value;

/// Runs `tether bench ARGS`; returns the exit status's success, stdout and stderr.
fn bench(args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tether bench");
    // Drain both pipes on threads so a chatty run cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tether bench {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), out.join().unwrap(), err.join().unwrap())
}

/// Runs a bench with `--json` and parses the last line of stdout.
fn bench_json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let (ok, stdout, stderr) = bench(&args);
    assert!(ok, "tether bench {args:?} failed\nstdout: {stdout}\nstderr: {stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last:?}\nstderr: {stderr}"))
}

fn num(report: &Value, key: &str) -> f64 {
    report[key].as_f64().unwrap_or_else(|| panic!("{key} missing or not a number in {report}"))
}

fn assert_echo_report(report: &Value, size: f64) {
    assert_eq!(report["mode"], "echo", "{report}");
    assert_eq!(num(report, "connections"), 4.0, "{report}");
    assert_eq!(num(report, "pipeline"), 4.0, "{report}");
    assert_eq!(num(report, "size"), size, "{report}");
    assert_eq!(num(report, "duration_s"), 1.0, "{report}");
    assert!(num(report, "messages") > 0.0, "{report}");
    assert!(num(report, "messages_per_sec") > 0.0, "{report}");
    assert!(num(report, "mb_per_sec") > 0.0, "{report}");
    assert_eq!(num(report, "errors"), 0.0, "{report}");
    let percentiles: Vec<f64> =
        ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"].iter().map(|key| num(report, key)).collect();
    assert!(percentiles[0] > 0.0, "{report}");
    assert!(percentiles.windows(2).all(|w| w[0] <= w[1]), "percentiles out of order: {report}");
    let cpu = num(report, "client_cpu_percent");
    assert!((0.0..=400.0).contains(&cpu), "{report}");
}

#[test]
fn echo_text() {
    let served = Served::start(&[]);
    let url = format!("ws://{}/echo", served.addr);
    let args =
        ["echo", &url, "--connections", "4", "--pipeline", "4", "--size", "16", "--duration", "1", "--warmup", "0"];
    let report = bench_json(&args);
    assert_echo_report(&report, 16.0);
    assert_eq!(report["binary"], false);
    assert_eq!(report["compression"], false);
}

#[test]
fn echo_binary_compressed() {
    let served = Served::start(&[]);
    let url = format!("ws://{}/echo", served.addr);
    let report = bench_json(&[
        "echo",
        &url,
        "--connections",
        "4",
        "--pipeline",
        "4",
        "--size",
        "1024",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--binary",
        "--compression",
    ]);
    assert_echo_report(&report, 1024.0);
    assert_eq!(report["binary"], true);
    assert_eq!(report["compression"], true, "the server agrees to permessage-deflate: {report}");
}

#[test]
fn echo_against_a_server_without_compression_and_with_threads() {
    let served = Served::start(&["--no-compression"]);
    let url = format!("ws://{}/echo", served.addr);
    let report = bench_json(&[
        "echo",
        &url,
        "-c",
        "4",
        "-p",
        "4",
        "-d",
        "1",
        "--warmup",
        "0.2",
        "--compression",
        "--threads",
        "2",
    ]);
    assert_echo_report(&report, 16.0);
    assert_eq!(report["compression"], false, "declined by the server: {report}");
    assert_eq!(num(&report, "threads"), 2.0);
}

#[test]
fn idle_holds_every_connection() {
    let served = Served::start(&[]);
    let url = format!("ws://{}/echo", served.addr);
    let report = bench_json(&["idle", &url, "--connections", "50", "--hold", "1"]);
    assert_eq!(report["mode"], "idle", "{report}");
    assert_eq!(num(&report, "connected"), 50.0, "{report}");
    assert_eq!(num(&report, "failed"), 0.0, "{report}");
    assert_eq!(num(&report, "dropped"), 0.0, "{report}");
    assert_eq!(num(&report, "hold_s"), 1.0, "{report}");
}

#[test]
fn idle_with_source_addresses() {
    let served = Served::start(&["--host", "127.0.0.1"]);
    let url = format!("ws://{}/echo", served.addr);
    let report = bench_json(&["idle", &url, "-c", "12", "--hold", "0.2", "--source-ips", "3"]);
    assert_eq!(num(&report, "connected"), 12.0, "{report}");
}

#[test]
fn fanout_delivers_every_message_to_every_subscriber() {
    let served = Served::start(&[]);
    let url = format!("ws://{}/tether", served.addr);
    let report = bench_json(&["fanout", &url, "--subscribers", "20", "--rate", "200", "--duration", "1"]);
    assert_eq!(report["mode"], "fanout", "{report}");
    assert_eq!(num(&report, "subscribers"), 20.0, "{report}");
    assert_eq!(report["subscriber_urls"][0]["url"], url.as_str(), "without --subscriber-url, URL: {report}");
    assert_eq!(num(&report["subscriber_urls"][0], "subscribers"), 20.0, "{report}");
    assert_eq!(num(&report, "errors"), 0.0, "{report}");
    let published = num(&report, "published");
    assert!((180.0..=200.0).contains(&published), "{report}");
    assert_eq!(num(&report, "deliveries"), published * 20.0, "{report}");
    assert!(num(&report, "deliveries_per_sec") > 0.0, "{report}");
    // Deliveries/s is over the delivery window: first publish to last delivery, about the duration.
    assert_eq!(num(&report, "duration_s"), 1.0, "{report}");
    let window = num(&report, "delivery_window_s");
    assert!(window > 0.5 && window < 10.0, "{report}");
    let rate = num(&report, "deliveries") / window;
    assert!((num(&report, "deliveries_per_sec") - rate).abs() <= rate * 0.01 + 0.1, "{report}");
    let percentiles: Vec<f64> = ["p50_us", "p90_us", "p99_us", "max_us"].iter().map(|key| num(&report, key)).collect();
    assert!(percentiles[0] > 0.0 && percentiles.windows(2).all(|w| w[0] <= w[1]), "{report}");
}

#[test]
fn fanout_spreads_subscribers_over_subscriber_urls() {
    // One server under two entries: the bench keeps each entry's subscribers apart, so a cluster's
    // nodes (bench/run.sh's fanout-redis) are measured the same way. The publishers stay on URL.
    let served = Served::start(&[]);
    let url = format!("ws://{}/tether", served.addr);
    let both = format!("{url},{url}");
    let report = bench_json(&[
        "fanout",
        &url,
        "--subscribers",
        "21",
        "--rate",
        "100",
        "--duration",
        "1",
        "--subscriber-url",
        &both,
    ]);
    assert_eq!(num(&report, "errors"), 0.0, "{report}");
    assert_eq!(num(&report, "subscribers"), 21.0, "{report}");
    let published = num(&report, "published");
    assert!((90.0..=100.0).contains(&published), "{report}");
    let groups = report["subscriber_urls"].as_array().unwrap_or_else(|| panic!("no subscriber_urls: {report}"));
    assert_eq!(groups.len(), 2, "{report}");
    for (group, subscribers) in groups.iter().zip([11.0, 10.0]) {
        assert_eq!(group["url"], url.as_str(), "{report}");
        assert_eq!(num(group, "subscribers"), subscribers, "round-robin: {report}");
        assert_eq!(num(group, "deliveries"), published * subscribers, "{report}");
        assert_eq!(num(group, "missing"), 0.0, "{report}");
        assert!(num(group, "p50_us") > 0.0 && num(group, "p50_us") <= num(group, "p99_us"), "{report}");
    }
    assert_eq!(num(&report, "deliveries"), published * 21.0, "{report}");
    // The overall percentiles cover both groups.
    let max = groups.iter().map(|g| num(g, "max_us")).fold(0.0, f64::max);
    assert_eq!(num(&report, "max_us"), max, "{report}");
}

#[test]
fn fanout_counts_subscribers_that_cannot_reach_their_url() {
    let served = Served::start(&[]);
    let url = format!("ws://{}/tether", served.addr);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("ws://127.0.0.1:{port}/tether");
    let report = bench_json(&[
        "fanout",
        &url,
        "-n",
        "6",
        "-r",
        "50",
        "-d",
        "0.5",
        "--connect-timeout",
        "2",
        "--subscriber-url",
        &url,
        "--subscriber-url",
        &dead,
    ]);
    assert_eq!(num(&report, "subscribers"), 3.0, "{report}");
    assert_eq!(num(&report, "connect_failed"), 3.0, "{report}");
    let groups = report["subscriber_urls"].as_array().unwrap();
    assert_eq!(num(&groups[1], "subscribers"), 0.0, "{report}");
    assert_eq!(num(&groups[1], "deliveries"), 0.0, "{report}");
    assert_eq!(num(&groups[0], "deliveries"), num(&report, "published") * 3.0, "{report}");
    // Nothing on any subscriber URL at all is a failure, naming the URLs.
    let (ok, _, stderr) =
        bench(&["fanout", &url, "-n", "2", "-d", "0.5", "--connect-timeout", "2", "--subscriber-url", &dead]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("no subscriber could subscribe") && stderr.contains(&dead), "{stderr}");
}

#[test]
fn nothing_to_connect_to_is_a_failure() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("ws://127.0.0.1:{port}/echo");
    let (ok, _, stderr) = bench(&["echo", &url, "-c", "2", "-d", "1", "--connect-timeout", "2"]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("no connection could be opened"), "{stderr}");
    let (ok, stdout, _) = bench(&["idle", &url, "-c", "2", "--hold", "5", "--json"]);
    assert!(!ok);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["connected"], 0);
    assert_eq!(report["failed"], 2);
}

#[test]
fn a_refused_handshake_is_reported() {
    let served = Served::start(&[]);
    let url = format!("ws://{}/nowhere", served.addr);
    let (ok, _, stderr) = bench(&["echo", &url, "-c", "2", "-d", "1"]);
    assert!(!ok);
    assert!(stderr.contains("HTTP 404"), "{stderr}");
}
