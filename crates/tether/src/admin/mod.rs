//! The admin dashboard (`/admin`, docs/admin.md): served when `admin_password` is set, on the
//! main port or only on `--internal-port` when that is set (like `/api`). Without a password it
//! is never mounted, so every `/admin` path is the plain 404.
//!
//! A person signs in with the password (a form; wrong passwords are slowed down) and gets a
//! session cookie; the page then shows live counters pushed once a second over a WebSocket of its
//! own, a chart of the last five minutes, and tables of connections and channels searched and
//! paged on the server, with Disconnect, a history peek and a Publish box.
//!
//! - `login.rs`: the constant-time password check, the per-address slowdown, the global budget;
//! - `devices.rs`: the trusted devices (browsers that signed in before), exempt from the lockout;
//! - `sessions.rs`: the bounded session table and the cookie;
//! - `csrf.rs`: the CSRF token, the `Origin` check and the `Host` check (DNS rebinding);
//! - `http.rs`: the page, the login and logout, `POST /admin/api/*`, the security headers;
//! - `queries.rs`: what the tables and buttons ask of the registry and the hub;
//! - `socket.rs`: the live socket [`SOCKET_PATH`] and its authorize hook;
//! - `series.rs`: samples and rates from the counters, the ring of five minutes;
//! - `sampler.rs`: the once-a-second task that records and pushes them, and the sweeps;
//! - `state.rs`: what they all share; `paths.rs`: the live socket's path.

mod csrf;
mod devices;
mod http;
mod login;
mod paths;
mod queries;
mod sampler;
mod series;
mod sessions;
mod socket;
mod state;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tether_hub::Hub;
use tether_tokio::{Registry, RouteOptions, ServerStats};

pub use paths::SOCKET_PATH;
pub use socket::AdminSocket;

use crate::auth::secret_check::SecretCheck;
use crate::auth::Secret;
use crate::log_throttle::LogThrottle;
use state::Shared;

/// Room in an `/admin/api/*` body around a publish's data, as for the server API.
const BODY_ROOM: usize = 64 * 1024;

/// How the dashboard is served (from the settings).
#[derive(Debug, Clone, Default)]
pub struct AdminOptions {
    /// Served over TLS, or `admin_secure_cookie` (a TLS-terminating proxy in front): the cookies
    /// are `Secure` and only an `https` Origin passes the origin check.
    pub secure: bool,
    /// `admin_hosts`: the names the dashboard answers besides IP addresses and `localhost`.
    pub hosts: Vec<String>,
}

/// The dashboard: a cheap handle on its shared state.
#[derive(Clone)]
pub struct Admin {
    shared: Arc<Shared>,
}

impl Admin {
    /// The dashboard for `password`, over the main server's `hub`, `stats` and `registry`.
    /// `started` is when the server started (the uptime).
    pub fn new(
        password: &Secret,
        hub: Hub,
        stats: ServerStats,
        registry: Registry,
        started: Instant,
        options: AdminOptions,
    ) -> Self {
        // A JSON-mode publish carries the data as a JSON string inside the body, where escapes
        // can double it: room for twice the data; the hub still enforces `max_data_bytes` and its
        // refusal reaches the page.
        let body_limit = hub.config().max_data_bytes.saturating_mul(2).saturating_add(BODY_ROOM);
        let shared = Shared {
            password: SecretCheck::new(password.expose()),
            throttle: login::Throttle::default(),
            sessions: sessions::Sessions::default(),
            devices: devices::Devices::default(),
            hub,
            stats,
            registry,
            started,
            secure: options.secure,
            hosts: options.hosts,
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
        sampler::spawn(&self.shared);
    }
}
