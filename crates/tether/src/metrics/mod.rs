//! Prometheus metrics: `GET /metrics` in the OpenMetrics text format (docs/observability.md),
//! served with `--metrics` on the main port, or only on `--internal-port` when that is set.
//!
//! The page is one prometheus-client [`Registry`] holding:
//! - the families read at scrape time ([`collector`]): connections, messages, bytes, closes,
//!   rejections, queues from tether-tokio's `ServerStats`, channels, subscriptions, publications
//!   and history from the hub, build info and uptime. The page adds nothing to a message's path
//!   for them (the server and the hub keep those counts anyway);
//! - `tether_publish_fanout_seconds` ([`histogram`]), which the hub feeds through `Hub::on_fanout`
//!   once per publish that reached a subscriber: two relaxed atomic adds, no lock;
//! - on the Redis engine, `tether_redis_publish_seconds` (the same histogram type), fed through
//!   `Hub::on_redis_publish` with each publish script's round trip, and `tether_redis_up` and
//!   `tether_redis_errors_total` read at scrape time from `Hub::engine_status`. None of the three
//!   is on the page on the memory engine;
//! - `tether_api_requests_total` ([`api_calls`]), counted by the server API as it answers.
//!
//! Building the page walks the open connections once (`ServerStats::snapshot`, `Hub::stats`),
//! under the server's registry lock. So that whoever reaches `/metrics` cannot make the server do
//! that in a loop, the encoded page is cached ([`PageCache`]): at most one build per
//! [`PAGE_TTL`], every scrape in between gets the same bytes.

mod api_calls;
mod cache;
mod collector;
mod histogram;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Registry, Unit};
use tether_hub::Hub;
use tether_tokio::ServerStats;

pub use api_calls::ApiCalls;

/// Where the page is served.
pub const PATH: &str = "/metrics";

/// The content type of the OpenMetrics text format, as prometheus-client's docs give it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

use cache::PageCache;
use histogram::FanoutHistogram;

/// How long an encoded page is served again before a scrape builds a new one (Prometheus scrapes
/// every 15 s or so: a page at most this old is as good as a new one).
pub const PAGE_TTL: std::time::Duration = std::time::Duration::from_millis(200);

/// The metrics page of one server and its hub (a cheap handle).
#[derive(Clone)]
pub struct Metrics {
    page: Arc<PageCache>,
    calls: ApiCalls,
}

impl Metrics {
    /// The page's families over `stats` and `hub`: the collector read at scrape time, the fan-out
    /// histogram (set as the hub's `on_fanout` observer), on the Redis engine the publish round
    /// trip histogram (its `on_redis_publish` observer), the API calls and build info. Call it
    /// once per hub: a hub takes one observer of each.
    pub fn new(stats: ServerStats, hub: &Hub) -> Self {
        let mut registry = Registry::default();
        let fanout = FanoutHistogram::default();
        registry.register_with_unit(
            "tether_publish_fanout",
            "Time from a publish's start to its last subscriber's message queued, for publishes that reached a subscriber",
            Unit::Seconds,
            fanout.clone(),
        );
        if !hub.on_fanout(move |elapsed| fanout.observe(elapsed)) {
            tracing::warn!("the hub already has a fan-out observer: tether_publish_fanout_seconds stays empty");
        }
        let redis_publish = FanoutHistogram::default();
        let observer = redis_publish.clone();
        if hub.on_redis_publish(move |elapsed| observer.observe(elapsed)) {
            registry.register_with_unit(
                "tether_redis_publish",
                "Round trip of each publish script to Redis (offset, history and pub/sub in one call)",
                Unit::Seconds,
                redis_publish,
            );
        } else if hub.engine_status() != tether_hub::EngineStatus::Memory {
            tracing::warn!("the hub already has a Redis publish observer: tether_redis_publish_seconds is not served");
        }
        let calls = ApiCalls::default();
        registry.register("tether_api_requests", "Server API calls answered, by method and status", calls.family());
        registry.register_collector(Box::new(collector::Sources::new(stats, hub.clone())));
        let page = PageCache::new(PAGE_TTL, move || {
            let mut page = String::with_capacity(16 * 1024);
            encode(&mut page, &registry).map(|()| page)
        });
        Self { page: Arc::new(page), calls }
    }

    /// `GET /metrics` (and HEAD); any other method gets 405.
    pub fn router(&self) -> Router {
        Router::new().route(PATH, get(scrape)).with_state(Arc::clone(&self.page))
    }

    /// The counter of server API calls, for `api::ApiState::with_calls`.
    pub fn api_calls(&self) -> ApiCalls {
        self.calls.clone()
    }
}

async fn scrape(State(page): State<Arc<PageCache>>) -> Response {
    match page.get().await {
        Ok(page) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], page).into_response(),
        Err(std::fmt::Error) => {
            tracing::error!("encoding the metrics page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests;
