//! Deadline arithmetic shared by the two connection loops (`driver.rs` for the listener API,
//! `websocket.rs` for [`crate::WebSocket`]) and the server's handshake and HTTP timeouts.
//!
//! Here so that neither loop imports the other for it: every timer in the crate is set through
//! [`deadline_after`], so a setting of any size (`u64::MAX` seconds included) can never panic a
//! connection's task, and "off" is one far-future constant.

use std::time::Duration;

use tokio::time::Instant;

/// The farthest ahead a timer is set: 30 years, as tokio's own "far future". Adding it to
/// `Instant::now()` cannot overflow, and a timer set to it never fires in practice.
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now + after` that cannot panic: `Instant + Duration` panics on overflow, and a setting such
/// as an idle timeout of `u64::MAX` seconds would otherwise kill every connection's task. A
/// duration past [`FAR_FUTURE`] counts as that.
pub(crate) fn deadline_after(now: Instant, after: Duration) -> Instant {
    // Only a clock within 30 years of `Instant`'s end could fail both; then fire now rather than panic.
    now.checked_add(after.min(FAR_FUTURE)).unwrap_or(now)
}

/// The period of a timer that `Duration::ZERO` turns off (keepalive pings, the idle timeout): a
/// zero period would otherwise fire on every turn of the loop (a ping flood, or an instant close).
pub(crate) fn period_or_off(period: Duration) -> Duration {
    if period.is_zero() {
        FAR_FUTURE
    } else {
        period.min(FAR_FUTURE)
    }
}
