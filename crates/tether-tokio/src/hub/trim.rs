//! Giving freed history memory back to the operating system (placeholder until measured).

/// Called after a sweep freed `bytes` of history.
pub(super) fn after_sweep(_bytes: usize) {}
