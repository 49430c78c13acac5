//! The [`Lifecycle`] every connection task shares with the accept loop for the server's whole
//! life (the registry, the counters, the count of open sockets, the shutdown flag and the settings
//! a connection runs with), and [`Active`], which counts a socket as open while it lives.
//!
//! A connection task needs these and nothing of the handshake, so a route can start one without
//! knowing the server's other parts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tether_proto::CloseCode;
use tokio::sync::watch;

use super::config::ServerConfig;
use super::registry::Registry;
use super::stats::ServerStats;
use crate::driver::DriverSettings;
use crate::websocket::SHUTDOWN_REASON;

/// What the accept loop and every connection task share for the server's whole life.
pub(crate) struct Lifecycle {
    pub(crate) config: ServerConfig,
    /// The timers and limits of every listener-style connection, shared rather than copied into
    /// each.
    pub(crate) driver_settings: Arc<DriverSettings>,
    pub(crate) registry: Registry,
    /// The server's counters (their own handle on the same registry).
    pub(crate) stats: ServerStats,
    pub(crate) shutdown: watch::Sender<bool>,
    active: AtomicUsize,
}

impl Lifecycle {
    pub(crate) fn new(config: ServerConfig, registry: Registry, stats: ServerStats) -> Self {
        let driver_settings = Arc::new(DriverSettings::new(
            config.ping_interval,
            config.idle_timeout,
            config.close_timeout,
            config.max_queue_bytes,
        ));
        let (shutdown, _) = watch::channel(false);
        Self { config, driver_settings, registry, stats, shutdown, active: AtomicUsize::new(0) }
    }

    /// Open sockets (WebSocket and HTTP, including those still in their handshake).
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Starts the graceful shutdown: tasks that wait on the flag see it (the accept loop, plain HTTP
    /// and stream-API connections), and every registered listener-style connection is asked to
    /// close with 1001.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
        for conn in self.registry.connections() {
            let _ = conn.close(CloseCode::GOING_AWAY, SHUTDOWN_REASON);
        }
    }
}

/// Counts a connection as open for as long as it lives.
pub(crate) struct Active(Arc<Lifecycle>);

impl Active {
    pub(crate) fn new(lifecycle: &Arc<Lifecycle>) -> Self {
        lifecycle.active.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(lifecycle))
    }

    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.0
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}
