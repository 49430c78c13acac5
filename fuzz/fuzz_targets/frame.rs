//! The connection state machine (and the frame decoder under it) on arbitrary bytes.
//!
//! Input: `[split style, flags, bytes...]`. The flags pick the role, whether permessage-deflate was
//! negotiated (and with which context takeover), small or default limits, and whether the bytes are
//! fed raw or first read as a list of frames to encode properly (masked for a server, compressed
//! when asked), which gets past masking and inflating to the rules behind them.
//!
//! Nothing may panic, and:
//! - events are consistent: messages within the size limit, text valid UTF-8, control payloads at
//!   most 125 bytes;
//! - after an error the connection is closed, its output ends in a Close frame with the error's
//!   code, and it reads nothing more;
//! - everything written decodes as frames, masked exactly when we are the client;
//! - the same bytes fed in pieces or all at once give the same events, and the same error (for a
//!   compressed connection, an error both times: which limit trips first may depend on the pieces);
//! - the frame decoder alone, fed in pieces, reports headers and payload pieces that add up.
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tether_fuzz::{split, take_control, Rng};
use tether_proto::deflate::{Compressor, CompressorSettings, DeflateParams};
use tether_proto::frame::{encode_frame, FrameDecoder, FrameEvent, FrameHeader, OpCode};
use tether_proto::{Config, Connection, Event, Message, ProtocolError, Role, State};

fuzz_target!(|data: &[u8]| {
    let ([style, flags], bytes) = take_control::<2>(data);
    let role = if flags & 1 != 0 { Role::Client } else { Role::Server };
    let deflate = (flags & 2 != 0).then_some(DeflateParams {
        server_no_context_takeover: flags & 4 != 0,
        client_no_context_takeover: flags & 4 != 0,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    });
    let config = if flags & 8 != 0 {
        Config { max_frame_size: 8 << 10, max_message_size: 32 << 10, ..Config::default() }
    } else {
        Config { max_message_size: 64 << 10, ..Config::default() }
    };
    let wire = if flags & 16 != 0 { build_frames(bytes, role, flags & 4 != 0) } else { bytes.to_vec() };

    decoder_alone(&wire, style);

    let pieces = split(&wire, style);
    let chunked = run(role, &config, deflate, &pieces);
    let whole = run(role, &config, deflate, &[&wire]);
    assert_eq!(chunked.events, whole.events, "pieces and whole input give different events");
    if deflate.is_some() {
        assert_eq!(chunked.error.is_some(), whole.error.is_some(), "{:?} vs {:?}", chunked.error, whole.error);
    } else {
        assert_eq!(chunked.error, whole.error);
    }
    if role == Role::Server && deflate.is_none() {
        // Nothing random in what a server writes: the bytes must match too.
        assert_eq!(chunked.output, whole.output);
    }
});

struct Outcome {
    events: Vec<Event>,
    error: Option<ProtocolError>,
    output: Vec<u8>,
}

fn run(role: Role, config: &Config, deflate: Option<DeflateParams>, pieces: &[&[u8]]) -> Outcome {
    let mut conn = Connection::new(role, config.clone(), deflate);
    let mut input = BytesMut::new();
    let mut events = Vec::new();
    let mut error = None;
    let mut output = Vec::new();
    'feed: for piece in pieces {
        input.extend_from_slice(piece);
        loop {
            match conn.receive(&mut input) {
                Ok(Some(event)) => {
                    check_event(&event, config);
                    events.push(event);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
            if conn.has_output() {
                output.extend_from_slice(&conn.take_output());
            }
        }
    }
    output.extend_from_slice(&conn.take_output());
    let written = decode_output(&output, role);

    if let Some(error) = &error {
        assert_eq!(conn.state(), State::Closed);
        let (opcode, payload) = written.last().expect("a failed connection wrote a Close frame");
        assert_eq!(*opcode, OpCode::Close, "the last frame written after {error:?} is not a Close");
        assert!(payload.len() >= 2);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), error.close_code().0);
        assert!(error.close_code().is_valid_on_wire());
        // Nothing more is read.
        let mut more = BytesMut::from(&[0x81u8, 0x00][..]);
        assert_eq!(conn.receive(&mut more), Ok(None));
        assert!(!conn.has_output());
    }
    // Every ping read before any Close was answered with a pong carrying its payload.
    let close_seen = events.iter().position(|e| matches!(e, Event::Close(_))).unwrap_or(events.len());
    let pings: Vec<&[u8]> =
        events[..close_seen].iter().filter_map(|e| if let Event::Ping(p) = e { Some(&p[..]) } else { None }).collect();
    let pongs: Vec<&[u8]> = written.iter().filter(|(op, _)| *op == OpCode::Pong).map(|(_, p)| &p[..]).collect();
    assert_eq!(pings, pongs);
    if let Some(Event::Close(frame)) = events.get(close_seen) {
        // The Close is echoed (with the same code), and nothing follows it.
        assert_eq!(close_seen, events.len() - 1);
        let (opcode, payload) = written.last().expect("the Close is echoed");
        assert_eq!(*opcode, OpCode::Close);
        match frame {
            Some(frame) => assert_eq!(&payload[..2], &frame.code.0.to_be_bytes()),
            None => assert!(payload.is_empty()),
        }
        assert_eq!(conn.state(), State::Closed);
    }
    Outcome { events, error, output: if role == Role::Server { output } else { Vec::new() } }
}

fn check_event(event: &Event, config: &Config) {
    match event {
        Event::Message(message) => {
            assert!(message.as_bytes().len() <= config.max_message_size);
            if let Message::Text(text) = message {
                assert!(std::str::from_utf8(text.as_bytes()).is_ok());
            }
        }
        Event::Ping(payload) | Event::Pong(payload) => assert!(payload.len() <= 125),
        Event::Close(Some(frame)) => {
            assert!(frame.code.is_valid_on_wire());
            assert!(frame.reason.len() <= 123);
        }
        Event::Close(None) => {}
    }
}

/// Decodes what a connection wrote: whole, well-formed frames, masked exactly when we are the client.
fn decode_output(output: &[u8], role: Role) -> Vec<(OpCode, Vec<u8>)> {
    let mut src = BytesMut::from(output);
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut current: Option<(OpCode, Vec<u8>)> = None;
    while let Some(event) = decoder.decode(&mut src).expect("our own output decodes") {
        match event {
            FrameEvent::Header(header) => {
                assert_eq!(header.mask.is_some(), role == Role::Client);
                assert!(header.fin && !header.rsv2 && !header.rsv3);
                current = Some((header.opcode, Vec::new()));
            }
            FrameEvent::Payload { data, last } => {
                let frame = current.as_mut().expect("payload after a header");
                frame.1.extend_from_slice(&data);
                if last {
                    frames.push(current.take().expect("a frame in progress"));
                }
            }
        }
    }
    assert!(src.is_empty() && current.is_none(), "a partial frame in the output");
    frames
}

/// The frame decoder on its own: headers and payload pieces must add up, in any split.
fn decoder_alone(wire: &[u8], style: u8) {
    let mut decoder = FrameDecoder::new();
    let mut src = BytesMut::new();
    let mut consumed = 0usize;
    let mut fed = 0usize;
    let mut open: Option<(FrameHeader, u64)> = None;
    for piece in split(wire, style) {
        src.extend_from_slice(piece);
        fed += piece.len();
        loop {
            let before = src.len();
            match decoder.decode(&mut src) {
                Ok(Some(FrameEvent::Header(header))) => {
                    assert!(open.is_none());
                    let header_len = before - src.len();
                    assert_eq!(header_len, header.encoded_len());
                    // The header re-encodes to the bytes it was read from.
                    let mut encoded = Vec::new();
                    header.encode(&mut encoded);
                    assert_eq!(&encoded[..], &wire[consumed..consumed + header_len]);
                    consumed += header_len;
                    open = Some((header, 0));
                }
                Ok(Some(FrameEvent::Payload { data, last })) => {
                    let (header, seen) = open.as_mut().expect("payload after a header");
                    assert_eq!(data.len(), before - src.len());
                    assert!(last || !data.is_empty());
                    consumed += data.len();
                    *seen += data.len() as u64;
                    assert!(*seen <= header.payload_len);
                    assert_eq!(last, *seen == header.payload_len);
                    if last {
                        open = None;
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // Whatever was not consumed is still in the buffer.
        assert_eq!(consumed + src.len(), fed);
    }
    assert_eq!(decoder.is_between_frames(), open.is_none());
}

/// Reads `bytes` as a list of frames and encodes them, so the fuzzer works on what frames say
/// rather than on masking and DEFLATE. Each frame is `[first byte, length, payload...]`:
/// - the first byte's FIN, RSV1, RSV2, RSV3 and opcode bits are used as they are (invalid ones
///   included), except that bit 0x20 (RSV2) set together with RSV1 means "compress the payload"
///   (and clear RSV2), with one compressor for the whole input, as a peer would;
/// - a length byte with its top bit set means `(len & 0x7f) * 512` bytes of a pattern (compressed
///   on its own when asked: a small frame that inflates to many KiB).
fn build_frames(bytes: &[u8], role: Role, reset: bool) -> Vec<u8> {
    let mut out = BytesMut::new();
    // Made on first use: setting up zlib costs more than running most inputs.
    let mut compressor: Option<Compressor> = None;
    let mut rng = Rng::new(bytes.len() as u64);
    let mut rest = bytes;
    while let [first, len, tail @ ..] = rest {
        let opcode_bits = first & 0x0F;
        let compress = first & 0x60 == 0x60;
        let (payload, tail): (Vec<u8>, &[u8]) = if len & 0x80 != 0 {
            let n = usize::from(len & 0x7f) * 512;
            let seed = tail.first().copied().unwrap_or(0);
            let payload = if compress { compressed_pattern(n) } else { pattern(n, seed) };
            (payload, tail.get(1..).unwrap_or(&[]))
        } else {
            let n = usize::from(*len).min(tail.len());
            let payload = if compress {
                let mut wire = Vec::new();
                let compressor = compressor.get_or_insert_with(|| Compressor::new(CompressorSettings::new(1, 15, 8)));
                if reset {
                    compressor.reset();
                }
                compressor.compress(&tail[..n], &mut wire);
                wire
            } else {
                tail[..n].to_vec()
            };
            (payload, &tail[n..])
        };
        rest = tail;
        let mask = (role == Role::Server).then(|| rng.next_u64().to_le_bytes()[..4].try_into().unwrap());
        let start = out.len();
        // Encode with a valid opcode, then put the fuzzer's bits in the first byte.
        encode_frame(&mut out, OpCode::Binary, true, false, &payload, mask);
        out[start] = (first & 0xF0 & if compress { 0xDF } else { 0xFF }) | opcode_bits;
    }
    out.to_vec()
}

/// `n` bytes repeating a 13-byte pattern that starts at `seed`.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    let unit: Vec<u8> = (0..13).map(|i| seed.wrapping_add(i)).collect();
    let mut payload = unit.repeat(n / unit.len() + 1);
    payload.truncate(n);
    payload
}

/// [`pattern`] compressed on its own (a fresh stream, which a decompressor with any history reads),
/// made once per size: compressing tens of KiB on every run would cost more than the run itself.
fn compressed_pattern(n: usize) -> Vec<u8> {
    thread_local! {
        static CACHE: RefCell<HashMap<usize, Vec<u8>>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|cache| {
        cache
            .borrow_mut()
            .entry(n)
            .or_insert_with(|| {
                let mut wire = Vec::new();
                Compressor::new(CompressorSettings::new(1, 15, 8)).compress(&pattern(n, 0), &mut wire);
                wire
            })
            .clone()
    })
}
