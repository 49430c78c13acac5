//! `tether_publish_fanout_seconds`: a histogram the hub feeds once per publish that reached a
//! subscriber (`Hub::on_fanout`), lock-free. `tether_redis_publish_seconds` (the publish script's
//! round trip, `Hub::on_redis_publish`) is one too: a Redis round trip on a LAN is 100 µs to a few
//! ms, inside the same buckets; a call that times out lands in `+Inf`.
//!
//! prometheus-client's own `Histogram` takes a mutex in every `observe`, which every publish would
//! then contend on. Here the buckets are fixed, so each is an [`AtomicU64`]: an observation is one
//! relaxed `fetch_add` on its bucket and one on the sum (in nanoseconds), nothing else. The count
//! is not a counter of its own but the sum of the buckets, read at scrape time: OpenMetrics wants
//! `_count` equal to the `+Inf` bucket (Python's parser refuses the page otherwise), which two
//! counters updated apart could not promise, and it saves a third atomic add per publish.
//!
//! The buckets are read one by one with relaxed loads, so a scrape racing publishes may see one
//! publish in its bucket but not yet in the sum (or the reverse): off by one observation for one
//! scrape, never lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// The finite buckets: 50 µs doubling 15 times, up to about 0.82 s (then `+Inf`). A fan-out to a
/// handful of local subscribers takes microseconds; tens of thousands, milliseconds.
pub(super) const BUCKETS: usize = 15;

/// The first bucket's upper bound, in nanoseconds.
const FIRST_NANOS: u64 = 50_000;

/// The upper bound of finite bucket `index` (< [`BUCKETS`]), in nanoseconds: 50 µs · 2^index.
pub(super) const fn bound_nanos(index: usize) -> u64 {
    FIRST_NANOS << index
}

/// The bucket of an observation of `nanos`: the first whose bound is at least `nanos` (bounds are
/// inclusive, as OpenMetrics' `le` says), or [`BUCKETS`] for `+Inf`.
pub(super) fn bucket_of(nanos: u64) -> usize {
    (0..BUCKETS).find(|&index| nanos <= bound_nanos(index)).unwrap_or(BUCKETS)
}

#[derive(Debug, Default)]
struct Inner {
    /// Observations per bucket (not cumulative), the last one `+Inf`.
    buckets: [AtomicU64; BUCKETS + 1],
    /// The sum of the observations, in nanoseconds (584 years before it wraps).
    sum_nanos: AtomicU64,
}

/// The fan-out histogram (a cheap handle on shared atomics).
#[derive(Debug, Clone, Default)]
pub(super) struct FanoutHistogram(Arc<Inner>);

impl FanoutHistogram {
    /// One fan-out that took `elapsed`: two relaxed atomic adds.
    pub(super) fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The sum in seconds, the count, and each bucket's upper bound in seconds with its own
    /// (non-cumulative) count, as `MetricEncoder::encode_histogram` takes them.
    pub(super) fn read(&self) -> (f64, u64, [(f64, u64); BUCKETS + 1]) {
        let mut buckets = [(f64::INFINITY, 0); BUCKETS + 1];
        for (index, (bound, count)) in buckets.iter_mut().enumerate() {
            if index < BUCKETS {
                *bound = Duration::from_nanos(bound_nanos(index)).as_secs_f64();
            }
            *count = self.0.buckets[index].load(Ordering::Relaxed);
        }
        let count = buckets.iter().map(|(_, count)| count).fold(0u64, |sum, n| sum.wrapping_add(*n));
        let sum = Duration::from_nanos(self.0.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        (sum, count, buckets)
    }
}

impl EncodeMetric for FanoutHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let (sum, count, buckets) = self.read();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
