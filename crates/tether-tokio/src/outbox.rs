//! [`Outbox`]: a connection's encoded output waiting for the socket, as a queue of byte chunks, so
//! that a frame shared by many connections (a broadcast) is queued by reference and written with
//! the others in one vectored write.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// At most this many chunks go into one vectored write.
pub(crate) const MAX_WRITE_SLICES: usize = 64;

/// A queue of byte chunks to write in order. Chunks are `Bytes`, so a frame shared by many
/// connections is queued by reference, never copied.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) chunks: VecDeque<Bytes>,
    pub(crate) len: usize,
}

impl Outbox {
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Fills `slices` with the first chunks; returns how many.
    pub(crate) fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut count = 0;
        for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
            count += 1;
        }
        count
    }

    /// Drops the first `n` bytes (they were written).
    pub(crate) fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let front = self.chunks.front_mut().expect("advance within the queued bytes");
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        if self.chunks.is_empty() {
            // Give the ring buffer back while idle.
            self.chunks = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_advances_across_chunks() {
        let mut out = Outbox::default();
        out.push(Bytes::from_static(b"abc"));
        out.push(Bytes::new());
        out.push(Bytes::from_static(b"defg"));
        assert_eq!(out.len, 7);
        out.advance(4);
        assert_eq!(out.len, 3);
        let mut slices = [IoSlice::new(&[]); 4];
        let n = out.io_slices(&mut slices);
        assert_eq!(&slices[..n].iter().map(|s| s.to_vec()).collect::<Vec<_>>(), &[b"efg".to_vec()]);
        out.advance(3);
        assert_eq!(out.len, 0);
    }
}
