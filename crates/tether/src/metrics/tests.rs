//! The page's names, types and labels from fixed readings, without a server (the integration test
//! `tests/metrics.rs` checks them against a real one, and with an independent parser).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use tether_tokio::{RouteStats, StatsSnapshot};

use super::collector::{encode, HubReadings, Readings};
use super::*;

#[derive(Debug)]
struct Fixed(Readings);

impl Collector for Fixed {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        encode(&self.0, encoder)
    }
}

fn route(path: &str, fill: impl FnOnce(&mut RouteStats)) -> RouteStats {
    let mut stats = RouteStats::default();
    stats.path = path.to_owned();
    fill(&mut stats);
    stats
}

fn readings() -> Readings {
    let mut server = StatsSnapshot::default();
    server.routes = vec![
        route("/echo", |r| {
            (r.open, r.accepted, r.text_received, r.binary_received, r.messages_sent) = (2, 7, 11, 3, 14);
            (r.bytes_received, r.bytes_sent, r.queued_bytes) = (1000, 2000, 30);
        }),
        route("/tether", |r| {
            (r.open, r.accepted, r.text_received, r.messages_sent) = (1, 1, 5, 9);
            (r.bytes_received, r.bytes_sent, r.queued_bytes) = (24, 48, 12);
        }),
    ];
    server.handshake_rejections = vec![(401, 2), (403, 1)];
    server.closes = vec![("1000".into(), 4), ("4xxx".into(), 1)];
    server.slow_consumer_disconnects = 3;
    let hub = HubReadings {
        channels: 4,
        subscriptions: 6,
        publications: 8,
        users: 1,
        history_entries: 10,
        history_bytes: 512,
    };
    Readings { server, hub, uptime_seconds: 1.5 }
}

fn page_of(readings: Readings) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Fixed(readings)));
    let mut page = String::new();
    encode_page(&mut page, &registry);
    page
}

fn encode_page(page: &mut String, registry: &Registry) {
    prometheus_client::encoding::text::encode(page, registry).unwrap();
}

#[test]
fn every_sample_has_the_issues_name_labels_and_value() {
    let page = page_of(readings());
    let expected = [
        "tether_connections{route=\"/echo\"} 2",
        "tether_connections{route=\"/tether\"} 1",
        "tether_connections_accepted_total{route=\"/echo\"} 7",
        "tether_connections_accepted_total{route=\"/tether\"} 1",
        "tether_handshake_rejections_total{status=\"401\"} 2",
        "tether_handshake_rejections_total{status=\"403\"} 1",
        "tether_messages_received_total{route=\"/echo\",kind=\"text\"} 11",
        "tether_messages_received_total{route=\"/echo\",kind=\"binary\"} 3",
        "tether_messages_received_total{route=\"/tether\",kind=\"text\"} 5",
        "tether_messages_received_total{route=\"/tether\",kind=\"binary\"} 0",
        "tether_messages_sent_total{route=\"/echo\"} 14",
        "tether_messages_sent_total{route=\"/tether\"} 9",
        "tether_bytes_received_total 1024",
        "tether_bytes_sent_total 2048",
        "tether_closes_total{code=\"1000\"} 4",
        "tether_closes_total{code=\"4xxx\"} 1",
        "tether_slow_consumer_disconnects_total 3",
        "tether_queued_bytes 42",
        "tether_channels 4",
        "tether_subscriptions 6",
        "tether_publications_total 8",
        "tether_users 1",
        "tether_history_entries 10",
        "tether_history_bytes 512",
        "tether_uptime_seconds 1.5",
        &format!("tether_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
    ];
    let samples: Vec<&str> = page.lines().filter(|line| !line.starts_with('#')).collect();
    for line in expected {
        assert!(samples.contains(&line), "missing {line:?} in\n{page}");
    }
    assert_eq!(samples.len(), expected.len(), "no other samples:\n{page}");
    assert!(page.ends_with("# EOF\n"), "{page}");
}

#[test]
fn counters_are_typed_as_counters_and_units_are_declared() {
    let page = page_of(readings());
    for family in [
        "tether_connections_accepted",
        "tether_handshake_rejections",
        "tether_messages_received",
        "tether_messages_sent",
        "tether_bytes_received",
        "tether_bytes_sent",
        "tether_closes",
        "tether_slow_consumer_disconnects",
        "tether_publications",
    ] {
        assert!(page.contains(&format!("\n# TYPE {family} counter\n")), "{family}:\n{page}");
    }
    for family in ["tether_connections", "tether_queued_bytes", "tether_channels", "tether_subscriptions"] {
        assert!(page.contains(&format!("\n# TYPE {family} gauge\n")), "{family}:\n{page}");
    }
    assert!(page.contains("# UNIT tether_queued_bytes bytes\n"), "{page}");
    assert!(page.contains("# UNIT tether_uptime_seconds seconds\n"), "{page}");
    // Every family has its help, ending in a full stop.
    let helps = page.lines().filter(|line| line.starts_with("# HELP ")).count();
    let types = page.lines().filter(|line| line.starts_with("# TYPE ")).count();
    assert_eq!(helps, types, "{page}");
    assert!(page.lines().filter(|line| line.starts_with("# HELP ")).all(|line| line.ends_with('.')), "{page}");
}

#[test]
fn families_with_nothing_seen_yet_are_described_without_samples() {
    let page = page_of(Readings::default());
    assert!(page.contains("# TYPE tether_closes counter\n"), "{page}");
    assert!(!page.contains("tether_closes_total"), "{page}");
    assert!(page.contains("tether_bytes_received_total 0\n"), "{page}");
}

#[test]
fn api_calls_are_counted_by_method_and_status() {
    let calls = ApiCalls::default();
    let mut registry = Registry::default();
    registry.register("tether_api_requests", "Server API calls", calls.family());
    calls.record("publish", 200);
    calls.record("publish", 200);
    calls.record("(unknown)", 401);
    let mut page = String::new();
    encode_page(&mut page, &registry);
    assert!(page.contains("tether_api_requests_total{method=\"publish\",status=\"200\"} 2\n"), "{page}");
    assert!(page.contains("tether_api_requests_total{method=\"(unknown)\",status=\"401\"} 1\n"), "{page}");
}

#[test]
fn fanout_buckets_run_from_50_microseconds_to_under_a_second() {
    let buckets: Vec<f64> = fanout_buckets().collect();
    assert_eq!(buckets.len(), 15);
    assert!((buckets[0] - 50e-6).abs() < 1e-12, "{buckets:?}");
    assert!(buckets.windows(2).all(|pair| (pair[1] / pair[0] - 2.0).abs() < 1e-9), "{buckets:?}");
    assert!((0.5..1.0).contains(&buckets[14]), "{buckets:?}");
}
