//! Measurements: latency histograms, the generator's own CPU use, and number formatting.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies in nanoseconds, 3 significant digits, up to an hour. Connections collect samples in a
/// small local batch and add it to one of a few shards (one per runtime thread), so recording costs
/// no lock per message and no contention on a multi-thread runtime.
pub struct Latencies {
    shards: Vec<Mutex<Histogram<u64>>>,
}

/// Samples a connection collects before adding them to a shard.
pub const SAMPLE_BATCH: usize = 1024;

const MAX_NANOS: u64 = 3_600_000_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NANOS, 3).expect("valid histogram bounds")
}

impl Latencies {
    pub fn new(shards: usize) -> Self {
        Self { shards: (0..shards.max(1)).map(|_| Mutex::new(histogram())).collect() }
    }

    /// Adds `samples` (nanoseconds) to the shard of connection `index`, and empties it.
    pub fn record(&self, index: usize, samples: &mut Vec<u64>) {
        if samples.is_empty() {
            return;
        }
        let mut shard = self.shards[index % self.shards.len()].lock().expect("not poisoned");
        for &sample in samples.iter() {
            shard.saturating_record(sample.clamp(1, MAX_NANOS));
        }
        samples.clear();
    }

    /// Percentiles over every shard.
    pub fn summary(&self) -> Summary {
        Self::summary_of(std::slice::from_ref(self))
    }

    /// Percentiles over every shard of every one of `all` (several groups of connections as one).
    pub fn summary_of(all: &[Latencies]) -> Summary {
        let mut merged = histogram();
        for shard in all.iter().flat_map(|latencies| &latencies.shards) {
            merged.add(&*shard.lock().expect("not poisoned")).expect("same bounds");
        }
        Summary::of(&merged)
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Summary {
    fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let us = |nanos: u64| round(nanos as f64 / 1000.0, 1);
        Self {
            p50: us(histogram.value_at_quantile(0.50)),
            p90: us(histogram.value_at_quantile(0.90)),
            p99: us(histogram.value_at_quantile(0.99)),
            p999: us(histogram.value_at_quantile(0.999)),
            max: us(histogram.max()),
        }
    }

    /// `p50 12.3  p90 ...` in microseconds, for the human report.
    pub fn line(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            us(self.p50),
            us(self.p90),
            us(self.p99),
            us(self.p999),
            us(self.max)
        )
    }
}

fn us(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.1} ms", value / 1000.0)
    } else {
        format!("{value:.1} µs")
    }
}

/// `value` rounded to `digits` decimals (for JSON that stays readable).
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// This process's CPU time, user + system, from `getrusage(RUSAGE_SELF)`.
pub fn cpu_time() -> Duration {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
            Duration::from_micros(micros(usage.user_time()) + micros(usage.system_time()))
        }
        Err(_) => Duration::ZERO,
    }
}

/// CPU use between two points, as a percentage of one core (above 100 with several threads).
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    cpu: Duration,
    at: Instant,
}

impl CpuMark {
    pub fn now() -> Self {
        Self { cpu: cpu_time(), at: Instant::now() }
    }

    /// Percent of one core used since `self`.
    pub fn percent_until(&self, end: &CpuMark) -> f64 {
        let wall = end.at.duration_since(self.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        round(end.cpu.saturating_sub(self.cpu).as_secs_f64() / wall * 100.0, 1)
    }
}

/// Raises the soft limit on open files to the hard limit when `needed` descriptors would not fit;
/// returns a warning when even the hard limit is too low.
pub fn raise_file_limit(needed: u64) -> Option<String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= needed {
        return None;
    }
    if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() || hard < needed {
        return Some(format!(
            "warning: {needed} file descriptors needed but the limit is {} (raise it with `ulimit -n`)",
            if hard < needed { hard } else { soft }
        ));
    }
    None
}

/// Deterministic pseudo-random letters and digits: a payload that is valid UTF-8 (for text
/// messages) and compresses about as well as typical text-ish data with permessage-deflate.
pub fn payload(size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered_and_in_microseconds() {
        let latencies = Latencies::new(2);
        let mut samples: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        latencies.record(0, &mut samples);
        assert!(samples.is_empty());
        let mut more = vec![5_000_000];
        latencies.record(1, &mut more);
        let s = latencies.summary();
        assert!((s.p50 - 500.0).abs() < 5.0, "{s:?}");
        assert!(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max, "{s:?}");
        assert!((s.max - 5000.0).abs() < 5.0, "{s:?}");
    }

    #[test]
    fn payload_is_ascii_and_deterministic() {
        let a = payload(100);
        assert_eq!(a.len(), 100);
        assert!(a.iter().all(u8::is_ascii_alphanumeric));
        assert_eq!(a, payload(100));
    }

    #[test]
    fn cpu_time_moves_forward() {
        let start = CpuMark::now();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let end = CpuMark::now();
        assert!(end.cpu >= start.cpu);
        assert!(start.percent_until(&end) >= 0.0);
    }
}
