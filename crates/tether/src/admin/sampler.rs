//! The once-a-second sampler: reads the server's counters and the hub's, records a sample (the
//! series keeps the last five minutes), pushes it to every open dashboard socket, runs the
//! dashboard's sweeps (ended sessions, forgotten login failures), and closes the live sockets of
//! sessions that ended with [`SIGNED_OUT`](super::socket::SIGNED_OUT).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tether_tokio::{CloseCode, Conn, PreparedMessage};

use super::series::{HubCounts, Totals, EVERY};
use super::socket::{AdminSession, SIGNED_OUT};
use super::state::Shared;

/// Starts the sampler's task (once: a second call does nothing). It ends when the dashboard is
/// dropped.
pub fn spawn(shared: &Arc<Shared>) {
    if shared.sampler_started.swap(true, Ordering::SeqCst) {
        return;
    }
    let shared = Arc::downgrade(shared);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(shared) = shared.upgrade() else { break };
            tick(&shared);
        }
    });
}

/// One sample: recorded, pushed to every live socket; the sweeps; sockets of ended sessions closed.
fn tick(shared: &Shared) {
    let now = Instant::now();
    let totals = Totals::of(&shared.stats.snapshot());
    let hub = shared.hub.stats();
    let hub = HubCounts { users: hub.users, channels: hub.channels, subscriptions: hub.subscriptions };
    let sample = shared.lock_series().record(now, SystemTime::now(), shared.started.elapsed(), totals, hub);
    shared.sessions.sweep(now);
    shared.throttle.sweep(now);
    shared.devices.sweep(now);
    let message = PreparedMessage::text(serde_json::json!({ "type": "sample", "sample": sample }).to_string());
    let sockets: Vec<Conn> = shared.lock_sockets().values().cloned().collect();
    for conn in sockets {
        let live = conn.data::<AdminSession>().is_some_and(|session| shared.sessions.is_live(&session.0, now));
        if live {
            let _ = conn.send_prepared(&message);
        } else {
            let _ = conn.close(CloseCode::from(SIGNED_OUT), "signed out");
        }
    }
}
