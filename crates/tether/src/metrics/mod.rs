//! Prometheus metrics: `GET /metrics` in the OpenMetrics text format (docs/observability.md),
//! served with `--metrics` on the main port, or only on `--internal-port` when that is set.
//!
//! The page is one prometheus-client [`Registry`] holding:
//! - the families read at scrape time ([`collector`]): connections, messages, bytes, closes,
//!   rejections, queues from tether-tokio's `ServerStats`, channels, subscriptions, publications
//!   and history from the hub, build info and uptime. The hot path pays nothing for them;
//! - `tether_publish_fanout_seconds`, a histogram the hub feeds through `Hub::on_fanout` once per
//!   publish that reached a subscriber (a publish already takes locks and allocates; one more short
//!   lock does not show);
//! - `tether_api_requests_total` ([`api_calls`]), counted by the server API as it answers.
//!
//! A scrape walks the open connections once (`ServerStats::snapshot`, `Hub::stats`): cheap at
//! Prometheus's usual interval, but not something to let the world call in a loop, which is one
//! more reason to serve it on the internal port.

mod api_calls;
mod collector;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tether_hub::Hub;
use tether_tokio::ServerStats;

pub use api_calls::ApiCalls;

/// Where the page is served.
pub const PATH: &str = "/metrics";

/// The content type of the OpenMetrics text format, as prometheus-client's docs give it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The fan-out histogram's buckets: 50 µs doubling 15 times, up to about 0.82 s (then `+Inf`). A
/// fan-out to a handful of local subscribers takes microseconds; tens of thousands, milliseconds.
fn fanout_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(50e-6, 2.0, 15)
}

/// The metrics page of one server and its hub (a cheap handle).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    calls: ApiCalls,
}

impl Metrics {
    /// The page's families over `stats` and `hub`: the collector read at scrape time, the fan-out
    /// histogram (set as the hub's `on_fanout` observer), the API calls and build info. Call it
    /// once per hub: a hub takes one fan-out observer.
    pub fn new(stats: ServerStats, hub: &Hub) -> Self {
        let mut registry = Registry::default();
        let fanout = Histogram::new(fanout_buckets());
        registry.register_with_unit(
            "tether_publish_fanout",
            "Time from a publish's start to its last subscriber's message queued, for publishes that reached a subscriber",
            Unit::Seconds,
            fanout.clone(),
        );
        if !hub.on_fanout(move |elapsed| fanout.observe(elapsed.as_secs_f64())) {
            tracing::warn!("the hub already has a fan-out observer: tether_publish_fanout_seconds stays empty");
        }
        let calls = ApiCalls::default();
        registry.register("tether_api_requests", "Server API calls answered, by method and status", calls.family());
        registry.register_collector(Box::new(collector::Sources::new(stats, hub.clone())));
        Self { registry: Arc::new(registry), calls }
    }

    /// `GET /metrics` (and HEAD); any other method gets 405.
    pub fn router(&self) -> Router {
        Router::new().route(PATH, get(scrape)).with_state(Arc::clone(&self.registry))
    }

    /// The counter of server API calls, for `api::ApiState::with_calls`.
    pub fn api_calls(&self) -> ApiCalls {
        self.calls.clone()
    }
}

async fn scrape(State(registry): State<Arc<Registry>>) -> Response {
    let mut page = String::with_capacity(16 * 1024);
    match encode(&mut page, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], page).into_response(),
        Err(std::fmt::Error) => {
            tracing::error!("encoding the metrics page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests;
