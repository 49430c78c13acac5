//! What every part of the dashboard shares ([`Shared`], behind the `Admin` handle's `Arc`): the
//! password's digest, the login slowdown, the sessions, the server and hub it watches, the
//! samples, and the open live sockets.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tether_hub::Hub;
use tether_tokio::{Conn, Registry, ServerStats};

use super::devices::Devices;
use super::login::Throttle;
use super::series::Series;
use super::sessions::Sessions;
use crate::auth::secret_check::SecretCheck;
use crate::log_throttle::LogThrottle;

pub struct Shared {
    pub password: SecretCheck,
    pub throttle: Throttle,
    pub sessions: Sessions,
    /// The browsers that signed in before (exempt from the login lockout).
    pub devices: Devices,
    pub hub: Hub,
    pub stats: ServerStats,
    /// The main server's connections (the ones the tables list and Disconnect closes).
    pub registry: Registry,
    pub started: Instant,
    /// Whether the dashboard is served over TLS or with `admin_secure_cookie`: the cookies are
    /// then `Secure` and only an `https` Origin is the dashboard's.
    pub secure: bool,
    /// Host names the dashboard answers besides IP addresses and `localhost` (`admin_hosts`).
    pub hosts: Vec<String>,
    /// The largest `/admin/api/*` body.
    pub body_limit: usize,
    pub series: Mutex<Series>,
    /// The open live sockets, by connection id (at most `socket::MAX_SOCKETS`).
    pub sockets: Mutex<HashMap<String, Conn>>,
    /// The warn lines about wrong passwords: one a second at most.
    pub refusals: LogThrottle,
    pub sampler_started: AtomicBool,
}

impl Shared {
    pub fn lock_series(&self) -> MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn lock_sockets(&self) -> MutexGuard<'_, HashMap<String, Conn>> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
