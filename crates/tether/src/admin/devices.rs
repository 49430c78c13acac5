//! Trusted devices: browsers that signed in before, exempt from the per-address lockout and the
//! global budget of wrong passwords (`login.rs`).
//!
//! Without them, anyone sharing the operator's address (a reverse proxy, a NAT, a shared /64)
//! could keep the operator locked out for ever by sending one wrong password each time the lock
//! runs out; and anyone with many addresses could spend the global budget. After a sign-in the
//! browser gets a second cookie, [`COOKIE`] (32 random bytes, `HttpOnly`, `SameSite=Strict`,
//! `Path=/admin`, [`TRUST_FOR`]); the server keeps only its digest, in a bounded table
//! ([`MAX_DEVICES`], a new device past that replaces the one whose trust ends first: only someone
//! with the password adds devices). A login carrying a trusted device's cookie is checked without
//! the lockout (a wrong password still waits its second); [`MAX_DEVICE_FAILURES`] wrong passwords
//! in a row from one device end its trust (a stolen cookie buys that many guesses, no more).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::random_hex;
use crate::auth::secret_check::sha256;

/// The cookie's name.
pub const COOKIE: &str = "tether_admin_device";
/// How long a device stays trusted after its sign-in.
pub const TRUST_FOR: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Devices trusted at once.
pub const MAX_DEVICES: usize = 256;
/// Wrong passwords in a row after which a device is no longer trusted.
pub const MAX_DEVICE_FAILURES: u32 = 5;

pub type DeviceKey = [u8; 32];

struct Device {
    until: Instant,
    failures: u32,
}

/// The table of trusted devices, by their cookie's digest.
#[derive(Default)]
pub struct Devices {
    table: Mutex<HashMap<DeviceKey, Device>>,
}

impl Devices {
    /// Trusts a new device (after a sign-in); returns its cookie value.
    pub fn trust(&self, now: Instant) -> String {
        let id = random_hex(32);
        let mut table = self.lock();
        table.retain(|_, device| device.until > now);
        if table.len() >= MAX_DEVICES {
            if let Some(first) = table.iter().min_by_key(|(_, device)| device.until).map(|(key, _)| *key) {
                table.remove(&first);
            }
        }
        table.insert(sha256(id.as_bytes()), Device { until: now + TRUST_FOR, failures: 0 });
        id
    }

    /// The trusted device of this cookie value, if it is one: its attempt counts as wrong from now
    /// (until [`Devices::succeeded`]), and the one that makes [`MAX_DEVICE_FAILURES`] ends its
    /// trust (that attempt is still checked, without the exemption's use after it).
    pub fn attempt(&self, id: &str, now: Instant) -> Option<DeviceKey> {
        let key = sha256(id.as_bytes());
        let mut table = self.lock();
        let device = table.get_mut(&key)?;
        if device.until <= now {
            table.remove(&key);
            return None;
        }
        device.failures += 1;
        if device.failures >= MAX_DEVICE_FAILURES {
            table.remove(&key);
        }
        Some(key)
    }

    /// The device's attempt had the right password: its count is cleared. False when its trust
    /// had ended meanwhile (then the sign-in trusts it anew).
    pub fn succeeded(&self, key: &DeviceKey) -> bool {
        self.lock().get_mut(key).map(|device| device.failures = 0).is_some()
    }

    /// Whether this cookie value is a trusted device (without counting an attempt).
    #[cfg(test)]
    fn is_trusted(&self, id: &str, now: Instant) -> bool {
        self.lock().get(&sha256(id.as_bytes())).is_some_and(|device| device.until > now)
    }

    /// Drops the devices whose trust ended (called by the sampler once a second).
    pub fn sweep(&self, now: Instant) {
        self.lock().retain(|_, device| device.until > now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceKey, Device>> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The `Set-Cookie` value that marks this browser as trusted.
pub fn set_cookie(id: &str, secure: bool) -> String {
    super::sessions::admin_cookie(COOKIE, id, TRUST_FOR.as_secs(), secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_trusted_until_it_expires_or_fails_too_often() {
        let devices = Devices::default();
        let now = Instant::now();
        let id = devices.trust(now);
        assert_eq!(id.len(), 64);
        assert!(devices.attempt("not-a-device", now).is_none());
        for _ in 1..MAX_DEVICE_FAILURES {
            assert!(devices.attempt(&id, now).is_some());
        }
        let key = devices.attempt(&id, now).expect("the last trusted attempt");
        devices.succeeded(&key);
        assert!(devices.attempt(&id, now).is_none(), "trust ended after too many wrong passwords");
        let id = devices.trust(now);
        for _ in 0..10 {
            let key = devices.attempt(&id, now).unwrap();
            devices.succeeded(&key);
        }
        assert!(devices.is_trusted(&id, now + TRUST_FOR - Duration::from_secs(1)));
        assert!(devices.attempt(&id, now + TRUST_FOR).is_none(), "expired");
    }

    #[test]
    fn the_table_is_bounded() {
        let devices = Devices::default();
        let now = Instant::now();
        let first = devices.trust(now);
        for i in 1..=MAX_DEVICES as u64 {
            devices.trust(now + Duration::from_secs(i));
        }
        assert_eq!(devices.len(), MAX_DEVICES);
        assert!(!devices.is_trusted(&first, now + Duration::from_secs(1000)), "the one ending first went");
        devices.sweep(now + TRUST_FOR + Duration::from_secs(1000));
        assert_eq!(devices.len(), 0);
    }

    #[test]
    fn cookie() {
        assert_eq!(
            set_cookie("abc", false),
            "tether_admin_device=abc; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=2592000"
        );
        assert!(set_cookie("abc", true).ends_with("; Secure"));
    }
}
