//! The fan-out report: the readable lines and the JSON object `bench/run.sh` and the tests parse,
//! from what the subscribers and publishers added up. Nothing here measures; it only counts
//! errors once and words the result.

use serde_json::json;

use super::publishers::Published;
use super::subscribers::{Acks, GroupReceived, Received};
use crate::bench::common::Outcome;
use crate::bench::stats::{self, Summary};

/// The subscribers of one subscriber URL (`--subscriber-url`; URL itself without it).
pub(super) struct Group<'a> {
    pub url: &'a str,
    pub subscribed: usize,
    pub received: GroupReceived,
    pub latency: Summary,
}

/// Everything the report is made of.
pub(super) struct Report<'a> {
    /// The publishers' URL.
    pub url: &'a str,
    /// The subscribers, per URL, in the order given.
    pub groups: Vec<Group<'a>>,
    /// The asked-for total rate and seconds of publishing.
    pub rate: f64,
    pub duration: f64,
    /// Subscriber connections that could not be opened.
    pub connect_failed: usize,
    pub acks: Acks,
    pub publishers: usize,
    pub published: Published,
    pub received: Received,
    pub latency: Summary,
    /// The generator's CPU over the publishing interval, in % of one core.
    pub cpu: f64,
    /// When the first message went out, in microseconds since the run's origin (`u64::MAX`: never).
    pub first_publish_us: u64,
}

impl Report<'_> {
    pub(super) fn outcome(self) -> Outcome {
        let Self { url, rate, duration, connect_failed, acks, publishers, published, received, latency, cpu, .. } =
            &self;
        let (subscribed, subscribe_failed) = (acks.subscribed, acks.failed);
        let (sent, delivered) = (&published.totals, &received.totals);
        let unanswered = published.unanswered();
        let (delivery_window, deliveries_per_sec) = self.delivery_rate();
        let errors = sent.rate_limited
            + sent.other_errors
            + unanswered
            + published.failures
            + delivered.missing
            + delivered.malformed
            + received.failures
            + subscribe_failed as u64;
        let expected = sent.acked * subscribed as u64;
        let mut human = format!(
            "fanout {}: {subscribed} subscribers ({} could not connect, {subscribe_failed} could not subscribe), \
             {publishers} publisher{} at {} messages/s in total, {:.1} s\n\
             \x20 published   {} acknowledged of {} sent ({} rate-limited, {} other errors, {unanswered} unanswered)\n\
             \x20 deliveries  {} of {expected} expected ({deliveries_per_sec:.1}/s over {delivery_window:.3} s, \
             first publish to last delivery)\n\
             \x20 latency     {} (publish to delivery)\n\
             \x20 errors      {errors}\n\
             \x20 client CPU  {cpu:.1}% of one core\n",
            url,
            connect_failed,
            if *publishers == 1 { "" } else { "s" },
            rate,
            duration,
            sent.acked,
            sent.sent,
            sent.rate_limited,
            sent.other_errors,
            delivered.deliveries,
            latency.line(),
        );
        if self.groups.len() > 1 {
            for group in &self.groups {
                human.push_str(&format!(
                    "  subscribers on {}: {}, {} deliveries ({} missing), latency {}\n",
                    group.url,
                    group.subscribed,
                    group.received.deliveries,
                    group.received.missing,
                    group.latency.line()
                ));
            }
        }
        for (what, detail) in [
            ("publish error", &sent.first_error),
            ("publisher failure", &sent.failure),
            ("subscriber failure", &received.first_failure),
        ] {
            if let Some(detail) = detail {
                human.push_str(&format!("  first {what}: {detail}\n"));
            }
        }
        let groups: Vec<_> = self
            .groups
            .iter()
            .map(|group| {
                json!({
                    "url": group.url,
                    "subscribers": group.subscribed,
                    "deliveries": group.received.deliveries,
                    "missing": group.received.missing,
                    "p50_us": group.latency.p50,
                    "p90_us": group.latency.p90,
                    "p99_us": group.latency.p99,
                    "p999_us": group.latency.p999,
                    "max_us": group.latency.max,
                })
            })
            .collect();
        let json = json!({
            "mode": "fanout",
            "url": url,
            "subscribers": subscribed,
            "connect_failed": connect_failed,
            "subscribe_failed": subscribe_failed,
            "publishers": publishers,
            "rate": rate,
            "duration_s": duration,
            "published": sent.acked,
            "publish_errors": sent.rate_limited + sent.other_errors + unanswered,
            "rate_limited": sent.rate_limited,
            "deliveries": delivered.deliveries,
            "expected_deliveries": expected,
            "deliveries_per_sec": stats::round(deliveries_per_sec, 1),
            "delivery_window_s": stats::round(delivery_window, 6),
            "p50_us": latency.p50,
            "p90_us": latency.p90,
            "p99_us": latency.p99,
            "p999_us": latency.p999,
            "max_us": latency.max,
            "missing": delivered.missing,
            "errors": errors,
            "client_cpu_percent": cpu,
            "subscriber_urls": groups,
        });
        Outcome { human, json, connected: true }
    }

    /// The delivery window in seconds and the deliveries per second over it. The window is the
    /// time the deliveries really took, first publish to last delivery: when the server falls
    /// behind, deliveries arrive after the publishing window and the rate shows it.
    fn delivery_rate(&self) -> (f64, f64) {
        let deliveries = self.received.totals.deliveries;
        let window = if deliveries > 0 && self.first_publish_us != u64::MAX {
            self.received.totals.last_delivery_us.saturating_sub(self.first_publish_us) as f64 / 1e6
        } else {
            0.0
        };
        let per_sec = if window > 0.0 { deliveries as f64 / window } else { 0.0 };
        (window, per_sec)
    }
}
