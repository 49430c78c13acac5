//! Connection expiry: a connection whose token's `exp` passes is closed with 4001 "token expired",
//! unless it sent a `refresh` with a fresh token first.
//!
//! The hub keeps one index of `(expiry, connection id)`, in expiry order, with exactly one entry
//! per connection that has an expiry: a refresh replaces the connection's entry, a close removes
//! it. The sweeper (`sweep.rs`, which closes what expired, once every `sweep_interval`, 1 s by default, the precision of a
//! JWT's `exp`) takes the expired entries off the front, so a sweep costs O(expired), and the
//! index never holds more than one entry per open connection. No timer per connection: an idle
//! connection costs the index one entry (`docs/memory-per-connection.md`, rule 7).
//!
//! Expiry is wall-clock time ([`SystemTime`]): a token's `exp` is seconds since the Unix epoch.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tether_tokio::{CloseCode, Conn};

use crate::session::Session;

/// The close code of an expired connection.
pub const TOKEN_EXPIRED: CloseCode = CloseCode(4001);
/// Its reason.
pub const TOKEN_EXPIRED_REASON: &str = "token expired";

/// Connections by expiry, soonest first.
#[derive(Default)]
pub(crate) struct ExpiryIndex(Mutex<BTreeSet<(SystemTime, String)>>);

impl ExpiryIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(SystemTime, String)>> {
        self.0.lock().expect("not poisoned")
    }

    /// Records a new connection's expiry (from its identity).
    pub(crate) fn track(&self, conn: &Conn, at: SystemTime) {
        self.lock().insert((at, conn.id().to_owned()));
    }

    /// Moves a connection's expiry from `old` to `new` (a refresh); `None` = never.
    pub(crate) fn moved(&self, conn: &Conn, old: Option<SystemTime>, new: Option<SystemTime>) {
        let mut index = self.lock();
        if let Some(old) = old {
            index.remove(&(old, conn.id().to_owned()));
        }
        if let Some(new) = new {
            index.insert((new, conn.id().to_owned()));
        }
    }

    /// Forgets a closed connection's expiry.
    pub(crate) fn forget(&self, conn: &Conn, session: &Session) {
        let at = *session.expires_at.lock().expect("not poisoned");
        if let Some(at) = at {
            self.lock().remove(&(at, conn.id().to_owned()));
        }
    }

    /// Takes off the index the connections whose expiry is at or before `now`: their ids.
    pub(crate) fn take_expired(&self, now: SystemTime) -> Vec<String> {
        let mut index = self.lock();
        let mut expired = Vec::new();
        while index.first().is_some_and(|(at, _)| *at <= now) {
            expired.extend(index.pop_first().map(|(_, id)| id));
        }
        expired
    }

    /// How many connections have an expiry.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Milliseconds from `now` until `at` (0 once it passed), as the protocol's `expiresIn` says it: a
/// client plans its refresh from this and its own monotonic clock, so a client clock that is off
/// does not make it refresh too late (a 4001) or in a loop.
pub(crate) fn millis_until(at: SystemTime, now: SystemTime) -> u64 {
    at.duration_since(now).map_or(0, |left| left.as_millis().try_into().unwrap_or(u64::MAX))
}

/// Milliseconds since the Unix epoch, as the protocol's `expiresAt` says it.
pub(crate) fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis().try_into().unwrap_or(u64::MAX))
}
