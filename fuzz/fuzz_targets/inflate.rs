//! permessage-deflate's codec: bounded inflating of arbitrary bytes, and compress/inflate round trips.
//!
//! Input: `[split style, flags, limit byte, bytes...]`.
//! - The bytes, read as compressed messages (cut where the split says, ending a message where the
//!   flags say), never inflate past the limit: the output stays within `limit` bytes and its buffer
//!   within `limit + 1`, and the only errors are "too large" and "invalid data". Inflating a message
//!   in pieces gives the same result as inflating it at once.
//! - The bytes, cut into messages, come back unchanged through a `Compressor` and a `Decompressor`
//!   with the same settings, inflated in pieces, even with the limit set to the message's exact size;
//!   one byte less fails as too large. Now and then both sides are replaced by fresh states primed
//!   with the last window of data, as the per-thread pools do between connections.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_fuzz::{split, take_control, Rng};
use tether_proto::deflate::{Compressor, CompressorSettings, Decompressor};
use tether_proto::ProtocolError;

fuzz_target!(|data: &[u8]| {
    let ([style, flags, limit_byte], bytes) = take_control::<3>(data);
    let reset = flags & 1 != 0;
    let limit = if flags & 2 != 0 { usize::from(limit_byte) * 16 } else { 1 << 20 };

    inflate_arbitrary(bytes, style, reset, limit);
    round_trip(bytes, style, flags, reset);
});

/// Inflates one message given in `pieces`; `Err` as soon as a piece or the end fails. Without context
/// takeover (`reset`) each message starts a new stream.
fn inflate(d: &mut Decompressor, pieces: &[&[u8]], limit: usize, reset: bool) -> Result<Vec<u8>, ProtocolError> {
    if reset {
        d.reset_to(&[]);
    }
    let mut out = Vec::new();
    let checked = |out: &Vec<u8>| {
        assert!(out.len() <= limit + 1, "{} bytes of output with a limit of {limit}", out.len());
        assert!(out.capacity() <= limit + 1, "a buffer of {} bytes with a limit of {limit}", out.capacity());
    };
    for piece in pieces {
        let result = d.decompress(piece, &mut out, limit);
        checked(&out);
        result?;
        assert!(out.len() <= limit);
    }
    let result = d.finish_message(&mut out, limit);
    checked(&out);
    result?;
    assert!(out.len() <= limit);
    Ok(out)
}

fn inflate_arbitrary(bytes: &[u8], style: u8, reset: bool, limit: usize) {
    // Messages end where a 0x00 0x00 0xFF 0xFF tail would be (as on the wire, where it is stripped),
    // so the fuzzer can write several messages that share a context.
    let messages: Vec<&[u8]> = split_messages(bytes);
    let mut piecewise = Decompressor::new(15);
    let mut at_once = Decompressor::new(15);
    for message in messages {
        let pieces = split(message, style);
        let a = inflate(&mut piecewise, &pieces, limit, reset);
        let b = inflate(&mut at_once, &[message], limit, reset);
        if let Err(error) = &a {
            assert!(
                matches!(error, ProtocolError::MessageTooLarge { .. } | ProtocolError::InvalidCompressedData),
                "{error:?}"
            );
        }
        match (&a, &b) {
            (Ok(x), Ok(y)) => assert_eq!(x, y, "pieces and whole message inflate differently"),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "pieces {:?} and whole message {:?} disagree",
                a.as_ref().map(Vec::len),
                b.as_ref().map(Vec::len)
            ),
        }
        if a.is_err() {
            // A connection fails here; the decompressor is not used again.
            return;
        }
    }
}

fn split_messages(bytes: &[u8]) -> Vec<&[u8]> {
    let mut messages = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 4 <= bytes.len() {
        if bytes[i..i + 4] == [0x00, 0x00, 0xFF, 0xFF] {
            messages.push(&bytes[start..i]);
            i += 4;
            start = i;
        } else {
            i += 1;
        }
    }
    messages.push(&bytes[start..]);
    messages
}

fn round_trip(bytes: &[u8], style: u8, flags: u8, reset: bool) {
    let level = u32::from(flags >> 4) % 10;
    let window_bits = 9 + (flags >> 1) % 7;
    let mem_level = 1 + (style >> 4) % 9;
    let settings = CompressorSettings::new(level, window_bits, mem_level);
    let window = settings.window_size();
    let mut compressor = Compressor::new(settings);
    let mut decompressor = Decompressor::new(window_bits);
    let mut rng = Rng::new(u64::from(flags) << 8 | u64::from(style));
    let mut sent: Vec<u8> = Vec::new();
    let mut rest = bytes;
    loop {
        let len = (rng.next_u64() % (rest.len() as u64 + 1)) as usize;
        let (message, tail) = rest.split_at(len);
        rest = tail;
        if reset {
            compressor.reset();
        } else if rng.next_u64().is_multiple_of(4) {
            // Handed over: fresh states that know only the last window, on both sides.
            compressor = Compressor::new(settings);
            compressor.reset_to(&sent);
            decompressor = Decompressor::new(window_bits);
            decompressor.reset_to(&sent);
        }
        let mut wire = Vec::new();
        compressor.compress(message, &mut wire);
        if reset && !message.is_empty() {
            // Without context takeover each message stands alone: one byte under its size is too much.
            let mut fresh = Decompressor::new(window_bits);
            let result = inflate(&mut fresh, &split(&wire, style), message.len() - 1, true);
            assert_eq!(result, Err(ProtocolError::MessageTooLarge { limit: message.len() - 1 }));
        }
        let inflated = inflate(&mut decompressor, &split(&wire, style), message.len(), reset)
            .unwrap_or_else(|e| panic!("our own {}-byte message does not inflate: {e:?}", message.len()));
        assert_eq!(inflated, message);
        sent.extend_from_slice(message);
        sent.drain(..sent.len().saturating_sub(window));
        if rest.is_empty() {
            break;
        }
    }
}
