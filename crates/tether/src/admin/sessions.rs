//! The dashboard's sessions: a bounded table of random session ids, each with its CSRF token,
//! an idle timeout and a maximum age, and the cookie that carries the id.
//!
//! The table holds at most [`MAX_SESSIONS`]: a login past that ends the session used least
//! recently (only someone with the password can create sessions, so this bounds memory without
//! letting strangers lock the operator out). Ids are 32 random bytes; the table is keyed by their
//! SHA-256, so neither a lookup's timing nor a memory dump gives a usable id away.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::random_hex;
use crate::auth::secret_check::sha256;

/// Sessions open at once.
pub const MAX_SESSIONS: usize = 64;
/// A session unused this long ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after the login, used or not.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
/// The cookie's name.
pub const COOKIE: &str = "tether_admin";

/// What identifies a session inside the server: its id's digest.
pub type SessionKey = [u8; 32];

struct Session {
    csrf: String,
    created: Instant,
    last_used: Instant,
}

impl Session {
    fn is_live(&self, now: Instant) -> bool {
        now.duration_since(self.created) < MAX_AGE && now.duration_since(self.last_used) < IDLE_TIMEOUT
    }
}

/// A session as a request sees it: its key and its CSRF token.
#[derive(Debug, Clone)]
pub struct Current {
    pub key: SessionKey,
    pub csrf: String,
}

/// The session table.
#[derive(Default)]
pub struct Sessions {
    table: Mutex<HashMap<SessionKey, Session>>,
}

impl Sessions {
    /// Starts a session; returns its id (for the cookie, never kept here) and its CSRF token.
    pub fn create(&self, now: Instant) -> (String, Current) {
        let id = random_hex(32);
        let key = sha256(id.as_bytes());
        let csrf = random_hex(32);
        let mut table = self.lock();
        table.retain(|_, session| session.is_live(now));
        if table.len() >= MAX_SESSIONS {
            if let Some(oldest) = table.iter().min_by_key(|(_, session)| session.last_used).map(|(key, _)| *key) {
                table.remove(&oldest);
            }
        }
        table.insert(key, Session { csrf: csrf.clone(), created: now, last_used: now });
        (id, Current { key, csrf })
    }

    /// The live session of this cookie value, marked as used now.
    pub fn find(&self, id: &str, now: Instant) -> Option<Current> {
        let key = sha256(id.as_bytes());
        let mut table = self.lock();
        let session = table.get_mut(&key)?;
        if !session.is_live(now) {
            table.remove(&key);
            return None;
        }
        session.last_used = now;
        Some(Current { key, csrf: session.csrf.clone() })
    }

    /// Whether the session is still live, marking it used: the live socket asks every second, and
    /// a dashboard someone watches is in use. False once it ended (logout, idle, too old).
    pub fn is_live(&self, key: &SessionKey, now: Instant) -> bool {
        let mut table = self.lock();
        match table.get_mut(key) {
            Some(session) if session.is_live(now) => {
                session.last_used = now;
                true
            }
            Some(_) => {
                table.remove(key);
                false
            }
            None => false,
        }
    }

    /// Ends the session (logout).
    pub fn remove(&self, key: &SessionKey) {
        self.lock().remove(key);
    }

    /// Drops the sessions that ended (called by the sampler once a second).
    pub fn sweep(&self, now: Instant) {
        self.lock().retain(|_, session| session.is_live(now));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Session>> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The `Set-Cookie` value of a new session: HttpOnly (no script reads it), SameSite=Strict (no
/// other site's page or link sends it), Path=/admin (no other page of the server gets it), Secure
/// when the dashboard is served over TLS, and a Max-Age of the session's [`MAX_AGE`].
pub fn set_cookie(id: &str, secure: bool) -> String {
    admin_cookie(COOKIE, id, MAX_AGE.as_secs(), secure)
}

/// The `Set-Cookie` value that removes it (logout).
pub fn clear_cookie(secure: bool) -> String {
    admin_cookie(COOKIE, "", 0, secure)
}

/// A `Set-Cookie` value with the attributes every dashboard cookie has (the session's and the
/// trusted device's): one place for them, so the two cannot drift apart.
pub fn admin_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

/// The session id in a `Cookie` header's value (`a=1; tether_admin=ID; b=2`), if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    cookie_named(header, COOKIE)
}

/// The value of the cookie `name` in a `Cookie` header's value, if any.
pub fn cookie_named<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|pair| pair.trim().split_once('=')).find(|(n, _)| *n == name).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_it_ends() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let (id, current) = sessions.create(start);
        assert_eq!(id.len(), 64);
        let found = sessions.find(&id, start + Duration::from_secs(60)).unwrap();
        assert_eq!((found.key, found.csrf.as_str()), (current.key, current.csrf.as_str()));
        assert!(sessions.find("not-the-id", start).is_none());
        // Idle: each use moves the idle deadline; the maximum age does not move.
        let mut now = start;
        while now.duration_since(start) + IDLE_TIMEOUT / 2 < MAX_AGE {
            now += IDLE_TIMEOUT / 2;
            assert!(sessions.find(&id, now).is_some());
        }
        assert!(sessions.find(&id, start + MAX_AGE).is_none(), "too old");
        let (id, _) = sessions.create(start);
        assert!(sessions.find(&id, start + IDLE_TIMEOUT).is_none(), "idle too long");
        let (id, current) = sessions.create(start);
        sessions.remove(&current.key);
        assert!(sessions.find(&id, start).is_none(), "logged out");
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_least_recently_used() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let (first, _) = sessions.create(start);
        let ids: Vec<String> =
            (1..MAX_SESSIONS).map(|i| sessions.create(start + Duration::from_secs(i as u64)).0).collect();
        assert!(sessions.find(&first, start + Duration::from_secs(100)).is_some(), "used last now");
        sessions.create(start + Duration::from_secs(101));
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.find(&first, start + Duration::from_secs(102)).is_some());
        assert!(sessions.find(&ids[0], start + Duration::from_secs(102)).is_none(), "the least recently used went");
        sessions.sweep(start + MAX_AGE);
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn cookies() {
        assert_eq!(set_cookie("abc", false), "tether_admin=abc; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=43200");
        assert!(set_cookie("abc", true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
        assert_eq!(cookie_value("a=1; tether_admin=xyz; b=2"), Some("xyz"));
        assert_eq!(cookie_value("tether_admin=xyz"), Some("xyz"));
        assert_eq!(cookie_value("other_tether_admin=xyz"), None);
        assert_eq!(cookie_value(""), None);
    }
}
