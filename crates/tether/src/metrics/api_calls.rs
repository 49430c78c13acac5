//! `tether_api_requests_total{method,status}`: the server API's calls, counted by the API's
//! handler as it answers (`api::handle`).
//!
//! Unlike the collector's families this one is counted as it happens: an API call is a rare,
//! comparatively slow HTTP request (a label lookup under a read lock is nothing beside it), and the
//! API has no counters of its own to read at scrape time. Both labels come from fixed sets: the
//! method is an entry of the API's method list or `(unknown)` (never the caller's text, which could
//! mint a series per request), the status one the API chose.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// The label values of one series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CallLabels {
    method: &'static str,
    status: u16,
}

/// Counts server API calls by method and status (a cheap handle on one shared family).
#[derive(Clone, Debug, Default)]
pub struct ApiCalls(Family<CallLabels, Counter>);

impl ApiCalls {
    /// One call of `method` (an entry of the API's method list, or `"(unknown)"`) answered with
    /// `status`.
    pub fn record(&self, method: &'static str, status: u16) {
        self.0.get_or_create(&CallLabels { method, status }).inc();
    }

    /// The family, to register with the page's registry.
    pub(super) fn family(&self) -> Family<CallLabels, Counter> {
        self.0.clone()
    }
}
