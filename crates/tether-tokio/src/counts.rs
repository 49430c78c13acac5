//! What one connection has moved: messages in by kind, messages out, bytes each way.
//!
//! [`ConnCounters`] live in the connection's shared state and are written by the connection's own
//! task only, so a count is a relaxed load and store (no read-modify-write, no lock, no cache line
//! shared with another connection): the hot path pays next to nothing, and a reader on any task
//! (the server's [`crate::ServerStats`], an admin page) sees a value at most one message old.
//! [`ConnCounts`] is the copy a reader gets.

use std::sync::atomic::{AtomicU64, Ordering};

/// A connection's counts, as read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnCounts {
    /// Text messages received (whole messages, after reassembly and decompression).
    pub text_received: u64,
    /// Binary messages received.
    pub binary_received: u64,
    /// Messages handed to the protocol core to send (a broadcast counts once per connection).
    pub messages_sent: u64,
    /// WebSocket bytes read from the transport (frames as on the wire, after compression).
    pub bytes_received: u64,
    /// WebSocket bytes written to the transport.
    pub bytes_sent: u64,
}

impl ConnCounts {
    /// Messages received, text and binary.
    pub fn messages_received(&self) -> u64 {
        self.text_received + self.binary_received
    }

    /// Adds `other` to these counts.
    pub(crate) fn add(&mut self, other: &ConnCounts) {
        self.text_received += other.text_received;
        self.binary_received += other.binary_received;
        self.messages_sent += other.messages_sent;
        self.bytes_received += other.bytes_received;
        self.bytes_sent += other.bytes_sent;
    }
}

/// The live counters. Single writer: only the connection's task calls the `count_*` methods.
#[derive(Debug, Default)]
pub(crate) struct ConnCounters {
    text_received: AtomicU64,
    binary_received: AtomicU64,
    messages_sent: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
}

/// Adds `n` to a counter that only the calling task writes: a load and a store, which on x86 and
/// ARM are plain moves (an atomic add would lock the bus for a value nobody else changes).
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl ConnCounters {
    pub(crate) fn count_received(&self, text: bool) {
        bump(if text { &self.text_received } else { &self.binary_received }, 1);
    }

    pub(crate) fn count_sent(&self) {
        bump(&self.messages_sent, 1);
    }

    pub(crate) fn count_read(&self, bytes: usize) {
        bump(&self.bytes_received, bytes as u64);
    }

    pub(crate) fn count_written(&self, bytes: usize) {
        bump(&self.bytes_sent, bytes as u64);
    }

    pub(crate) fn get(&self) -> ConnCounts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ConnCounts {
            text_received: load(&self.text_received),
            binary_received: load(&self.binary_received),
            messages_sent: load(&self.messages_sent),
            bytes_received: load(&self.bytes_received),
            bytes_sent: load(&self.bytes_sent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_by_kind() {
        let counters = ConnCounters::default();
        counters.count_received(true);
        counters.count_received(true);
        counters.count_received(false);
        counters.count_sent();
        counters.count_read(10);
        counters.count_written(7);
        counters.count_written(3);
        let counts = counters.get();
        assert_eq!(
            counts,
            ConnCounts { text_received: 2, binary_received: 1, messages_sent: 1, bytes_received: 10, bytes_sent: 10 }
        );
        assert_eq!(counts.messages_received(), 3);
        let mut total = counts;
        total.add(&counts);
        assert_eq!(total.bytes_sent, 20);
        assert_eq!(total.messages_received(), 6);
    }
}
