//! The dashboard's series: the server's totals read from its counters, turned into a sample of
//! counts and rates per second, and the last [`RING`] samples kept for the chart (a bounded ring:
//! five minutes at one a second).
//!
//! The admin socket's own route is left out of every figure: the dashboard watches the server's
//! clients, not itself.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use tether_tokio::StatsSnapshot;

use super::paths::SOCKET_PATH;

/// Samples kept: five minutes at one a second.
pub const RING: usize = 300;
/// Time between samples.
pub const EVERY: Duration = Duration::from_secs(1);

/// The server's totals at one moment, the admin socket's route left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub connections: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub queued_bytes: u64,
    pub slow_consumer_closes: u64,
}

impl Totals {
    pub fn of(snapshot: &StatsSnapshot) -> Self {
        let mut totals = Self { slow_consumer_closes: snapshot.slow_consumer_disconnects, ..Self::default() };
        for route in snapshot.routes.iter().filter(|route| route.path != SOCKET_PATH) {
            totals.connections += route.open;
            totals.messages_in += route.text_received + route.binary_received;
            totals.messages_out += route.messages_sent;
            totals.bytes_in += route.bytes_received;
            totals.bytes_out += route.bytes_sent;
            totals.queued_bytes += route.queued_bytes;
        }
        totals
    }
}

/// One point of the dashboard: counts now, and rates per second since the previous sample.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// Wall-clock time, milliseconds since the Unix epoch (the chart's x axis).
    pub t: u64,
    pub uptime_secs: u64,
    pub connections: u64,
    pub users: usize,
    pub channels: usize,
    pub subscriptions: usize,
    pub messages_in_per_sec: f64,
    pub messages_out_per_sec: f64,
    pub bytes_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
    pub queued_bytes: u64,
    pub slow_consumer_closes: u64,
}

/// What the hub counts, for a sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct HubCounts {
    pub users: usize,
    pub channels: usize,
    pub subscriptions: usize,
}

/// The rates' memory and the ring.
pub struct Series {
    last: Option<(Instant, Totals)>,
    ring: VecDeque<Sample>,
}

impl Default for Series {
    fn default() -> Self {
        Self { last: None, ring: VecDeque::with_capacity(RING) }
    }
}

impl Series {
    /// Records the totals read at `now`; returns the new sample. The first sample's rates are 0.
    pub fn record(
        &mut self,
        now: Instant,
        wall: SystemTime,
        uptime: Duration,
        totals: Totals,
        hub: HubCounts,
    ) -> Sample {
        let rate = |current: u64, previous: u64, secs: f64| {
            if secs > 0.0 {
                current.saturating_sub(previous) as f64 / secs
            } else {
                0.0
            }
        };
        let (previous, secs) = match self.last {
            Some((at, previous)) => (previous, now.duration_since(at).as_secs_f64()),
            None => (totals, 0.0),
        };
        let sample = Sample {
            t: wall.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64),
            uptime_secs: uptime.as_secs(),
            connections: totals.connections,
            users: hub.users,
            channels: hub.channels,
            subscriptions: hub.subscriptions,
            messages_in_per_sec: rate(totals.messages_in, previous.messages_in, secs),
            messages_out_per_sec: rate(totals.messages_out, previous.messages_out, secs),
            bytes_in_per_sec: rate(totals.bytes_in, previous.bytes_in, secs),
            bytes_out_per_sec: rate(totals.bytes_out, previous.bytes_out, secs),
            queued_bytes: totals.queued_bytes,
            slow_consumer_closes: totals.slow_consumer_closes,
        };
        self.last = Some((now, totals));
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back(sample.clone());
        sample
    }

    /// The samples kept, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.ring.iter()
    }
}

#[cfg(test)]
mod tests {
    use tether_tokio::RouteStats;

    use super::*;

    fn route(path: &str, open: u64, messages: u64) -> RouteStats {
        let mut route = RouteStats::default();
        route.path = path.into();
        route.open = open;
        route.text_received = messages;
        route.binary_received = 1;
        route.messages_sent = messages * 2;
        route.bytes_received = messages * 10;
        route.bytes_sent = messages * 20;
        route.queued_bytes = 5;
        route
    }

    #[test]
    fn totals_leave_the_admin_socket_out() {
        let mut snapshot = StatsSnapshot::default();
        snapshot.routes = vec![route("/admin/ws", 7, 100), route("/echo", 2, 3), route("/tether", 3, 4)];
        snapshot.slow_consumer_disconnects = 9;
        let totals = Totals::of(&snapshot);
        let expected = Totals {
            connections: 5,
            messages_in: 9,
            messages_out: 14,
            bytes_in: 70,
            bytes_out: 140,
            queued_bytes: 10,
            slow_consumer_closes: 9,
        };
        assert_eq!(totals, expected);
    }

    #[test]
    fn rates_are_per_second_between_samples_and_the_ring_is_bounded() {
        let mut series = Series::default();
        let start = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000);
        let hub = HubCounts { users: 1, channels: 2, subscriptions: 3 };
        let totals = |n: u64| Totals { connections: n, messages_in: n * 10, bytes_out: n * 100, ..Totals::default() };
        let first = series.record(start, wall, Duration::ZERO, totals(1), hub);
        assert_eq!((first.t, first.messages_in_per_sec, first.connections), (1_000_000, 0.0, 1));
        let second = series.record(start + Duration::from_secs(2), wall, Duration::from_secs(2), totals(3), hub);
        assert_eq!((second.messages_in_per_sec, second.bytes_out_per_sec), (10.0, 100.0));
        assert_eq!((second.users, second.channels, second.subscriptions, second.uptime_secs), (1, 2, 3, 2));
        for i in 0..(RING as u64 + 10) {
            series.record(start + Duration::from_secs(3 + i), wall, Duration::ZERO, totals(4 + i), hub);
        }
        assert_eq!(series.samples().count(), RING);
        assert_eq!(series.samples().next().unwrap().connections, 4 + 10, "the oldest were dropped");
    }
}
