//! The admin dashboard (`/admin`, docs/admin.md): served when `admin_password` is set, on the
//! main port or only on `--internal-port` when that is set (like `/api`). Without a password it
//! is never mounted, so every `/admin` path is the plain 404.
//!
//! A person signs in with the password (a form; wrong passwords are slowed down) and gets a
//! session cookie; the page then shows live counters pushed once a second over a WebSocket of its
//! own, a chart of the last five minutes, and tables of connections and channels searched and
//! paged on the server, with Disconnect, a history peek and a Publish box.
//!
//! - `login.rs`: the constant-time password check and the per-address slowdown;
//! - `sessions.rs`: the bounded session table and the cookie;
//! - `csrf.rs`: the CSRF token and the `Origin` check;
//! - `http.rs`: the page, the login and logout, `POST /admin/api/*`, the security headers;
//! - `queries.rs`: what the tables and buttons ask of the registry and the hub;
//! - `socket.rs`: the live socket [`SOCKET_PATH`] and its authorize hook;
//! - `sampler.rs`: the once-a-second sample, its ring of five minutes, the sweeps.

mod csrf;
mod http;
mod login;
mod queries;
mod sampler;
mod sessions;
mod socket;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use tether_hub::Hub;
use tether_tokio::{CloseCode, Conn, PreparedMessage, Registry, RouteOptions, ServerStats};

pub use socket::AdminSocket;

use crate::auth::Secret;
use crate::log_throttle::LogThrottle;

/// The live socket's path.
pub const SOCKET_PATH: &str = "/admin/ws";

/// Room in an `/admin/api/*` body around a publish's data, as for the server API.
const BODY_ROOM: usize = 64 * 1024;

/// The dashboard: a cheap handle on its shared state.
#[derive(Clone)]
pub struct Admin {
    shared: Arc<Shared>,
}

/// What every part of the dashboard shares.
struct Shared {
    password: login::PasswordCheck,
    throttle: login::Throttle,
    sessions: sessions::Sessions,
    hub: Hub,
    stats: ServerStats,
    /// The main server's connections (the ones the tables list and Disconnect closes).
    registry: Registry,
    started: Instant,
    /// Whether the dashboard is served over TLS: the cookie is then `Secure`.
    secure: bool,
    body_limit: usize,
    series: Mutex<sampler::Series>,
    /// The open live sockets, by connection id (at most `socket::MAX_SOCKETS`).
    sockets: Mutex<HashMap<String, Conn>>,
    /// The warn lines about wrong passwords: one a second at most.
    refusals: LogThrottle,
    sampler_started: AtomicBool,
}

impl Shared {
    fn lock_series(&self) -> MutexGuard<'_, sampler::Series> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_sockets(&self) -> MutexGuard<'_, HashMap<String, Conn>> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One sample: recorded, pushed to every live socket; the sweeps; sockets of ended sessions
    /// closed.
    fn tick(&self) {
        let now = Instant::now();
        let totals = sampler::Totals::of(&self.stats.snapshot());
        let hub = self.hub.stats();
        let hub = sampler::HubCounts { users: hub.users, channels: hub.channels, subscriptions: hub.subscriptions };
        let sample = self.lock_series().record(now, SystemTime::now(), self.started.elapsed(), totals, hub);
        self.sessions.sweep(now);
        self.throttle.sweep(now);
        let message = PreparedMessage::text(serde_json::json!({ "type": "sample", "sample": sample }).to_string());
        let sockets: Vec<Conn> = self.lock_sockets().values().cloned().collect();
        for conn in sockets {
            let live =
                conn.data::<socket::AdminSession>().is_some_and(|session| self.sessions.is_live(&session.0, now));
            if live {
                let _ = conn.send_prepared(&message);
            } else {
                let _ = conn.close(CloseCode::from(socket::SIGNED_OUT), "signed out");
            }
        }
    }
}

impl Admin {
    /// The dashboard for `password`, over the main server's `hub`, `stats` and `registry`.
    /// `started` is when the server started (the uptime); `secure_cookie`: the dashboard is served
    /// over TLS (the main port with TLS, not the plain-HTTP internal port).
    pub fn new(
        password: &Secret,
        hub: Hub,
        stats: ServerStats,
        registry: Registry,
        started: Instant,
        secure_cookie: bool,
    ) -> Self {
        let body_limit = hub.config().max_data_bytes.saturating_add(BODY_ROOM);
        let shared = Shared {
            password: login::PasswordCheck::new(password.expose()),
            throttle: login::Throttle::default(),
            sessions: sessions::Sessions::default(),
            hub,
            stats,
            registry,
            started,
            secure: secure_cookie,
            body_limit,
            series: Mutex::default(),
            sockets: Mutex::default(),
            refusals: LogThrottle::new(),
            sampler_started: AtomicBool::new(false),
        };
        Self { shared: Arc::new(shared) }
    }

    /// `GET /admin` (the login form or the dashboard), `POST /admin/login`, the page's script and
    /// style, `/admin/api/*`; every other `/admin/*` path is 404.
    pub fn router(&self) -> axum::Router {
        http::router(Arc::clone(&self.shared))
    }

    /// The live socket's route options (its authorize hook, a small message limit) and listener,
    /// for `Server::route_with(SOCKET_PATH, ..)`.
    pub fn socket_route(&self) -> (RouteOptions, AdminSocket) {
        let shared = Arc::clone(&self.shared);
        let options = RouteOptions::default()
            .max_message_size(socket::MAX_MESSAGE)
            .max_frame_size(socket::MAX_MESSAGE)
            .authorize(move |request| socket::authorize(Arc::clone(&shared), request));
        (options, AdminSocket { shared: Arc::clone(&self.shared) })
    }

    /// Starts the once-a-second sampler (inside the runtime; a second call does nothing).
    pub fn spawn_sampler(&self) {
        if self.shared.sampler_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(sampler::EVERY);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(shared) = shared.upgrade() else { break };
                shared.tick();
            }
        });
    }
}
