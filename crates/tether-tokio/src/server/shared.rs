//! [`Shared`]: what the accept loop and each socket's handshake read, from accepting the socket to
//! handing it to its route: the routes, the plain-HTTP router, TLS, and the [`Lifecycle`] the
//! connection then keeps.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::sync::watch;

use super::accept::Refusal;
use super::config::ServerConfig;
use super::registry::Lifecycle;
use super::routes::Routes;

/// State shared by the accept loop and every handshake.
pub(crate) struct Shared {
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) routes: Routes,
    pub(crate) http: Option<axum::Router>,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// Sockets being answered past `max_connections` (see `direct::Refusing`).
    pub(crate) refusing: AtomicUsize,
}

impl Shared {
    pub(crate) fn config(&self) -> &ServerConfig {
        &self.lifecycle.config
    }

    pub(crate) fn subscribe_shutdown(&self) -> watch::Receiver<bool> {
        self.lifecycle.shutdown.subscribe()
    }

    pub(crate) fn has_route(&self, path: &str) -> bool {
        self.routes.contains_key(path)
    }

    /// Logs and counts an upgrade refused before the 101.
    pub(crate) fn refused(&self, peer: std::net::SocketAddr, refusal: &Refusal) {
        tracing::info!(%peer, status = refusal.status(), %refusal, "handshake refused");
        self.lifecycle.stats.rejected(refusal.status());
    }
}
