//! Compressing and inflating messages (RFC 7692 §7.2).
//!
//! A message is compressed as raw DEFLATE ending in a sync flush, whose `00 00 FF FF` tail is
//! removed on the wire and put back before inflating. Inflating is bounded: output grows only up to
//! the caller's limit, so a few bytes that would inflate to gigabytes fail with 1009 after at most
//! `limit` bytes of memory.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;

/// The tail a sync flush ends with, which RFC 7692 strips from each message.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Compresses outgoing messages.
pub struct Compressor {
    inner: Compress,
    reset_after_message: bool,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor").field("reset_after_message", &self.reset_after_message).finish()
    }
}

impl Compressor {
    /// A compressor with the given level (0-9) and window (9-15 bits).
    pub fn new(level: u32, window_bits: u8, reset_after_message: bool) -> Self {
        assert!((9..=15).contains(&window_bits), "zlib compresses raw deflate with 9-15 window bits");
        Self {
            inner: Compress::new_with_window_bits(Compression::new(level.min(9)), false, window_bits),
            reset_after_message,
        }
    }

    /// Compresses one whole message, appending the wire form (tail removed) to `out`.
    pub fn compress(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.reserve(input.len() / 2 + 16);
        loop {
            let before = self.inner.total_in();
            self.inner.compress_vec(input, out, FlushCompress::Sync).expect("deflate cannot fail on valid state");
            input = &input[(self.inner.total_in() - before) as usize..];
            // Done when all input is in and the flush fit in the space we gave it.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if out[start..].ends_with(&SYNC_TAIL) {
            out.truncate(out.len() - SYNC_TAIL.len());
        } else if out.len() == start {
            // zlib skips a sync flush that follows another with no input in between, so an empty
            // message after an earlier one (context takeover) comes out as nothing at all. An empty
            // payload is not a compressed empty message: the tail the receiver appends would be read
            // as half a stored block header, corrupting the stream. Send the header byte of an empty
            // stored block instead (RFC 7692 §7.2.3.6); with the appended tail it is a whole block.
            out.push(0x00);
        }
        if self.reset_after_message {
            self.inner.reset();
        }
    }
}

/// Inflates incoming messages, piece by piece.
pub struct Decompressor {
    inner: Decompress,
    reset_after_message: bool,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor").field("reset_after_message", &self.reset_after_message).finish()
    }
}

impl Decompressor {
    /// An inflater. It always uses the largest window, which reads streams made with any smaller one.
    pub fn new(reset_after_message: bool) -> Self {
        Self { inner: Decompress::new(false), reset_after_message }
    }

    /// Inflates the next piece of a message's compressed payload, appending to `out`.
    ///
    /// `out` never grows past `limit + 1` bytes of capacity; output beyond `limit` is
    /// [`ProtocolError::MessageTooLarge`].
    pub fn decompress(&mut self, mut input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), ProtocolError> {
        loop {
            if out.len() == out.capacity() {
                if out.len() > limit {
                    return Err(ProtocolError::MessageTooLarge { limit });
                }
                let target = (out.capacity() * 2).max(input.len() * 2).max(1024).min(limit.saturating_add(1));
                out.reserve_exact(target - out.len());
            }
            let before_in = self.inner.total_in();
            let before_out = out.len();
            let status = self
                .inner
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            input = &input[(self.inner.total_in() - before_in) as usize..];
            if out.len() > limit {
                return Err(ProtocolError::MessageTooLarge { limit });
            }
            if status == Status::StreamEnd {
                // A final block ends the stream (RFC 7692 §7.2.3.4 allows it). Whatever follows it
                // starts a fresh stream: RFC 7692's own example follows its final block with a 0x00
                // that, with the tail appended on receipt, is an empty stored block. The bytes are
                // read the same way whether they come in this piece or the next one.
                self.inner.reset(false);
                if input.is_empty() {
                    return Ok(());
                }
                continue;
            }
            let made_progress = out.len() > before_out || self.inner.total_in() > before_in;
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
            if !made_progress && out.len() < out.capacity() {
                return Err(ProtocolError::InvalidCompressedData);
            }
        }
    }

    /// Ends a message: feeds the stripped tail back and resets the context if agreed.
    pub fn finish_message(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), ProtocolError> {
        self.decompress(&SYNC_TAIL, out, limit)?;
        if self.reset_after_message {
            self.inner.reset(false);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate(d: &mut Decompressor, wire: &[u8], limit: usize) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        d.decompress(wire, &mut out, limit)?;
        d.finish_message(&mut out, limit)?;
        Ok(out)
    }

    #[test]
    fn rfc_7692_example() {
        // §7.2.3.1: "Hello" compressed.
        let mut d = Decompressor::new(false);
        assert_eq!(inflate(&mut d, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap(), b"Hello");
        // §7.2.3.2: the same message again, using the shared context.
        assert_eq!(inflate(&mut d, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100).unwrap(), b"Hello");
    }

    #[test]
    fn rfc_7692_final_block_examples_in_any_split() {
        // §7.2.3.4: "Hello" in a block with BFINAL set, followed by 0x00.
        let bfinal: &[u8] = &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        // §7.2.3.5: two blocks in one message.
        let two_blocks: &[u8] = &[0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00];
        for wire in [bfinal, two_blocks] {
            for piece_len in [wire.len(), 1, 2, 3] {
                let mut d = Decompressor::new(false);
                let mut out = Vec::new();
                for piece in wire.chunks(piece_len) {
                    d.decompress(piece, &mut out, 100).unwrap();
                }
                d.finish_message(&mut out, 100).unwrap();
                assert_eq!(out, b"Hello", "{wire:02x?} in pieces of {piece_len}");
                // The next message on the same context still inflates.
                assert_eq!(inflate(&mut d, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap(), b"Hello");
            }
        }
    }

    #[test]
    fn round_trips_with_and_without_context_takeover() {
        for reset in [false, true] {
            for bits in [9, 12, 15] {
                let mut c = Compressor::new(6, bits, reset);
                let mut d = Decompressor::new(reset);
                for message in [&b""[..], b"a", b"hello hello hello hello", &[7u8; 100_000]] {
                    let mut wire = Vec::new();
                    c.compress(message, &mut wire);
                    assert_eq!(inflate(&mut d, &wire, 1 << 20).unwrap(), message);
                }
            }
        }
    }

    #[test]
    fn empty_messages_after_others_keep_the_shared_context_intact() {
        // zlib writes nothing for a sync flush right after another one; the wire must still carry
        // an empty stored block, or the receiver's appended tail desynchronises its inflater.
        let mut c = Compressor::new(1, 15, false);
        let mut d = Decompressor::new(false);
        for message in [&b""[..], b"", b"", b"hello", b"", b"", b"hello"] {
            let mut wire = Vec::new();
            c.compress(message, &mut wire);
            assert!(!wire.is_empty(), "a compressed message is never an empty payload");
            assert_eq!(inflate(&mut d, &wire, 100).unwrap(), message);
        }
    }

    #[test]
    fn inflating_piece_by_piece_matches() {
        let message: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        Compressor::new(1, 15, false).compress(&message, &mut wire);
        let mut d = Decompressor::new(false);
        let mut out = Vec::new();
        for piece in wire.chunks(7) {
            d.decompress(piece, &mut out, 1 << 20).unwrap();
        }
        d.finish_message(&mut out, 1 << 20).unwrap();
        assert_eq!(out, message);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let mut wire = Vec::new();
        Compressor::new(9, 15, false).compress(&vec![0u8; 10 << 20], &mut wire);
        assert!(wire.len() < 20_000);
        let mut d = Decompressor::new(false);
        let mut out = Vec::new();
        assert_eq!(d.decompress(&wire, &mut out, 1 << 20), Err(ProtocolError::MessageTooLarge { limit: 1 << 20 }));
        assert!(out.capacity() <= (1 << 20) + 1);
    }

    #[test]
    fn garbage_is_invalid_data() {
        let mut d = Decompressor::new(false);
        assert_eq!(inflate(&mut d, &[0xff, 0xff, 0xff, 0xff], 100), Err(ProtocolError::InvalidCompressedData));
    }
}
