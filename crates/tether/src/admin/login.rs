//! The login: wrong passwords slowed down. The password itself is compared in constant time by
//! `crate::auth::secret_check` (the server API's key check too).
//!
//! Slowing guesses: every wrong password is answered only after [`WRONG_PASSWORD_DELAY`], and
//! each address gets [`FREE_FAILURES`] wrong passwords, after which each further one locks it
//! out for twice as long as the last (2 s, 4 s, ... at most [`MAX_LOCK`]); a locked address is
//! refused before its password is looked at. An attempt counts as wrong from the moment it
//! starts (a right password then clears the count), so parallel guesses cannot slip in before the
//! first one's answer. The table of addresses is bounded ([`MAX_ADDRESSES`]) and forgets an
//! address [`FORGET_AFTER`] its last wrong password; an IPv6 address counts by its /64, which is
//! what one machine usually holds. An address still counting is never evicted (that would reset
//! its lock): when the table is full of them, new addresses are refused (429) until one is
//! forgotten. Over all addresses, at most [`GLOBAL_BUDGET`] wrong passwords a [`GLOBAL_WINDOW`]
//! are checked (a token bucket); past it every untrusted attempt is refused (429), so rotating
//! addresses (an IPv6 /48 holds 65,536 /64s) does not multiply the guessing rate.
//!
//! A trusted device (`devices.rs`: a browser that signed in before) is exempt from both, so an
//! attacker sharing the operator's address, or spending the global budget, cannot lock the
//! operator out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a wrong password waits for its answer.
pub const WRONG_PASSWORD_DELAY: Duration = Duration::from_secs(1);
/// Wrong passwords an address may send before it is locked out.
pub const FREE_FAILURES: u32 = 3;
/// The longest lockout.
pub const MAX_LOCK: Duration = Duration::from_secs(300);
/// Addresses remembered at once.
pub const MAX_ADDRESSES: usize = 10_000;
/// An address's count is forgotten this long after its last wrong password.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Wrong passwords the server takes per [`GLOBAL_WINDOW`] over all addresses (a token bucket
/// of this size, refilled evenly): many addresses cannot multiply the guessing rate.
pub const GLOBAL_BUDGET: u32 = 30;
/// The window of [`GLOBAL_BUDGET`].
pub const GLOBAL_WINDOW: Duration = Duration::from_secs(60);
/// A full table of addresses is swept for a newcomer at most this often.
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What [`Throttle::attempt`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Check the password (the attempt already counts as wrong until [`Throttle::succeeded`]).
    Check,
    /// This address is locked out for this much longer: refuse without looking at the password.
    Locked(Duration),
    /// The server as a whole takes no more wrong passwords for this long (the global budget is
    /// spent, or the table of addresses is full of ones still counting): refuse likewise.
    Busy(Duration),
}

struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// The global budget of wrong passwords: a token bucket over all addresses.
struct Budget {
    tokens: f64,
    at: Option<Instant>,
}

impl Budget {
    fn refill(&mut self, now: Instant) {
        if let Some(at) = self.at {
            let earned = now.saturating_duration_since(at).as_secs_f64() * f64::from(GLOBAL_BUDGET)
                / GLOBAL_WINDOW.as_secs_f64();
            self.tokens = (self.tokens + earned).min(f64::from(GLOBAL_BUDGET));
        }
        self.at = Some(now);
    }

    /// How long until one token is there (zero when there is one).
    fn wait(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing * GLOBAL_WINDOW.as_secs_f64() / f64::from(GLOBAL_BUDGET))
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self { tokens: f64::from(GLOBAL_BUDGET), at: None }
    }
}

#[derive(Default)]
struct Table {
    addresses: HashMap<IpAddr, Failures>,
    budget: Budget,
    /// When the table was last swept because it was full (at most once a [`FULL_SWEEP_EVERY`]).
    swept: Option<Instant>,
    /// When the oldest entry seen by that sweep is forgotten: the earliest a new address fits.
    frees_at: Option<Instant>,
}

impl Table {
    /// Forgets the old entries and notes when the oldest of the rest goes.
    fn sweep(&mut self, now: Instant) {
        self.addresses.retain(|_, failures| now.saturating_duration_since(failures.last) < FORGET_AFTER);
        self.frees_at = self.addresses.values().map(|failures| failures.last + FORGET_AFTER).min();
        self.swept = Some(now);
    }
}

/// The per-address count of wrong passwords, and the global budget.
#[derive(Default)]
pub struct Throttle {
    table: Mutex<Table>,
}

/// The address a count is kept under: IPv4 as is (an IPv4-mapped IPv6 address too), IPv6 by /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// How long the `count`-th wrong password locks its address out.
fn lock_for(count: u32) -> Option<Duration> {
    let over = count.checked_sub(FREE_FAILURES).filter(|over| *over > 0)?;
    let secs = 1u64.checked_shl(over).unwrap_or(u64::MAX).min(MAX_LOCK.as_secs());
    Some(Duration::from_secs(secs))
}

impl Throttle {
    /// A login attempt from `ip` at `now` (from a device that is not trusted).
    pub fn attempt(&self, ip: IpAddr, now: Instant) -> Admission {
        let key = address_key(ip);
        let mut table = self.lock();
        if let Some(failures) = table.addresses.get(&key) {
            if let Some(left) = failures.locked_until.and_then(|until| until.checked_duration_since(now)) {
                if !left.is_zero() {
                    return Admission::Locked(left);
                }
            }
        }
        table.budget.refill(now);
        if table.budget.tokens < 1.0 {
            return Admission::Busy(table.budget.wait());
        }
        if !table.addresses.contains_key(&key) && table.addresses.len() >= MAX_ADDRESSES {
            // Never evict an address that is still counting (that would reset its lock): refuse
            // the newcomer instead. The sweep is O(n), so at most once a FULL_SWEEP_EVERY.
            if table.swept.is_none_or(|swept| now.saturating_duration_since(swept) >= FULL_SWEEP_EVERY) {
                table.sweep(now);
            }
            if table.addresses.len() >= MAX_ADDRESSES {
                let left = table.frees_at.map_or(FORGET_AFTER, |at| at.saturating_duration_since(now));
                return Admission::Busy(left.max(FULL_SWEEP_EVERY));
            }
        }
        table.budget.tokens -= 1.0;
        let failures = table.addresses.entry(key).or_insert(Failures { count: 0, locked_until: None, last: now });
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        failures.locked_until = lock_for(failures.count).map(|lock| now + lock);
        Admission::Check
    }

    /// The attempt from `ip` had the right password: its count is cleared, its token given back.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut table = self.lock();
        table.addresses.remove(&address_key(ip));
        table.budget.tokens = (table.budget.tokens + 1.0).min(f64::from(GLOBAL_BUDGET));
    }

    /// Forgets the addresses whose last wrong password is old (called once a second).
    pub fn sweep(&self, now: Instant) {
        self.lock().sweep(now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().addresses.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_double_after_the_free_failures_up_to_the_cap() {
        assert_eq!((1..=FREE_FAILURES).filter_map(lock_for).count(), 0);
        assert_eq!(lock_for(4), Some(Duration::from_secs(2)));
        assert_eq!(lock_for(5), Some(Duration::from_secs(4)));
        assert_eq!(lock_for(11), Some(Duration::from_secs(256)));
        assert_eq!(lock_for(12), Some(MAX_LOCK));
        assert_eq!(lock_for(u32::MAX), Some(MAX_LOCK));
    }

    #[test]
    fn an_address_is_locked_out_after_its_free_failures_and_cleared_by_the_right_password() {
        let throttle = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..=FREE_FAILURES {
            assert_eq!(throttle.attempt(ip, now), Admission::Check);
        }
        assert_eq!(throttle.attempt(ip, now), Admission::Locked(Duration::from_secs(2)));
        assert_eq!(throttle.attempt(other, now), Admission::Check, "per address");
        let later = now + Duration::from_secs(2);
        assert_eq!(throttle.attempt(ip, later), Admission::Check, "the lock ran out");
        assert_eq!(throttle.attempt(ip, later + Duration::from_secs(1)), Admission::Locked(Duration::from_secs(3)));
        throttle.succeeded(ip);
        assert_eq!(throttle.attempt(ip, later + Duration::from_secs(1)), Admission::Check);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key("2001:db8:1:3::1".parse().unwrap()));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_full_table_refuses_newcomers_and_never_resets_a_lock() {
        let throttle = Throttle::default();
        let now = Instant::now();
        let locked: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..=FREE_FAILURES {
            assert_eq!(throttle.attempt(locked, now), Admission::Check);
        }
        {
            let mut table = throttle.lock();
            for i in 1..MAX_ADDRESSES as u32 {
                let failures = Failures { count: 1, locked_until: None, last: now + Duration::from_millis(1) };
                table.addresses.insert(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)), failures);
            }
        }
        assert_eq!(throttle.len(), MAX_ADDRESSES);
        let newcomer: IpAddr = "198.51.100.7".parse().unwrap();
        let later = now + Duration::from_secs(1);
        assert_eq!(throttle.attempt(newcomer, later), Admission::Busy(FORGET_AFTER - Duration::from_secs(1)));
        assert!(matches!(throttle.attempt(locked, later), Admission::Locked(_)), "the lock stays");
        assert_eq!(throttle.len(), MAX_ADDRESSES, "nobody evicted");
        // Once the oldest is forgotten, a newcomer fits.
        assert_eq!(throttle.attempt(newcomer, now + FORGET_AFTER), Admission::Check);
        throttle.sweep(now + FORGET_AFTER * 2);
        assert_eq!(throttle.len(), 0);
    }

    #[test]
    fn the_global_budget_caps_wrong_passwords_over_all_addresses() {
        let throttle = Throttle::default();
        let now = Instant::now();
        let ip = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..GLOBAL_BUDGET {
            assert_eq!(throttle.attempt(ip(i), now), Admission::Check, "{i}");
        }
        let per_token = GLOBAL_WINDOW / GLOBAL_BUDGET;
        assert_eq!(throttle.attempt(ip(1000), now), Admission::Busy(per_token));
        assert_eq!(throttle.attempt(ip(1000), now + per_token), Admission::Check, "one more after a token's time");
        assert!(matches!(throttle.attempt(ip(1001), now + per_token), Admission::Busy(_)));
        throttle.succeeded(ip(1000));
        assert_eq!(
            throttle.attempt(ip(1001), now + per_token),
            Admission::Check,
            "a right password gives its token back"
        );
    }
}
