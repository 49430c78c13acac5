//! [`LogThrottle`]: at most one log line a second for events a client can cause at will (refused
//! API keys, calls refused because the backend is saturated), each line counting the events it
//! stands for, so that a flood shows in the log without filling it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One log line per [`LogThrottle::EVERY`] at most, counting the events not logged in between.
#[derive(Debug, Default)]
pub struct LogThrottle {
    /// When the last line was logged, and how many events went unlogged since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    const EVERY: Duration = Duration::from_secs(1);

    /// A throttle that lets the first event through (`const`, for a `static`).
    pub const fn new() -> Self {
        Self { state: Mutex::new((None, 0)) }
    }

    /// Counts an event at `now`: `Some(n)` when it is to be logged, `n` being the events that
    /// were not since the last line; `None` when it is only counted.
    pub fn event(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, suppressed) = &mut *state;
        if last.is_some_and(|last| now.duration_since(last) < Self::EVERY) {
            *suppressed += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_counting_the_others() {
        let log = LogThrottle::default();
        let start = Instant::now();
        assert_eq!(log.event(start), Some(0));
        assert_eq!(log.event(start + Duration::from_millis(10)), None);
        assert_eq!(log.event(start + Duration::from_millis(999)), None);
        assert_eq!(log.event(start + Duration::from_secs(1)), Some(2));
        assert_eq!(log.event(start + Duration::from_millis(1500)), None);
        assert_eq!(log.event(start + Duration::from_secs(3)), Some(1));
    }
}
