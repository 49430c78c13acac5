//! The families read at scrape time: a [`Collector`] that takes one [`ServerStats::snapshot`] and
//! one [`Hub::stats`] per scrape and encodes them as const metrics.
//!
//! Nothing here runs on a message's path. The server counts in per-connection fields written by
//! each connection's own task (tether-tokio's `ServerStats`), the hub in its own counters, whether
//! or not `--metrics` is on; this file only reads them when a page is built. The echo benchmark
//! with metrics on and off: see docs/benchmarks.md, section "Metrics on and off".
//!
//! Labels are low-cardinality by construction: `route` is one of the server's routes (fixed at
//! startup), `status` an HTTP status the server chose, `code` a close code with peer-chosen
//! application codes grouped as `3xxx` / `4xxx` by tether-tokio, `kind` text or binary. No label
//! ever carries a channel, a user or a connection id.

use std::fmt;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use tether_hub::{EngineStatus, Hub};
use tether_tokio::{ServerStats, StatsSnapshot};

/// What the hub reports at one scrape (the fields of `HubStats` the page shows).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct HubReadings {
    pub channels: u64,
    pub subscriptions: u64,
    pub publications: u64,
    pub users: u64,
    pub history_entries: u64,
    pub history_bytes: u64,
}

/// What the Redis engine reports at one scrape; the page has no Redis families on the memory
/// engine.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct RedisReadings {
    /// Both of the node's Redis connections (commands, pub/sub) work now.
    pub up: bool,
    /// Redis calls that failed or timed out since the start.
    pub errors: u64,
}

/// Everything one scrape reads, taken once so that the page is one consistent look.
#[derive(Debug, Default, Clone)]
pub(super) struct Readings {
    pub server: StatsSnapshot,
    pub hub: HubReadings,
    /// `None` on the memory engine.
    pub redis: Option<RedisReadings>,
    /// Seconds since the metrics were set up (at startup).
    pub uptime_seconds: f64,
}

/// The sources of the page: the server's counters, the hub and the start time.
pub(super) struct Sources {
    stats: ServerStats,
    hub: Hub,
    started: Instant,
}

impl Sources {
    pub(super) fn new(stats: ServerStats, hub: Hub) -> Self {
        Self { stats, hub, started: Instant::now() }
    }

    fn read(&self) -> Readings {
        let hub = self.hub.stats();
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Readings {
            server: self.stats.snapshot(),
            hub: HubReadings {
                channels: count(hub.channels),
                subscriptions: count(hub.subscriptions),
                publications: hub.publications,
                users: count(hub.users),
                history_entries: count(hub.history_entries),
                history_bytes: count(hub.history_bytes),
            },
            redis: match self.hub.engine_status() {
                EngineStatus::Redis { up, errors } => Some(RedisReadings { up, errors }),
                _ => None,
            },
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources").field("started", &self.started).finish_non_exhaustive()
    }
}

impl Collector for Sources {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        encode(&self.read(), encoder)
    }
}

/// The page's families of `readings`. prometheus-client appends `_total` to a counter's name and
/// the unit to a name registered with one, so the names here are the exposed ones without them
/// (`tether_closes` is exposed as `tether_closes_total`, `tether_queued` + bytes as
/// `tether_queued_bytes`).
pub(super) fn encode(readings: &Readings, mut encoder: DescriptorEncoder) -> fmt::Result {
    let server = &readings.server;
    let routes = &server.routes;
    let e = &mut encoder;
    family(e, "tether_connections", "Connections open now, by route", None, MetricType::Gauge, |f| {
        routes.iter().try_for_each(|r| gauge_sample(f, &[("route", r.path.as_str())], r.open))
    })?;
    family(
        e,
        "tether_connections_accepted",
        "WebSocket upgrades accepted since the server started, by route",
        None,
        MetricType::Counter,
        |f| routes.iter().try_for_each(|r| counter_sample(f, &[("route", r.path.as_str())], r.accepted)),
    )?;
    family(
        e,
        "tether_handshake_rejections",
        "Upgrades refused before the 101, by the HTTP status the client got",
        None,
        MetricType::Counter,
        |f| {
            server.handshake_rejections.iter().try_for_each(|(status, n)| counter_sample(f, &[("status", *status)], *n))
        },
    )?;
    family(
        e,
        "tether_messages_received",
        "Whole messages received (after reassembly), by route and kind; listener routes only",
        None,
        MetricType::Counter,
        |f| {
            routes.iter().try_for_each(|r| {
                let route = r.path.as_str();
                counter_sample(f, &[("route", route), ("kind", "text")], r.text_received)?;
                counter_sample(f, &[("route", route), ("kind", "binary")], r.binary_received)
            })
        },
    )?;
    family(
        e,
        "tether_messages_sent",
        "Messages the protocol core encoded into a connection's output, by route (a broadcast counts once per connection; sends dropped at close are not counted)",
        None,
        MetricType::Counter,
        |f| routes.iter().try_for_each(|r| counter_sample(f, &[("route", r.path.as_str())], r.messages_sent)),
    )?;
    let sum = |field: fn(&tether_tokio::RouteStats) -> u64| routes.iter().map(field).fold(0u64, u64::saturating_add);
    counter(
        e,
        "tether_bytes_received",
        "WebSocket bytes read from clients, frames as on the wire (after compression, before TLS)",
        sum(|r| r.bytes_received),
    )?;
    counter(
        e,
        "tether_bytes_sent",
        "WebSocket bytes written to clients, frames as on the wire (after compression, before TLS)",
        sum(|r| r.bytes_sent),
    )?;
    family(
        e,
        "tether_closes",
        "Connections closed, by close code (the server's when it closed first, else the peer's; peer application codes as 3xxx/4xxx)",
        None,
        MetricType::Counter,
        |f| server.closes.iter().try_for_each(|(code, n)| counter_sample(f, &[("code", code.as_str())], *n)),
    )?;
    counter(
        e,
        "tether_slow_consumer_disconnects",
        "Connections closed with 1008 because their send queue overflowed",
        server.slow_consumer_disconnects,
    )?;
    gauge(
        e,
        "tether_queued",
        "Bytes queued for the open connections and not yet written",
        Some(&Unit::Bytes),
        sum(|r| r.queued_bytes),
    )?;
    let hub = &readings.hub;
    gauge(e, "tether_channels", "Channels held by the hub (with subscribers or history)", None, hub.channels)?;
    gauge(e, "tether_subscriptions", "Subscriptions over all channels", None, hub.subscriptions)?;
    counter(
        e,
        "tether_publications",
        "Publications since the server started, by the server and clients",
        hub.publications,
    )?;
    gauge(
        e,
        "tether_users",
        "Distinct users connected over the token protocol (anonymous ones not counted)",
        None,
        hub.users,
    )?;
    gauge(e, "tether_history_entries", "Messages held in channel histories", None, hub.history_entries)?;
    gauge(e, "tether_history", "Bytes held in channel histories", Some(&Unit::Bytes), hub.history_bytes)?;
    if let Some(redis) = &readings.redis {
        gauge(
            e,
            "tether_redis_up",
            "1 while both of this node's Redis connections (commands and pub/sub) work, else 0",
            None,
            u64::from(redis.up),
        )?;
        counter(
            e,
            "tether_redis_errors",
            "Redis calls that failed or timed out since the server started",
            redis.errors,
        )?;
    }
    gauge(e, "tether_uptime", "Seconds since the server started", Some(&Unit::Seconds), readings.uptime_seconds)?;
    family(e, "tether_build_info", "The running build; always 1", None, MetricType::Gauge, |f| {
        gauge_sample(f, &[("version", env!("CARGO_PKG_VERSION"))], 1u64)
    })?;
    Ok(())
}

/// A family's descriptor, then its samples; `None` unit for a unit-less name.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    samples: impl FnOnce(&mut prometheus_client::encoding::MetricEncoder) -> fmt::Result,
) -> fmt::Result {
    let help = format!("{help}.");
    let mut metric = encoder.encode_descriptor(name, &help, unit, kind)?;
    samples(&mut metric)
}

fn counter_sample(
    family: &mut prometheus_client::encoding::MetricEncoder,
    labels: &impl EncodeLabelSet,
    value: u64,
) -> fmt::Result {
    ConstCounter::new(value).encode(family.encode_family(labels)?)
}

fn gauge_sample(
    family: &mut prometheus_client::encoding::MetricEncoder,
    labels: &impl EncodeLabelSet,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    ConstGauge::new(value).encode(family.encode_family(labels)?)
}

/// A counter without labels.
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    let help = format!("{help}.");
    metric.encode(encoder.encode_descriptor(name, &help, None, metric.metric_type())?)
}

/// A gauge without labels.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    let metric = ConstGauge::new(value);
    let help = format!("{help}.");
    metric.encode(encoder.encode_descriptor(name, &help, unit, MetricType::Gauge)?)
}
