//! The server's counters: [`ServerStats`], read as a [`StatsSnapshot`] by whatever exports them
//! (`tether serve`'s `/metrics`, its admin page).
//!
//! Nothing here is touched per message. A connection's own task counts what it moves in the
//! connection's shared state (`counts.rs`: a load and a store, no atomic read-modify-write); a
//! snapshot sums the open connections under the registry's lock and adds what closed connections
//! left behind. A connection's counts move into its route's totals under that same lock as it
//! leaves the registry, so a snapshot sees them exactly once and every counter only grows. What
//! happens once per connection or per refusal (accepted, opened, closed by code, refused by
//! status, slow consumers) is counted as it happens.
//!
//! Label values stay few whatever clients do: routes are the server's own paths, statuses are
//! 400..=599, and close codes are exact only when the server chose them or the protocol limits
//! them (below 3000); a peer's application code (3000..=4999) is grouped as `3xxx` or `4xxx`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tether_proto::CloseCode;

use super::registry::Registry;
use crate::conn::Conn;
use crate::counts::ConnCounts;
use crate::driver::{Ended, Initiator};

/// The counters of one server: a cheap handle (an `Arc` inside); clones read the same counters.
///
/// [`crate::Server::stats`] gives it before the server is bound, [`crate::ServerHandle::stats`]
/// once it runs; routes appear in snapshots from the bind on.
#[derive(Clone)]
pub struct ServerStats {
    inner: Arc<StatsInner>,
}

struct StatsInner {
    registry: Registry,
    /// Every route, sorted by path; set once, at bind.
    routes: OnceLock<Vec<RouteCounters>>,
    /// Refusals before the 101 by status, 400..=599.
    rejections: [AtomicU64; REJECTION_STATUSES],
    closes: Mutex<BTreeMap<CloseLabel, u64>>,
    slow_consumers: AtomicU64,
}

/// Statuses 400..=599.
const REJECTION_STATUSES: usize = 200;

struct RouteCounters {
    path: Arc<str>,
    accepted: AtomicU64,
    open: AtomicU64,
    /// What the route's closed connections moved; changed only under the registry's lock.
    retired: Mutex<ConnCounts>,
}

/// A close code as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CloseLabel {
    Exact(u16),
    /// A peer's application code in 3000..=3999 or 4000..=4999, by its first digit.
    Application(u8),
}

impl CloseLabel {
    fn of(code: CloseCode, initiator: Initiator) -> Self {
        match code.0 {
            code @ 3000..=4999 if initiator != Initiator::Server => Self::Application((code / 1000) as u8),
            code => Self::Exact(code),
        }
    }

    fn text(self) -> String {
        match self {
            Self::Exact(code) => code.to_string(),
            Self::Application(thousands) => format!("{thousands}xxx"),
        }
    }
}

/// The server's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Every route of the server (listener and stream API), sorted by path, zeros included.
    pub routes: Vec<RouteStats>,
    /// (HTTP status, refusals) of upgrades refused before the 101, sorted by status; only the
    /// statuses seen.
    pub handshake_rejections: Vec<(u16, u64)>,
    /// (label, connections closed), sorted by label: the close code in decimal (`"1000"`,
    /// `"1006"`, `"4001"`), the one the server sent when it started the close, else the peer's;
    /// a peer's application code is grouped as `"3xxx"` or `"4xxx"`. Listener-API routes only.
    pub closes: Vec<(String, u64)>,
    /// Connections closed with 1008 because their send queue overflowed.
    pub slow_consumer_disconnects: u64,
}

impl StatsSnapshot {
    /// The counts of every route together.
    pub fn totals(&self) -> RouteStats {
        let mut total = RouteStats { path: String::new(), ..RouteStats::default() };
        for route in &self.routes {
            total.open += route.open;
            total.accepted += route.accepted;
            total.text_received += route.text_received;
            total.binary_received += route.binary_received;
            total.messages_sent += route.messages_sent;
            total.bytes_received += route.bytes_received;
            total.bytes_sent += route.bytes_sent;
            total.queued_bytes += route.queued_bytes;
        }
        total
    }
}

/// One route's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteStats {
    /// The route's path.
    pub path: String,
    /// Connections open on it now.
    pub open: u64,
    /// Upgrades it accepted since the server started.
    pub accepted: u64,
    /// Text messages received (whole messages). Listener-API routes only: a stream-API handler
    /// owns its socket, and its messages are not counted.
    pub text_received: u64,
    /// Binary messages received.
    pub binary_received: u64,
    /// Messages sent (a broadcast counts once per connection).
    pub messages_sent: u64,
    /// WebSocket bytes read from the transport (frames as on the wire; TLS records not counted).
    pub bytes_received: u64,
    /// WebSocket bytes written to the transport.
    pub bytes_sent: u64,
    /// Bytes queued for its open connections and not yet written.
    pub queued_bytes: u64,
}

impl RouteStats {
    /// Messages received, text and binary.
    pub fn messages_received(&self) -> u64 {
        self.text_received + self.binary_received
    }

    fn add(&mut self, counts: &ConnCounts) {
        self.text_received += counts.text_received;
        self.binary_received += counts.binary_received;
        self.messages_sent += counts.messages_sent;
        self.bytes_received += counts.bytes_received;
        self.bytes_sent += counts.bytes_sent;
    }
}

impl ServerStats {
    /// Counters over `registry`'s connections.
    pub(crate) fn new(registry: Registry) -> Self {
        Self {
            inner: Arc::new(StatsInner {
                registry,
                routes: OnceLock::new(),
                rejections: std::array::from_fn(|_| AtomicU64::new(0)),
                closes: Mutex::default(),
                slow_consumers: AtomicU64::new(0),
            }),
        }
    }

    /// Names the server's routes (at bind; later calls change nothing).
    pub(crate) fn set_routes<'a>(&self, paths: impl IntoIterator<Item = &'a str>) {
        let mut routes: Vec<RouteCounters> = paths
            .into_iter()
            .map(|path| RouteCounters {
                path: path.into(),
                accepted: AtomicU64::new(0),
                open: AtomicU64::new(0),
                retired: Mutex::default(),
            })
            .collect();
        routes.sort_by(|a, b| a.path.cmp(&b.path));
        let _ = self.inner.routes.set(routes);
    }

    fn route(&self, path: &str) -> Option<&RouteCounters> {
        let routes = self.inner.routes.get()?;
        routes.binary_search_by(|route| (*route.path).cmp(path)).ok().map(|at| &routes[at])
    }

    /// A connection was accepted on `path` and is now open.
    pub(crate) fn opened(&self, path: &str) {
        if let Some(route) = self.route(path) {
            route.accepted.fetch_add(1, Ordering::Relaxed);
            route.open.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A stream-API connection on `path` ended (it was never in the registry).
    pub(crate) fn stream_closed(&self, path: &str) {
        if let Some(route) = self.route(path) {
            route.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Takes a listener connection that ended out of the registry, its counts into its route's.
    pub(crate) fn retire(&self, conn: &Conn, ended: &Ended) {
        let route = self.route(conn.path());
        let slow = conn.is_slow_consumer();
        self.inner.registry.remove_and(conn.conn_id(), || {
            if let Some(route) = route {
                route.retired.lock().expect("not poisoned").add(&conn.counts());
                route.open.fetch_sub(1, Ordering::Relaxed);
            }
        });
        if slow {
            self.inner.slow_consumers.fetch_add(1, Ordering::Relaxed);
        }
        let label = CloseLabel::of(ended.code, ended.initiator);
        *self.inner.closes.lock().expect("not poisoned").entry(label).or_default() += 1;
    }

    /// An upgrade was refused with `status` before the 101.
    pub(crate) fn rejected(&self, status: u16) {
        if let Some(counter) = status.checked_sub(400).and_then(|at| self.inner.rejections.get(usize::from(at))) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters now. Walks the open connections under the registry's lock: meant for a
    /// scrape or a dashboard a few times a second, not per message.
    pub fn snapshot(&self) -> StatsSnapshot {
        let inner = &*self.inner;
        let routes = inner.routes.get().map(Vec::as_slice).unwrap_or_default();
        let mut stats: Vec<RouteStats> =
            routes.iter().map(|route| RouteStats { path: route.path.to_string(), ..RouteStats::default() }).collect();
        // What closed connections left, read under the same lock as the open ones.
        let retired: Vec<(ConnCounts, u64, u64)> = inner.registry.walk(
            |conn| {
                if let Ok(at) = routes.binary_search_by(|route| (*route.path).cmp(conn.path())) {
                    stats[at].add(&conn.counts());
                    stats[at].queued_bytes += conn.queued_bytes() as u64;
                }
            },
            || {
                let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
                routes
                    .iter()
                    .map(|route| {
                        (*route.retired.lock().expect("not poisoned"), load(&route.open), load(&route.accepted))
                    })
                    .collect()
            },
        );
        for (stats, (counts, open, accepted)) in stats.iter_mut().zip(retired) {
            stats.add(&counts);
            stats.open = open;
            stats.accepted = accepted;
        }
        let handshake_rejections = (400u16..)
            .zip(&inner.rejections)
            .map(|(status, count)| (status, count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect();
        let mut closes: Vec<(String, u64)> =
            inner.closes.lock().expect("not poisoned").iter().map(|(label, n)| (label.text(), *n)).collect();
        closes.sort();
        StatsSnapshot {
            routes: stats,
            handshake_rejections,
            closes,
            slow_consumer_disconnects: inner.slow_consumers.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for ServerStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStats").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(code: u16, initiator: Initiator) -> Ended {
        Ended {
            closed: crate::Closed { code: CloseCode(code), reason: String::new(), clean: true },
            initiator,
            code: CloseCode(code),
        }
    }

    #[test]
    fn a_closed_connection_moves_its_counts_into_its_route_once() {
        let registry = Registry::default();
        let stats = ServerStats::new(registry.clone());
        stats.set_routes(["/", "/a"]);
        let conn = Conn::for_tests(1 << 20);
        registry.insert(&conn);
        stats.opened("/");
        conn.shared().counters.count_received(true);
        conn.shared().counters.count_read(9);
        let live = stats.snapshot();
        assert_eq!(live.routes[0].path, "/");
        assert_eq!((live.routes[0].open, live.routes[0].accepted, live.routes[0].text_received), (1, 1, 1));
        assert_eq!(live.routes[1], RouteStats { path: "/a".into(), ..RouteStats::default() });
        stats.retire(&conn, &ended(1000, Initiator::Peer));
        let after = stats.snapshot();
        assert!(registry.is_empty());
        assert_eq!((after.routes[0].open, after.routes[0].accepted), (0, 1));
        assert_eq!((after.routes[0].text_received, after.routes[0].bytes_received), (1, 9), "kept, not doubled");
        assert_eq!(after.totals().bytes_received, 9);
        assert_eq!(after.closes, vec![("1000".to_owned(), 1)]);
    }

    #[test]
    fn peers_cannot_mint_close_labels_but_the_server_keeps_its_own() {
        let stats = ServerStats::new(Registry::default());
        stats.set_routes(["/"]);
        for (code, initiator) in
            [(4001, Initiator::Server), (4321, Initiator::Peer), (4999, Initiator::Peer), (3007, Initiator::Peer)]
        {
            stats.opened("/");
            stats.retire(&Conn::for_tests(1), &ended(code, initiator));
        }
        stats.opened("/");
        stats.retire(&Conn::for_tests(1), &ended(1006, Initiator::None));
        assert_eq!(stats.snapshot().routes[0].open, 0);
        let closes = stats.snapshot().closes;
        let expected = [("1006", 1), ("3xxx", 1), ("4001", 1), ("4xxx", 2)];
        assert_eq!(closes, expected.map(|(label, n)| (label.to_owned(), n)));
    }

    #[test]
    fn refusals_by_status() {
        let stats = ServerStats::new(Registry::default());
        for status in [403, 401, 403, 599, 200, 600] {
            stats.rejected(status);
        }
        assert_eq!(stats.snapshot().handshake_rejections, vec![(401, 1), (403, 2), (599, 1)]);
    }
}
