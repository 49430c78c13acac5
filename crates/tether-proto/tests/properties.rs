//! Property tests of the protocol core: whatever the sizes, splits and settings, bytes that one side
//! encodes come out of the other side exactly as they went in.
//!
//! Each property delivers its input in randomly sized chunks, because a socket may hand the core any
//! split of the stream, and the incremental parts (frame decoder, UTF-8 validator, inflater) must not
//! care. Case counts are kept small enough for the whole file to run in a few seconds in debug mode.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use tether_proto::deflate::negotiation::{accept_offer, accept_response, client_offer};
use tether_proto::deflate::DeflateConfig;
use tether_proto::frame::{encode_frame, FrameDecoder, FrameEvent, FrameHeader, OpCode};
use tether_proto::handshake::extensions::parse_extensions;
use tether_proto::{
    Config, Connection, Event, Message, PreparedFrame, PreparedOutput, ProtocolError, Role, Utf8Validator,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Splits `bytes` into consecutive chunks whose sizes cycle through `sizes` (each at least 1).
fn chunks<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(rest.len()).clamp(1, rest.len());
        let (head, tail) = rest.split_at(size);
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}

/// Chunk sizes: mostly small (to split headers and characters), sometimes large.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(prop_oneof![3 => 1usize..=8, 2 => 1usize..=200, 1 => 1usize..=5000], 1..8)
}

/// Feeds `wire` to `conn` in chunks, collecting every event until the input is used up.
fn feed_chunked(conn: &mut Connection, wire: &[u8], sizes: &[usize]) -> Result<Vec<Event>, ProtocolError> {
    let mut input = BytesMut::new();
    let mut events = Vec::new();
    for chunk in chunks(wire, sizes) {
        input.extend_from_slice(chunk);
        while let Some(event) = conn.receive(&mut input)? {
            events.push(event);
        }
    }
    Ok(events)
}

/// Payload bytes: mostly short (control-frame and 7-bit lengths), some a few KB (16-bit lengths),
/// a few past 64 KiB (the 64-bit length form), the large ones as a cheap pattern.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => vec(any::<u8>(), 0..=130),
        3 => vec(any::<u8>(), 120..=3000),
        1 => (65_530usize..=65_600, any::<u8>())
            .prop_map(|(len, seed)| (0..len).map(|i| seed.wrapping_add((i * 7) as u8)).collect()),
    ]
}

fn mask() -> impl Strategy<Value = Option<[u8; 4]>> {
    prop::option::of(any::<[u8; 4]>())
}

/// One frame as the encoder is asked to write it.
#[derive(Debug, Clone)]
struct FrameSpec {
    opcode: OpCode,
    fin: bool,
    rsv1: bool,
    payload: Vec<u8>,
    mask: Option<[u8; 4]>,
}

fn frame_spec() -> impl Strategy<Value = FrameSpec> {
    let data = (
        prop::sample::select(vec![OpCode::Continuation, OpCode::Text, OpCode::Binary]),
        any::<bool>(),
        any::<bool>(),
        payload(),
        mask(),
    )
        .prop_map(|(opcode, fin, rsv1, payload, mask)| {
            // permessage-deflate only allows RSV1 on a message's first frame.
            let rsv1 = rsv1 && opcode != OpCode::Continuation;
            FrameSpec { opcode, fin, rsv1, payload, mask }
        });
    // Control frames: never fragmented, no RSV1, at most 125 bytes.
    let control =
        (prop::sample::select(vec![OpCode::Close, OpCode::Ping, OpCode::Pong]), vec(any::<u8>(), 0..=125), mask())
            .prop_map(|(opcode, payload, mask)| FrameSpec { opcode, fin: true, rsv1: false, payload, mask });
    prop_oneof![3 => data, 1 => control]
}

/// Every property runs this many random cases (more for the cheap ones).
fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// 1. Frames: encode, then decode in arbitrary chunks.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn frames_round_trip_through_the_decoder_in_any_chunking(
        specs in vec(frame_spec(), 1..6),
        sizes in chunk_sizes(),
    ) {
        let mut wire = BytesMut::new();
        for spec in &specs {
            encode_frame(&mut wire, spec.opcode, spec.fin, spec.rsv1, &spec.payload, spec.mask);
        }

        let mut decoder = FrameDecoder::new();
        let mut src = BytesMut::new();
        let mut decoded: Vec<(FrameHeader, Vec<u8>)> = Vec::new();
        let mut open: Option<(FrameHeader, Vec<u8>)> = None;
        for chunk in chunks(&wire, &sizes) {
            src.extend_from_slice(chunk);
            while let Some(event) = decoder.decode(&mut src).unwrap() {
                match event {
                    FrameEvent::Header(header) => {
                        prop_assert!(open.is_none(), "a header inside a frame's payload");
                        open = Some((header, Vec::new()));
                    }
                    FrameEvent::Payload { data, last } => {
                        let (header, payload) = open.as_mut().expect("payload after a header");
                        prop_assert!(last || !data.is_empty(), "an empty piece that does not end the frame");
                        payload.extend_from_slice(&data);
                        if last {
                            prop_assert_eq!(payload.len() as u64, header.payload_len);
                            decoded.push(open.take().unwrap());
                        }
                    }
                }
            }
        }
        prop_assert!(src.is_empty());
        prop_assert!(open.is_none());
        prop_assert!(decoder.is_between_frames());
        prop_assert_eq!(decoded.len(), specs.len());
        for (spec, (header, payload)) in specs.iter().zip(&decoded) {
            let expected = FrameHeader {
                fin: spec.fin,
                rsv1: spec.rsv1,
                mask: spec.mask,
                ..FrameHeader::new(spec.opcode, spec.payload.len() as u64)
            };
            prop_assert_eq!(*header, expected);
            prop_assert_eq!(payload, &spec.payload);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Messages: fragmented, masked, with pings in between, reassembled by a server.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Content {
    Text(String),
    Binary(Vec<u8>),
}

impl Content {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(data) => data,
        }
    }

    fn opcode(&self) -> OpCode {
        match self {
            Self::Text(_) => OpCode::Text,
            Self::Binary(_) => OpCode::Binary,
        }
    }

    fn event(&self) -> Event {
        Event::Message(match self {
            Self::Text(text) => Message::Text(text.as_str().into()),
            Self::Binary(data) => Message::Binary(Bytes::copy_from_slice(data)),
        })
    }
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        // Any characters, so multi-byte ones get split across fragments and chunks.
        vec(any::<char>(), 0..200).prop_map(|chars| Content::Text(chars.into_iter().collect())),
        vec(any::<u8>(), 0..2000).prop_map(Content::Binary),
    ]
}

/// A message, where to cut it into fragments, and the pings to slip in after each fragment.
#[derive(Debug, Clone)]
struct Fragmented {
    content: Content,
    cuts: Vec<Index>,
    pings: Vec<Option<Vec<u8>>>,
    masks: Vec<[u8; 4]>,
}

fn fragmented() -> impl Strategy<Value = Fragmented> {
    (
        content(),
        vec(any::<Index>(), 0..5),
        vec(prop::option::weighted(0.3, vec(any::<u8>(), 0..=125)), 6),
        vec(any::<[u8; 4]>(), 12),
    )
        .prop_map(|(content, cuts, pings, masks)| Fragmented { content, cuts, pings, masks })
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn fragmented_messages_with_interleaved_pings_are_reassembled_exactly(
        messages in vec(fragmented(), 1..6),
        sizes in chunk_sizes(),
    ) {
        let mut wire = BytesMut::new();
        let mut expected_events = Vec::new();
        let mut expected_output = BytesMut::new();
        for message in &messages {
            let bytes = message.content.bytes();
            let mut cuts: Vec<usize> = message.cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.push(bytes.len());
            let mut start = 0;
            let mut masks = message.masks.iter().cycle();
            for (i, &end) in cuts.iter().enumerate() {
                let opcode = if i == 0 { message.content.opcode() } else { OpCode::Continuation };
                let fin = i + 1 == cuts.len();
                encode_frame(&mut wire, opcode, fin, false, &bytes[start..end], masks.next().copied());
                start = end;
                if fin {
                    expected_events.push(message.content.event());
                }
                // A ping between fragments (or after the message).
                if let Some(Some(ping)) = message.pings.get(i) {
                    encode_frame(&mut wire, OpCode::Ping, true, false, ping, masks.next().copied());
                    expected_events.push(Event::Ping(Bytes::copy_from_slice(ping)));
                    encode_frame(&mut expected_output, OpCode::Pong, true, false, ping, None);
                }
            }
        }

        let mut server = Connection::new(Role::Server, Config::default(), None);
        let events = feed_chunked(&mut server, &wire, &sizes).unwrap();
        prop_assert_eq!(events, expected_events);
        // Every ping is answered with a pong carrying its payload, unmasked, in order.
        prop_assert_eq!(&server.take_output()[..], &expected_output[..]);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. permessage-deflate: a client and a server talk both ways under random settings.
// ---------------------------------------------------------------------------------------------

fn deflate_config() -> impl Strategy<Value = DeflateConfig> {
    (
        0u32..=9,
        any::<bool>(),
        9u8..=15,
        1u8..=9,
        any::<bool>(),
        // 8 bits: zlib cannot make such a stream, so the peer falls back to sending uncompressed.
        prop::option::of(prop_oneof![1 => Just(8u8), 3 => 9u8..=15]),
        prop_oneof![3 => Just(0usize), 1 => 0usize..=64],
    )
        .prop_map(
            |(
                level,
                no_context_takeover,
                max_window_bits,
                mem_level,
                request_peer_no_context_takeover,
                request_peer_max_window_bits,
                min_message_size,
            )| DeflateConfig {
                level,
                no_context_takeover,
                max_window_bits,
                mem_level,
                request_peer_no_context_takeover,
                request_peer_max_window_bits,
                min_message_size,
            },
        )
}

/// Message content that compresses (words, repeats) as well as content that does not.
fn deflate_content() -> impl Strategy<Value = Content> {
    let words = prop::sample::select(vec!["tether", " ", "websocket ", "hello", "κόσμε", "𝄞", "deflate\n", "{\"id\":"]);
    prop_oneof![
        4 => vec(words, 0..150).prop_map(|w| Content::Text(w.concat())),
        2 => vec(any::<char>(), 0..100).prop_map(|chars| Content::Text(chars.into_iter().collect())),
        2 => vec(any::<u8>(), 0..1500).prop_map(Content::Binary),
        1 => (1usize..40_000, any::<u8>())
            .prop_map(|(len, seed)| Content::Binary((0..len).map(|i| seed ^ ((i % 61) as u8)).collect())),
    ]
}

/// What happens next in a conversation.
#[derive(Debug, Clone)]
enum Step {
    /// The client (true) or the server (false) sends a message, as a [`PreparedFrame`] (a
    /// broadcast's, compressed without context) or not.
    Send { from_client: bool, prepared: bool, content: Content },
    /// Everything queued so far is delivered both ways.
    Deliver,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>(), deflate_content())
            .prop_map(|(from_client, prepared, content)| Step::Send { from_client, prepared, content }),
        1 => Just(Step::Deliver),
    ]
}

/// One direction of the conversation: bytes sent but not yet delivered, and what they should become.
#[derive(Default)]
struct Direction {
    wire: BytesMut,
    expected: Vec<Event>,
}

impl Direction {
    /// `from` sends `content`; it must be compressed (RSV1 on its frame) exactly when `compresses`.
    fn send(&mut self, from: &mut Connection, content: &Content, prepared: bool, compresses: bool) {
        let mut shared = None;
        match (content, prepared) {
            (Content::Text(text), false) => from.send_text(text).unwrap(),
            (Content::Binary(data), false) => from.send_binary(data).unwrap(),
            (Content::Text(text), true) => shared = Some(from.send_prepared(PreparedFrame::text(text)).unwrap()),
            (Content::Binary(data), true) => shared = Some(from.send_prepared(PreparedFrame::binary(data)).unwrap()),
        }
        let mut frame = from.take_output();
        if let Some(PreparedOutput::Shared(bytes)) = shared {
            assert!(frame.is_empty());
            frame.extend_from_slice(&bytes);
        }
        assert_eq!(frame[0] & 0x40 != 0, compresses, "RSV1 on a {}-byte message", content.bytes().len());
        self.wire.unsplit(frame);
        self.expected.push(content.event());
    }

    fn deliver(&mut self, to: &mut Connection, sizes: &[usize]) {
        let events = feed_chunked(to, &self.wire.split(), sizes).expect("the peer's frames are valid");
        assert_eq!(events, std::mem::take(&mut self.expected));
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn compressed_conversations_arrive_intact_under_any_negotiated_settings(
        client_deflate in deflate_config(),
        server_deflate in deflate_config(),
        steps in vec(step(), 1..16),
        sizes in chunk_sizes(),
    ) {
        // Negotiate on the parsed header values, exactly as the handshakes do.
        let offer = client_offer(&client_deflate);
        let offers = parse_extensions([offer.as_bytes()]).unwrap();
        let (server_params, response) = accept_offer(&server_deflate, &offers).expect("our own offer is acceptable");
        let answered = parse_extensions([response.as_bytes()]).unwrap();
        prop_assert_eq!(answered.len(), 1);
        let client_params = accept_response(&client_deflate, &answered[0]).expect("our own answer is acceptable");
        // Both sides must agree on how each direction is compressed.
        prop_assert_eq!(client_params.server_no_context_takeover, server_params.server_no_context_takeover);
        prop_assert_eq!(client_params.client_no_context_takeover, server_params.client_no_context_takeover);
        prop_assert_eq!(client_params.server_max_window_bits, server_params.server_max_window_bits);

        let mut client = Connection::new(
            Role::Client,
            Config { deflate: client_deflate.clone(), ..Config::default() },
            Some(client_params),
        );
        let mut server = Connection::new(
            Role::Server,
            Config { deflate: server_deflate.clone(), ..Config::default() },
            Some(server_params),
        );
        // Whether each side compresses: zlib needs a window of 9 bits or more, and short messages
        // may be sent as they are.
        let client_bits = client_params.client_max_window_bits.min(client_deflate.max_window_bits);
        let server_bits = server_params.server_max_window_bits.min(server_deflate.max_window_bits);
        let (client_min, server_min) = (client_deflate.min_message_size, server_deflate.min_message_size);
        let mut to_server = Direction::default();
        let mut to_client = Direction::default();
        for step in steps.iter().chain([&Step::Deliver]) {
            match step {
                Step::Send { from_client: true, prepared, content } => {
                    let compresses = client_bits >= 9 && content.bytes().len() >= client_min;
                    to_server.send(&mut client, content, *prepared, compresses);
                }
                Step::Send { from_client: false, prepared, content } => {
                    let compresses = server_bits >= 9 && content.bytes().len() >= server_min;
                    to_client.send(&mut server, content, *prepared, compresses);
                }
                Step::Deliver => {
                    to_server.deliver(&mut server, &sizes);
                    to_client.deliver(&mut client, &sizes);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Incremental UTF-8 validation agrees with the standard library.
// ---------------------------------------------------------------------------------------------

/// Byte strings that are mostly UTF-8 with the occasional invalid or truncated sequence.
fn mostly_utf8() -> impl Strategy<Value = Vec<u8>> {
    let segment = prop_oneof![
        4 => any::<String>().prop_map(String::into_bytes),
        2 => vec(any::<u8>(), 0..8),
        // Sequences at the edges of validity: overlongs, surrogates, past U+10FFFF, truncations.
        2 => prop::sample::select(vec![
            vec![0xC0, 0xAF],
            vec![0xC2],
            vec![0xE0, 0x80, 0x80],
            vec![0xE0, 0xA0],
            vec![0xED, 0xA0, 0x80],
            vec![0xED, 0x9F, 0xBF],
            vec![0xEF, 0xBF, 0xBF],
            vec![0xF0, 0x8F, 0xBF, 0xBF],
            vec![0xF0, 0x90, 0x80],
            vec![0xF4, 0x8F, 0xBF, 0xBF],
            vec![0xF4, 0x90, 0x80, 0x80],
            vec![0xF5],
            vec![0xFF],
            vec![0x80],
        ]),
    ];
    vec(segment, 0..8).prop_map(|segments| segments.concat())
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn incremental_utf8_validation_agrees_with_std(bytes in mostly_utf8(), cuts in vec(any::<Index>(), 0..6)) {
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        let mut validator = Utf8Validator::default();
        let mut start = 0;
        let mut failed = false;
        for &end in &cuts {
            let fed = validator.feed(&bytes[start..end]);
            // A piece fails exactly when the stream so far can no longer become valid UTF-8: std
            // reports an error that is not merely an unexpected end of input.
            let impossible = matches!(std::str::from_utf8(&bytes[..end]), Err(e) if e.error_len().is_some());
            prop_assert_eq!(fed.is_err(), impossible, "piece {:?} of {:?}", start..end, bytes);
            start = end;
            if fed.is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            prop_assert_eq!(validator.finish().is_ok(), std::str::from_utf8(&bytes).is_ok(), "{:?}", bytes);
        } else {
            prop_assert!(std::str::from_utf8(&bytes).is_err());
        }
    }
}
