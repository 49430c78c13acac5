//! Giving history memory back to the operating system after a sweep freed a lot of it.
//!
//! Why this exists, measured (`crates/tether/tests/hub_limits.rs`, issue 9): 1,000 publications
//! of 60 KB to 1,000 channels with a 1 s time to live. The sweeper frees every one of them, yet
//! with glibc's allocator the server's RSS stayed at baseline + 16 MB (debug build: 16 -> 42 ->
//! 32 MB): 60 KB blocks are below glibc's mmap threshold, so they live in the heap arenas, and
//! glibc returns arena memory to the system only from the top of a heap, which smaller blocks
//! still in use pin. `malloc_trim(0)` releases the free pages inside the arenas too
//! (`madvise(MADV_DONTNEED)`), which brings the RSS back to baseline.
//!
//! It walks every arena under its lock, so it is called only by the sweeper (at most once per
//! `sweep_interval`) and only once sweeps have freed at least [`TRIM_AFTER`] bytes of history
//! since the last trim: memory that expired rather than memory that new publications are about to
//! reuse. The count is process-wide, like the allocator.
//!
//! This is the crate's one `unsafe` block; other allocators and C libraries need nothing here.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

/// History bytes sweeps must free before the allocator is asked to give memory back.
pub(super) const TRIM_AFTER: usize = 1 << 20;

/// Bytes swept since the last trim, over every hub of the process.
static UNTRIMMED: AtomicUsize = AtomicUsize::new(0);

/// Called after a sweep freed `bytes` of history.
pub(super) fn after_sweep(bytes: usize) {
    if bytes == 0 {
        return;
    }
    let untrimmed = UNTRIMMED.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if untrimmed >= TRIM_AFTER && UNTRIMMED.swap(0, Ordering::Relaxed) >= TRIM_AFTER {
        // The trim walks every arena under its lock: on a runtime it goes to the blocking pool
        // rather than stall a worker's connections.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(release_free_memory)),
            Err(_) => release_free_memory(),
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: `malloc_trim` takes no pointers and only gives free pages of the allocator's own
    // arenas back to the kernel, under the allocator's locks; it is safe to call from any thread
    // at any time and leaves every live allocation as it was.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_leaves_live_allocations_intact() {
        let kept: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 60_000]).collect();
        let freed: Vec<Vec<u8>> = (0..64).map(|_| vec![7; 60_000]).collect();
        drop(freed);
        super::release_free_memory();
        assert!(kept.iter().enumerate().all(|(i, block)| block.iter().all(|&b| b == i as u8)));
    }
}
