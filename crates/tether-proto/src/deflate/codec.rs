//! Compressing and inflating messages (RFC 7692 §7.2), one zlib stream each.
//!
//! A message is compressed as raw DEFLATE ending in a sync flush, whose `00 00 FF FF` tail is
//! removed on the wire and put back before inflating. Inflating is bounded: output grows only up to
//! the caller's limit, so a few bytes that would inflate to gigabytes fail with 1009 after at most
//! `limit` bytes of memory.
//!
//! The engine is zlib-rs (the Rust port of zlib-ng that flate2 also uses), called directly because
//! flate2 cannot set zlib's `memLevel`. Neither type here decides when its context is reset: that is
//! the business of `deflate::context`, which keeps these (large) states in per-thread pools and
//! hands each connection one only while it needs it.
//!
//! Size: one file although it passes 400 lines: the code is 250 of them, the two zlib streams and the
//! tail handling they share; the rest are their tests (RFC 7692 §7.2.3's examples in every split,
//! bombs, corrupt data), which stay beside the code they pin.

use zlib_rs::{Deflate, DeflateFlush, Inflate, InflateFlush, Status};

use crate::error::ProtocolError;

/// The tail a sync flush ends with, which RFC 7692 strips from each message.
pub(crate) const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// How a compressor is set up. Two compressors with equal settings make the same bytes from the
/// same input and context, so one can stand in for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompressorSettings {
    /// zlib level, 0-9.
    pub level: u8,
    /// LZ77 window, 9-15 bits.
    pub window_bits: u8,
    /// zlib's memLevel, 1-9: the size of the buffer of symbols a block is made from
    /// (`7 << (mem_level + 6)` bytes), so it trades memory against block overhead.
    pub mem_level: u8,
}

impl CompressorSettings {
    /// The settings, with every value clamped into zlib's range.
    pub fn new(level: u32, window_bits: u8, mem_level: u8) -> Self {
        Self { level: level.min(9) as u8, window_bits: window_bits.clamp(9, 15), mem_level: mem_level.clamp(1, 9) }
    }

    /// The size of the LZ77 window in bytes: how much earlier data a message may refer to.
    pub fn window_size(&self) -> usize {
        1 << self.window_bits
    }
}

/// Compresses whole messages into one raw DEFLATE stream.
pub struct Compressor {
    inner: Deflate,
    settings: CompressorSettings,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor").field("settings", &self.settings).finish()
    }
}

impl Compressor {
    /// A fresh compressor. It allocates zlib's whole state at once: see docs/limits.md for how much
    /// each setting costs.
    pub fn new(settings: CompressorSettings) -> Self {
        let config = zlib_rs::DeflateConfig {
            level: i32::from(settings.level),
            window_bits: -i32::from(settings.window_bits),
            mem_level: i32::from(settings.mem_level),
            ..zlib_rs::DeflateConfig::default()
        };
        Self { inner: Deflate::new_with_config(config), settings }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> CompressorSettings {
        self.settings
    }

    /// Forgets the context: the next message refers to nothing sent before it.
    pub fn reset(&mut self) {
        self.inner.reset();
    }

    /// Forgets the context and takes `window` (the last bytes sent, at most one window's worth are
    /// used) as the data the next message may refer to. The peer's inflater holds the same bytes,
    /// so a connection can give its compressor back between messages and keep context takeover.
    pub fn reset_to(&mut self, window: &[u8]) {
        self.inner.reset();
        if !window.is_empty() {
            self.inner.set_dictionary(window).expect("a dictionary may be set right after a reset");
        }
    }

    /// Compresses one whole message, appending the wire form (tail removed) to `out`.
    pub fn compress(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let mut room = input.len() / 2 + 64;
        loop {
            let filled = out.len();
            out.resize(filled + room, 0);
            let (before_in, before_out) = (self.inner.total_in(), self.inner.total_out());
            self.inner
                .compress(input, &mut out[filled..], DeflateFlush::SyncFlush)
                .expect("deflate cannot fail on a valid state");
            let written = (self.inner.total_out() - before_out) as usize;
            input = &input[(self.inner.total_in() - before_in) as usize..];
            out.truncate(filled + written);
            // Done when all input is in and the flush fit in the space we gave it.
            if input.is_empty() && written < room {
                break;
            }
            room = room.max(input.len() / 2 + 64).saturating_mul(2);
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
    }
}

/// Inflates one peer's messages, piece by piece.
pub struct Decompressor {
    inner: Inflate,
    window_bits: u8,
    /// A final block ended the stream and no input has been read since: the tail a message ends
    /// with would then start a stream it cannot finish (see [`Decompressor::at_stream_start`]).
    at_stream_start: bool,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor").field("window_bits", &self.window_bits).finish()
    }
}

/// The most output one inflate call is given room for beyond what the input could need: the room
/// is zeroed first (no `unsafe` here), so a stream of one-byte frames must not zero megabytes each.
const INFLATE_ROOM: usize = 1 << 10;

impl Decompressor {
    /// An inflater for a peer that agreed to compress with at most `window_bits` (8-15; 8 is
    /// read as 9, since zlib makes 9-bit streams when asked for 8). That bounds what it is primed
    /// with ([`Decompressor::reset_to`]), so a peer that refers further back than it agreed fails
    /// with invalid data once its context was handed over. The zlib-rs state itself always has the
    /// largest window: zlib-rs allocates 32 KiB for any window and resets only to the largest, and
    /// a new state for a smaller one would cost an allocation every time a pooled inflater changes
    /// hands (a tenth of the time of a chat message).
    pub fn new(window_bits: u8) -> Self {
        Self { inner: Inflate::new(false, 15), window_bits: window_bits.clamp(9, 15), at_stream_start: false }
    }

    /// The window the peer agreed to.
    pub fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Serves another peer, which agreed to `window_bits`: takes effect at the next
    /// [`Decompressor::reset_to`].
    pub(crate) fn set_window_bits(&mut self, window_bits: u8) {
        self.window_bits = window_bits.clamp(9, 15);
    }

    /// Starts a new stream, with the last `1 << window_bits` bytes of `window` (the peer's last
    /// bytes) as what the stream may refer to.
    pub fn reset_to(&mut self, window: &[u8]) {
        self.inner.reset(false);
        self.at_stream_start = false;
        if !window.is_empty() {
            let window = &window[window.len().saturating_sub(1 << self.window_bits)..];
            self.inner.set_dictionary(window).expect("a raw inflater takes a dictionary at any time");
        }
    }

    /// Inflates the next piece of a message's compressed payload, appending to `out`.
    ///
    /// `out` never grows past `limit + 1` bytes of capacity; output beyond `limit` is
    /// [`ProtocolError::MessageTooLarge`]. Returns where in `out` the current stream began when a
    /// final block ended the previous one during this call (the peer's context restarts there).
    pub fn decompress(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<Option<usize>, ProtocolError> {
        let mut restarted_at = None;
        loop {
            if out.len() == out.capacity() {
                if out.len() > limit {
                    return Err(ProtocolError::MessageTooLarge { limit });
                }
                let target = (out.capacity() * 2).max(input.len() * 2).max(1024).min(limit.saturating_add(1));
                out.reserve_exact(target - out.len());
            }
            let filled = out.len();
            let room = (out.capacity() - filled).min(input.len().saturating_mul(4).max(INFLATE_ROOM));
            out.resize(filled + room, 0);
            let before_in = self.inner.total_in();
            let before_out = self.inner.total_out();
            let result = self.inner.decompress(input, &mut out[filled..], InflateFlush::SyncFlush);
            let written = (self.inner.total_out() - before_out) as usize;
            out.truncate(filled + written);
            let status = result.map_err(|_| ProtocolError::InvalidCompressedData)?;
            let consumed = (self.inner.total_in() - before_in) as usize;
            input = &input[consumed..];
            if consumed > 0 {
                self.at_stream_start = false;
            }
            if out.len() > limit {
                return Err(ProtocolError::MessageTooLarge { limit });
            }
            if status == Status::StreamEnd {
                // A final block ends the stream (RFC 7692 §7.2.3.4 allows it). Whatever follows it
                // starts a fresh stream with an empty window: RFC 7692's own example follows its
                // final block with a 0x00 that, with the tail appended on receipt, is an empty
                // stored block. The bytes are read the same way whether they come in this piece or
                // the next one.
                self.reset_to(&[]);
                self.at_stream_start = true;
                restarted_at = Some(out.len());
                if input.is_empty() {
                    return Ok(restarted_at);
                }
                continue;
            }
            let made_progress = written > 0 || consumed > 0;
            if input.is_empty() && written < room {
                return Ok(restarted_at);
            }
            if !made_progress && written < room {
                return Err(ProtocolError::InvalidCompressedData);
            }
        }
    }

    /// Whether the last piece ended exactly with a final block. The `00 00 FF FF` tail of the
    /// message then begins a stored block it does not finish (RFC 7692's example sends a `00`
    /// after its final block for this reason), so the state must not go on to the next message.
    pub fn at_stream_start(&self) -> bool {
        self.at_stream_start
    }

    /// Ends a message: feeds the stripped tail back.
    pub fn finish_message(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<Option<usize>, ProtocolError> {
        self.decompress(&SYNC_TAIL, out, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(level: u32, bits: u8) -> CompressorSettings {
        CompressorSettings::new(level, bits, 8)
    }

    fn inflate(d: &mut Decompressor, wire: &[u8], limit: usize) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        d.decompress(wire, &mut out, limit)?;
        d.finish_message(&mut out, limit)?;
        Ok(out)
    }

    #[test]
    fn rfc_7692_example() {
        // §7.2.3.1: "Hello" compressed.
        let mut d = Decompressor::new(15);
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
        for (wire, restarts) in [(bfinal, true), (two_blocks, false)] {
            for piece_len in [wire.len(), 1, 2, 3] {
                let mut d = Decompressor::new(15);
                let mut out = Vec::new();
                let mut restarted = None;
                for piece in wire.chunks(piece_len) {
                    restarted = d.decompress(piece, &mut out, 100).unwrap().or(restarted);
                }
                restarted = d.finish_message(&mut out, 100).unwrap().or(restarted);
                assert_eq!(out, b"Hello", "{wire:02x?} in pieces of {piece_len}");
                assert_eq!(restarted, restarts.then_some(5), "{wire:02x?} in pieces of {piece_len}");
                // The next message on the same context still inflates.
                assert_eq!(inflate(&mut d, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap(), b"Hello");
            }
        }
    }

    #[test]
    fn round_trips_with_and_without_context_takeover() {
        for reset in [false, true] {
            for bits in [9, 12, 15] {
                let mut c = Compressor::new(settings(6, bits));
                let mut d = Decompressor::new(bits);
                for message in [&b""[..], b"a", b"hello hello hello hello", &[7u8; 100_000]] {
                    let mut wire = Vec::new();
                    c.compress(message, &mut wire);
                    assert_eq!(inflate(&mut d, &wire, 1 << 20).unwrap(), message);
                    if reset {
                        c.reset();
                        d.reset_to(&[]);
                    }
                }
            }
        }
    }

    #[test]
    fn a_context_survives_being_handed_over_as_a_window() {
        // The sender's and the receiver's states are replaced by fresh ones primed with the last
        // window of data between every message, as the pools do when a connection's state was
        // lent to another: the stream stays the one a long-lived pair would have made.
        let messages: Vec<Vec<u8>> = (0..40u32)
            .map(|i| {
                format!(r#"{{"type":"message","channel":"lobby","offset":{i},"data":{{"text":"hello {i}"}}}}"#)
                    .into_bytes()
            })
            .collect();
        for bits in [9, 12, 15] {
            let window = 1usize << bits;
            let mut sent = Vec::new();
            let (mut whole, mut handed_over) = (0, 0);
            let mut long_lived = Compressor::new(settings(1, bits));
            for message in &messages {
                let mut wire = Vec::new();
                long_lived.compress(message, &mut wire);
                whole += wire.len();

                let mut c = Compressor::new(settings(1, bits));
                c.reset_to(&sent[sent.len().saturating_sub(window)..]);
                let mut wire = Vec::new();
                c.compress(message, &mut wire);
                handed_over += wire.len();
                let mut d = Decompressor::new(bits);
                d.reset_to(&sent);
                assert_eq!(&inflate(&mut d, &wire, 1 << 20).unwrap(), message, "{bits} bits");
                sent.extend_from_slice(message);
            }
            assert!(
                handed_over * 10 < whole * 11,
                "{bits} bits: {handed_over} bytes handed over, {whole} in one stream"
            );
        }
    }

    #[test]
    fn a_handed_over_context_holds_only_the_agreed_window() {
        // A peer that agreed to 9 bits (512 bytes) but refers 2 KiB back breaks the agreement: an
        // inflater primed with its context has only the 512 bytes to refer to.
        let text: Vec<u8> = (0..2048u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut c = Compressor::new(settings(6, 15));
        let mut wire = Vec::new();
        c.compress(&text, &mut wire);
        wire.clear();
        c.compress(&text, &mut wire);
        let mut d = Decompressor::new(9);
        d.reset_to(&text);
        assert_eq!(inflate(&mut d, &wire, 1 << 20), Err(ProtocolError::InvalidCompressedData));
        let mut d = Decompressor::new(15);
        d.reset_to(&text);
        assert_eq!(inflate(&mut d, &wire, 1 << 20).unwrap(), text);
    }

    #[test]
    fn empty_messages_after_others_keep_the_shared_context_intact() {
        // zlib writes nothing for a sync flush right after another one; the wire must still carry
        // an empty stored block, or the receiver's appended tail desynchronises its inflater.
        let mut c = Compressor::new(settings(1, 15));
        let mut d = Decompressor::new(15);
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
        Compressor::new(settings(1, 15)).compress(&message, &mut wire);
        let mut d = Decompressor::new(15);
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
        Compressor::new(settings(9, 15)).compress(&vec![0u8; 10 << 20], &mut wire);
        assert!(wire.len() < 20_000);
        let mut d = Decompressor::new(15);
        let mut out = Vec::new();
        assert_eq!(d.decompress(&wire, &mut out, 1 << 20), Err(ProtocolError::MessageTooLarge { limit: 1 << 20 }));
        assert!(out.capacity() <= (1 << 20) + 1);
    }

    #[test]
    fn garbage_is_invalid_data() {
        let mut d = Decompressor::new(15);
        assert_eq!(inflate(&mut d, &[0xff, 0xff, 0xff, 0xff], 100), Err(ProtocolError::InvalidCompressedData));
    }
}
