//! The page's names, types and labels from fixed readings, without a server (the integration test
//! `tests/metrics.rs` checks them against a real one, and with an independent parser).

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use tether_tokio::{RouteStats, StatsSnapshot};

use super::collector::{encode, HubReadings, Readings, RedisReadings};
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
    Readings { server, hub, redis: None, uptime_seconds: 1.5 }
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
fn the_redis_families_are_there_on_the_redis_engine_only() {
    let memory = page_of(readings());
    assert!(!memory.contains("tether_redis"), "{memory}");
    for (up, value) in [(true, 1), (false, 0)] {
        let page = page_of(Readings { redis: Some(RedisReadings { up, errors: 7 }), ..readings() });
        assert!(page.contains("\n# TYPE tether_redis_up gauge\n"), "{page}");
        assert!(page.contains(&format!("\ntether_redis_up {value}\n")), "{page}");
        assert!(page.contains("\n# TYPE tether_redis_errors counter\n"), "{page}");
        assert!(page.contains("\ntether_redis_errors_total 7\n"), "{page}");
    }
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
fn fanout_buckets_run_from_50_microseconds_doubling_to_under_a_second() {
    let (_, _, buckets) = FanoutHistogram::default().read();
    assert_eq!(buckets.len(), 16);
    assert!((buckets[0].0 - 50e-6).abs() < 1e-12, "{buckets:?}");
    assert!(buckets[..15].windows(2).all(|pair| (pair[1].0 / pair[0].0 - 2.0).abs() < 1e-9), "{buckets:?}");
    assert!((0.5..1.0).contains(&buckets[14].0), "{buckets:?}");
    assert_eq!(buckets[15].0, f64::INFINITY);
}

#[test]
fn an_observation_lands_in_the_first_bucket_whose_bound_it_does_not_pass() {
    use histogram::{bound_nanos, bucket_of, BUCKETS};
    assert_eq!(bucket_of(0), 0);
    assert_eq!(bucket_of(50_000), 0, "bounds are inclusive (le)");
    assert_eq!(bucket_of(50_001), 1);
    assert_eq!(bucket_of(100_000), 1);
    assert_eq!(bucket_of(150_000), 2);
    for index in 1..BUCKETS {
        assert_eq!(bucket_of(bound_nanos(index)), index);
        assert_eq!(bucket_of(bound_nanos(index - 1) + 1), index);
    }
    assert_eq!(bucket_of(bound_nanos(BUCKETS - 1)), BUCKETS - 1);
    assert_eq!(bucket_of(bound_nanos(BUCKETS - 1) + 1), BUCKETS, "+Inf");
    assert_eq!(bucket_of(u64::MAX), BUCKETS);

    let histogram = FanoutHistogram::default();
    for micros in [10, 50, 51, 700, 2_000_000] {
        histogram.observe(Duration::from_micros(micros));
    }
    let (sum, count, buckets) = histogram.read();
    assert_eq!(count, 5);
    assert!((sum - 2.000_811).abs() < 1e-9, "{sum}");
    let counts: Vec<u64> = buckets.iter().map(|(_, n)| *n).collect();
    // 10 and 50 µs in le=50µs, 51 in le=100µs, 700 in le=800µs (50·2^4), 2 s in +Inf.
    assert_eq!(counts, [2, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
}

#[test]
fn the_fanout_histogram_is_encoded_as_an_openmetrics_histogram() {
    let histogram = FanoutHistogram::default();
    histogram.observe(Duration::from_micros(30));
    histogram.observe(Duration::from_micros(120));
    histogram.observe(Duration::from_secs(3));
    let mut registry = Registry::default();
    registry.register_with_unit("tether_publish_fanout", "Fan-out time", Unit::Seconds, histogram);
    let mut page = String::new();
    encode_page(&mut page, &registry);
    assert!(page.contains("# TYPE tether_publish_fanout_seconds histogram\n"), "{page}");
    assert!(page.contains("# UNIT tether_publish_fanout_seconds seconds\n"), "{page}");
    assert!(page.contains("\ntether_publish_fanout_seconds_count 3\n"), "{page}");
    assert!(page.contains("\ntether_publish_fanout_seconds_sum 3.00015\n"), "{page}");
    // Cumulative buckets: 1 up to 50 µs, 1 more by 200 µs, the 3 s only in +Inf.
    assert!(page.contains("\ntether_publish_fanout_seconds_bucket{le=\"0.00005\"} 1\n"), "{page}");
    assert!(page.contains("\ntether_publish_fanout_seconds_bucket{le=\"0.0001\"} 1\n"), "{page}");
    assert!(page.contains("\ntether_publish_fanout_seconds_bucket{le=\"0.0002\"} 2\n"), "{page}");
    assert!(page.contains("\ntether_publish_fanout_seconds_bucket{le=\"0.8192\"} 2\n"), "{page}");
    assert!(page.contains("\ntether_publish_fanout_seconds_bucket{le=\"+Inf\"} 3\n"), "{page}");
    assert_eq!(page.matches("tether_publish_fanout_seconds_bucket{").count(), 16, "{page}");
}

#[tokio::test]
async fn a_page_is_built_at_most_once_per_ttl_and_concurrent_scrapes_share_a_build() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let builds = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&builds);
    let cache = Arc::new(cache::PageCache::new(Duration::from_millis(300), move || {
        let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
        // A slow build, so that the scrapes below arrive while it runs.
        std::thread::sleep(Duration::from_millis(50));
        Ok(format!("build {n}\n"))
    }));
    let scrapes: Vec<_> = (0..20)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.get().await.unwrap() })
        })
        .collect();
    for scrape in scrapes {
        assert_eq!(scrape.await.unwrap(), "build 1\n");
    }
    assert_eq!(builds.load(Ordering::SeqCst), 1, "one build for 20 scrapes at once");
    assert_eq!(cache.get().await.unwrap(), "build 1\n", "still cached");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.get().await.unwrap(), "build 2\n", "rebuilt once the TTL passed");
    assert_eq!(builds.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_build_is_not_cached() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let fail = Arc::new(AtomicBool::new(true));
    let failing = Arc::clone(&fail);
    let cache = cache::PageCache::new(Duration::from_secs(60), move || {
        if failing.load(Ordering::SeqCst) {
            Err(std::fmt::Error)
        } else {
            Ok("page\n".to_owned())
        }
    });
    assert!(cache.get().await.is_err());
    fail.store(false, Ordering::SeqCst);
    assert_eq!(cache.get().await.unwrap(), "page\n");
}
