//! Every connection-level rule of RFC 6455 and RFC 7692, one byte slice at a time.

use super::*;
use crate::deflate::negotiation::{accept_offer, accept_response};
use crate::deflate::{Compressor, CompressorSettings};
use crate::handshake::extensions::parse_extensions;

const MASK: Option<[u8; 4]> = Some([0x11, 0x22, 0x33, 0x44]);

fn server() -> Connection {
    Connection::new(Role::Server, Config::default(), None)
}

/// A masked client frame.
fn frame(opcode: OpCode, fin: bool, payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    encode_frame(&mut out, opcode, fin, false, payload, MASK);
    out
}

fn raw_frame(first: u8, payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    encode_frame(&mut out, OpCode::Text, true, false, payload, MASK);
    out[0] = first;
    out
}

/// Feeds everything and collects events until the input is used up or the connection fails.
fn feed(conn: &mut Connection, bytes: &[u8]) -> (Vec<Event>, Option<ProtocolError>) {
    let mut input = BytesMut::from(bytes);
    let mut events = Vec::new();
    loop {
        match conn.receive(&mut input) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return (events, None),
            Err(error) => return (events, Some(error)),
        }
    }
}

/// Decodes the frames a server wrote.
fn written(conn: &mut Connection) -> Vec<(OpCode, Vec<u8>)> {
    let mut out = conn.take_output();
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut current = None;
    while let Some(event) = decoder.decode(&mut out).unwrap() {
        match event {
            FrameEvent::Header(header) => current = Some((header.opcode, Vec::new())),
            FrameEvent::Payload { data, last } => {
                current.as_mut().unwrap().1.extend_from_slice(&data);
                if last {
                    frames.push(current.take().unwrap());
                }
            }
        }
    }
    frames
}

fn close_code_written(conn: &mut Connection) -> Option<u16> {
    written(conn)
        .into_iter()
        .find(|(op, _)| *op == OpCode::Close)
        .map(|(_, payload)| u16::from_be_bytes([payload[0], payload[1]]))
}

fn assert_fails_with(bytes: &[u8], code: u16) {
    let mut conn = server();
    let (_, error) = feed(&mut conn, bytes);
    let error = error.unwrap_or_else(|| panic!("expected failure with {code}"));
    assert_eq!(error.close_code().0, code, "{error}");
    assert_eq!(close_code_written(&mut conn), Some(code));
    assert_eq!(conn.state(), State::Closed);
}

fn text(s: &str) -> Event {
    Event::Message(Message::Text(Utf8Bytes::from(s)))
}

#[test]
fn receives_a_text_and_a_binary_message() {
    let mut conn = server();
    let mut bytes = frame(OpCode::Text, true, "héllo".as_bytes());
    bytes.extend_from_slice(&frame(OpCode::Binary, true, &[0, 1, 2]));
    let (events, error) = feed(&mut conn, &bytes);
    assert_eq!(error, None);
    assert_eq!(events, vec![text("héllo"), Event::Message(Message::Binary(Bytes::from_static(&[0, 1, 2])))]);
}

#[test]
fn reassembles_fragments_around_an_interleaved_ping() {
    let mut conn = server();
    let mut bytes = frame(OpCode::Text, false, b"frag");
    bytes.extend_from_slice(&frame(OpCode::Ping, true, b"hi"));
    bytes.extend_from_slice(&frame(OpCode::Continuation, false, b"men"));
    bytes.extend_from_slice(&frame(OpCode::Continuation, true, b"ted"));
    let (events, error) = feed(&mut conn, &bytes);
    assert_eq!(error, None);
    assert_eq!(events, vec![Event::Ping(Bytes::from_static(b"hi")), text("fragmented")]);
    assert_eq!(written(&mut conn), vec![(OpCode::Pong, b"hi".to_vec())]);
}

#[test]
fn works_when_fed_one_byte_at_a_time() {
    let mut conn = server();
    let mut bytes = frame(OpCode::Text, false, "κόσ".as_bytes());
    bytes.extend_from_slice(&frame(OpCode::Continuation, true, "με".as_bytes()));
    let mut events = Vec::new();
    let mut input = BytesMut::new();
    for byte in bytes.iter() {
        input.extend_from_slice(&[*byte]);
        while let Some(event) = conn.receive(&mut input).unwrap() {
            events.push(event);
        }
    }
    assert_eq!(events, vec![text("κόσμε")]);
}

#[test]
fn server_requires_masked_frames_and_client_refuses_them() {
    let mut unmasked = BytesMut::new();
    encode_frame(&mut unmasked, OpCode::Text, true, false, b"x", None);
    assert_fails_with(&unmasked, 1002);

    let mut client = Connection::new(Role::Client, Config::default(), None);
    let (_, error) = feed(&mut client, &frame(OpCode::Text, true, b"x"));
    assert_eq!(error, Some(ProtocolError::MaskedFrame));
}

#[test]
fn reserved_bits_and_opcodes_fail_with_1002() {
    assert_fails_with(&raw_frame(0xC1, b"x"), 1002); // RSV1 without deflate
    assert_fails_with(&raw_frame(0xA1, b"x"), 1002); // RSV2
    assert_fails_with(&raw_frame(0x91, b"x"), 1002); // RSV3
    for opcode in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_fails_with(&raw_frame(0x80 | opcode, b""), 1002);
    }
}

#[test]
fn control_frame_rules() {
    assert_fails_with(&frame(OpCode::Ping, true, &[0; 126]), 1002);
    assert_fails_with(&frame(OpCode::Ping, false, b"x"), 1002);
    let mut conn = server();
    let (events, error) = feed(&mut conn, &frame(OpCode::Ping, true, &[7; 125]));
    assert_eq!(error, None);
    assert_eq!(events, vec![Event::Ping(Bytes::from(vec![7; 125]))]);
}

#[test]
fn fragmentation_rules() {
    assert_fails_with(&frame(OpCode::Continuation, true, b"x"), 1002);
    let mut bytes = frame(OpCode::Text, false, b"a");
    bytes.extend_from_slice(&frame(OpCode::Text, true, b"b"));
    assert_fails_with(&bytes, 1002);
}

#[test]
fn invalid_utf8_fails_before_the_frame_ends() {
    // Autobahn 6.4.3: the first part of the frame already holds an impossible sequence.
    let payload = ["κόσμε".as_bytes(), &[0xf4, 0x90, 0x80, 0x80], b"edited"].concat();
    let bytes = frame(OpCode::Text, true, &payload);
    let header_len = 2 + 4;
    let cut = header_len + "κόσμε".len() + 2;
    let mut conn = server();
    let (_, error) = feed(&mut conn, &bytes[..cut]);
    assert_eq!(error, Some(ProtocolError::InvalidUtf8));
    assert_eq!(close_code_written(&mut conn), Some(1007));
}

#[test]
fn invalid_utf8_across_fragments_and_truncated_text_fail_with_1007() {
    let mut bytes = frame(OpCode::Text, false, &[0xce]);
    bytes.extend_from_slice(&frame(OpCode::Continuation, true, &[0xba, 0xe1]));
    assert_fails_with(&bytes, 1007);
    let mut split_ok = frame(OpCode::Text, false, &[0xce]);
    split_ok.extend_from_slice(&frame(OpCode::Continuation, true, &[0xba]));
    let mut conn = server();
    assert_eq!(feed(&mut conn, &split_ok).0, vec![text("κ")]);
}

#[test]
fn size_limits_fail_with_1009_at_the_header() {
    let config = Config { max_frame_size: 100, max_message_size: 150, ..Config::default() };
    let mut conn = Connection::new(Role::Server, config.clone(), None);
    // Only the header of a too-large frame: refused without its payload.
    let header = &frame(OpCode::Binary, true, &[0; 101])[..8];
    let (_, error) = feed(&mut conn, header);
    assert_eq!(error, Some(ProtocolError::FrameTooLarge { limit: 100 }));
    assert_eq!(close_code_written(&mut conn), Some(1009));

    let mut conn = Connection::new(Role::Server, config, None);
    let mut bytes = frame(OpCode::Binary, false, &[0; 100]);
    bytes.extend_from_slice(&frame(OpCode::Continuation, true, &[0; 51]));
    let (_, error) = feed(&mut conn, &bytes);
    assert_eq!(error, Some(ProtocolError::MessageTooLarge { limit: 150 }));
}

#[test]
fn close_is_echoed_and_nothing_is_read_after_it() {
    let mut conn = server();
    let mut bytes = frame(OpCode::Close, true, &[0x03, 0xe8, b'o', b'k']);
    bytes.extend_from_slice(&frame(OpCode::Text, true, b"ignored"));
    let (events, error) = feed(&mut conn, &bytes);
    assert_eq!(error, None);
    assert_eq!(events, vec![Event::Close(Some(CloseFrame { code: CloseCode::NORMAL, reason: "ok".into() }))]);
    assert_eq!(written(&mut conn), vec![(OpCode::Close, vec![0x03, 0xe8])]);
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.send_text("late"), Err(SendError::Closed));
}

#[test]
fn empty_close_is_answered_empty() {
    let mut conn = server();
    let (events, _) = feed(&mut conn, &frame(OpCode::Close, true, &[]));
    assert_eq!(events, vec![Event::Close(None)]);
    assert_eq!(written(&mut conn), vec![(OpCode::Close, vec![])]);
}

#[test]
fn bad_close_frames() {
    assert_fails_with(&frame(OpCode::Close, true, &[0x03]), 1002);
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000] {
        assert_fails_with(&frame(OpCode::Close, true, &code.to_be_bytes()), 1002);
    }
    assert_fails_with(&frame(OpCode::Close, true, &[0x03, 0xe8, 0xff]), 1007);
}

#[test]
fn local_close_waits_for_the_peer() {
    let mut conn = server();
    conn.close(CloseCode::GOING_AWAY, "bye").unwrap();
    assert_eq!(conn.state(), State::Closing);
    assert_eq!(written(&mut conn), vec![(OpCode::Close, [&1001u16.to_be_bytes()[..], b"bye"].concat())]);
    assert_eq!(conn.ping(b""), Err(SendError::Closed));
    // A message still in flight from the peer is delivered, then its Close completes the handshake.
    let mut bytes = frame(OpCode::Text, true, b"last");
    bytes.extend_from_slice(&frame(OpCode::Close, true, &1001u16.to_be_bytes()));
    let (events, _) = feed(&mut conn, &bytes);
    assert_eq!(events.len(), 2);
    assert_eq!(conn.state(), State::Closed);
    assert!(!conn.has_output(), "no second Close");
}

#[test]
fn client_masks_and_server_does_not() {
    let mut client = Connection::new(Role::Client, Config::default(), None);
    client.send_text("hi").unwrap();
    let out = client.take_output();
    assert_eq!(out[1] & 0x80, 0x80);
    let mut conn = server();
    conn.send_text("hi").unwrap();
    assert_eq!(conn.take_output()[..], [0x81, 0x02, b'h', b'i']);
}

#[test]
fn prepared_frames_are_shared_by_servers_and_masked_by_clients() {
    for size in [0, 5, 125, 126, 65_535, 65_536] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let prepared = PreparedFrame::binary(&payload);
        // A server hands the very bytes back, after what it had queued (no copy).
        let mut conn = server();
        conn.ping(b"p").unwrap();
        match conn.send_prepared(prepared.clone()).unwrap() {
            PreparedOutput::Shared(bytes) => {
                assert_eq!(bytes.as_ptr(), prepared.as_bytes().as_ptr(), "shared, not copied");
                assert_eq!(conn.output_len(), 3, "the ping stays in the output, written first");
            }
            other => panic!("a server shares: {other:?}"),
        }
        // A client masks a copy, which a server accepts as the same message.
        let mut client = Connection::new(Role::Client, Config::default(), None);
        assert_eq!(client.send_prepared(prepared.clone()), Ok(PreparedOutput::Queued));
        let wire = client.take_output();
        assert_eq!(wire[1] & 0x80, 0x80, "masked");
        assert_eq!(wire.len(), prepared.len() + 4, "the mask key is the only addition");
        let (events, error) = feed(&mut server(), &wire);
        assert_eq!(error, None, "{size} bytes");
        assert_eq!(events, [Event::Message(Message::Binary(payload.into()))]);
    }
    let mut client = Connection::new(Role::Client, Config::default(), None);
    let _ = client.send_prepared(PreparedFrame::text("héllo")).unwrap();
    let (events, _) = feed(&mut server(), &client.take_output());
    assert_eq!(events, [text("héllo")]);
}

#[test]
fn prepared_frames_are_refused_after_our_close() {
    for role in [Role::Server, Role::Client] {
        let mut conn = Connection::new(role, Config::default(), None);
        conn.close(CloseCode::NORMAL, "").unwrap();
        let queued = conn.output_len();
        assert_eq!(conn.send_prepared(PreparedFrame::text("late")), Err(SendError::Closed), "{role:?}");
        assert_eq!(conn.output_len(), queued, "nothing follows the Close frame");
    }
}

/// A client and a server that negotiated permessage-deflate from `offer`.
fn compressed_pair(offer: &str, server_config: DeflateConfig) -> (Connection, Connection) {
    let offers = parse_extensions([offer.as_bytes()]).unwrap();
    let (params, response) = accept_offer(&server_config, &offers).unwrap();
    let client_params =
        accept_response(&DeflateConfig::default(), &parse_extensions([response.as_bytes()]).unwrap()[0]).unwrap();
    let server = Connection::new(Role::Server, Config { deflate: server_config, ..Config::default() }, Some(params));
    let client = Connection::new(Role::Client, Config::default(), Some(client_params));
    (client, server)
}

fn pass(from: &mut Connection, to: &mut Connection) -> Vec<Event> {
    let bytes = from.take_output();
    let (events, error) = feed(to, &bytes);
    assert_eq!(error, None);
    events
}

#[test]
fn compressed_messages_round_trip_both_ways() {
    for offer in [
        "permessage-deflate",
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=9; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=8",
    ] {
        let (mut client, mut server) = compressed_pair(offer, DeflateConfig::default());
        let big = "tether ".repeat(5000);
        for message in ["", "a", "hello hello hello", big.as_str()] {
            client.send_text(message).unwrap();
            assert_eq!(pass(&mut client, &mut server), vec![text(message)], "{offer}");
            server.send_binary(message.as_bytes()).unwrap();
            let expected = Event::Message(Message::Binary(Bytes::copy_from_slice(message.as_bytes())));
            assert_eq!(pass(&mut server, &mut client), vec![expected], "{offer}");
        }
    }
}

#[test]
fn compression_actually_shrinks_and_sets_rsv1() {
    let (_, mut server) = compressed_pair("permessage-deflate", DeflateConfig::default());
    server.send_text(&"a".repeat(1000)).unwrap();
    let out = server.take_output();
    assert_eq!(out[0], 0xC1);
    assert!(out.len() < 100);
}

#[test]
fn window_of_eight_bits_sends_uncompressed() {
    let (_, mut server) = compressed_pair("permessage-deflate; server_max_window_bits=8", DeflateConfig::default());
    server.send_text("abc").unwrap();
    assert_eq!(server.take_output()[..], [0x81, 3, b'a', b'b', b'c']);
}

#[test]
fn compressed_fragmented_message_with_rsv1_on_the_first_frame_only() {
    let (_, mut server) = compressed_pair("permessage-deflate", DeflateConfig::default());
    let mut wire = Vec::new();
    Compressor::new(CompressorSettings::new(6, 15, 8)).compress(b"Hello, fragmented world", &mut wire);
    let (a, b) = wire.split_at(wire.len() / 2);
    let mut bytes = BytesMut::new();
    encode_frame(&mut bytes, OpCode::Text, false, true, a, MASK);
    encode_frame(&mut bytes, OpCode::Continuation, true, false, b, MASK);
    let (events, error) = feed(&mut server, &bytes);
    assert_eq!(error, None);
    assert_eq!(events, vec![text("Hello, fragmented world")]);

    let mut bad = BytesMut::new();
    encode_frame(&mut bad, OpCode::Text, false, true, a, MASK);
    encode_frame(&mut bad, OpCode::Continuation, true, true, b, MASK);
    let (_, error) = feed(&mut server, &bad);
    assert_eq!(error, Some(ProtocolError::ReservedBitsSet));
}

#[test]
fn a_compression_bomb_fails_with_1009_within_the_limit() {
    let offers = parse_extensions([b"permessage-deflate".as_slice()]).unwrap();
    let (params, _) = accept_offer(&DeflateConfig::default(), &offers).unwrap();
    let config = Config { max_message_size: 1 << 20, ..Config::default() };
    let mut server_small = Connection::new(Role::Server, config, Some(params));
    let mut wire = Vec::new();
    Compressor::new(CompressorSettings::new(9, 15, 8)).compress(&vec![0u8; 50 << 20], &mut wire);
    let mut bytes = BytesMut::new();
    encode_frame(&mut bytes, OpCode::Binary, true, true, &wire, MASK);
    assert!(bytes.len() < 100_000);
    let (_, error) = feed(&mut server_small, &bytes);
    assert_eq!(error, Some(ProtocolError::MessageTooLarge { limit: 1 << 20 }));
    assert_eq!(close_code_written(&mut server_small), Some(1009));
}

#[test]
fn corrupt_compressed_data_fails_with_1007() {
    let (_, mut server) = compressed_pair("permessage-deflate", DeflateConfig::default());
    let mut bytes = BytesMut::new();
    encode_frame(&mut bytes, OpCode::Binary, true, true, &[0xff; 8], MASK);
    let (_, error) = feed(&mut server, &bytes);
    assert_eq!(error, Some(ProtocolError::InvalidCompressedData));
    assert_eq!(close_code_written(&mut server), Some(1007));
}

#[test]
fn empty_messages_between_compressed_ones_arrive_empty() {
    // With context takeover, zlib writes nothing for an empty message after another one; the
    // payload must still be a compressed empty message, or the next message arrives corrupted.
    let (mut client, mut server) = compressed_pair("permessage-deflate", DeflateConfig::default());
    for message in ["hello", "", "", "hello", ""] {
        server.send_text(message).unwrap();
        assert_eq!(pass(&mut server, &mut client), vec![text(message)], "{message:?}");
        client.send_text(message).unwrap();
        assert_eq!(pass(&mut client, &mut server), vec![text(message)], "{message:?}");
    }
}

#[test]
fn rfc_7692_final_block_example_arrives_in_one_read() {
    // RFC 7692 §7.2.3.4: "Hello" compressed in a block with BFINAL set, followed by 0x00. Whether it
    // arrives in one read or in pieces, it is the same message.
    let payload = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    let mut bytes = BytesMut::new();
    encode_frame(&mut bytes, OpCode::Text, true, true, &payload, MASK);
    encode_frame(&mut bytes, OpCode::Text, true, true, &payload, MASK);
    let (_, mut server) = compressed_pair("permessage-deflate", DeflateConfig::default());
    let (events, error) = feed(&mut server, &bytes);
    assert_eq!(error, None);
    assert_eq!(events, vec![text("Hello"), text("Hello")]);
}

#[test]
fn a_broadcast_is_compressed_once_for_every_connection_that_can_take_it() {
    // Forty connections on one thread with every kind of agreement: context takeover or not, and
    // windows from 8 to 15 bits. Each gets private messages and broadcasts in turns.
    let offers = [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=9",
        "permessage-deflate; server_max_window_bits=15",
        "permessage-deflate; server_max_window_bits=8",
    ];
    let config = DeflateConfig { max_window_bits: 15, ..DeflateConfig::server() };
    let mut pairs: Vec<_> = (0..40).map(|i| compressed_pair(offers[i % offers.len()], config.clone())).collect();
    let chat = |i: usize| format!(r#"{{"channel":"lobby","offset":{i},"data":{{"text":"message number {i}"}}}}"#);
    for round in 0..12 {
        let broadcast = PreparedFrame::text(&chat(1000 + round));
        let mut compressed_copies = std::collections::HashSet::new();
        for (i, (client, server)) in pairs.iter_mut().enumerate() {
            let message = if (round + i) % 3 == 0 {
                server.send_text(&chat(round * 40 + i)).unwrap();
                chat(round * 40 + i)
            } else {
                let mut wire = server.take_output();
                match server.send_prepared(broadcast.clone()).unwrap() {
                    PreparedOutput::Shared(bytes) => {
                        assert_eq!(bytes[0] & 0x40 != 0, !offers[i % offers.len()].ends_with("=8"), "RSV1, {i}");
                        if bytes[0] & 0x40 != 0 {
                            compressed_copies.insert(bytes.as_ptr());
                        }
                        wire.extend_from_slice(&bytes);
                    }
                    PreparedOutput::Queued => wire.unsplit(server.take_output()),
                }
                let (events, error) = feed(client, &wire);
                assert_eq!(error, None, "connection {i}, round {round}");
                assert_eq!(events, [text(&chat(1000 + round))], "connection {i}, round {round}");
                continue;
            };
            assert_eq!(pass(server, client), [text(&message)], "connection {i}, round {round}");
            client.send_text(&message).unwrap();
            assert_eq!(pass(client, server), [text(&message)], "connection {i}, round {round}");
        }
        assert_eq!(compressed_copies.len(), 1, "compressed once, the same bytes for all, round {round}");
    }
    // What each keeps between messages is at most 1 KiB and one window (32 KiB when the peer could
    // not be asked for less), never zlib's state.
    for (client, server) in &pairs {
        assert!(server.compression_memory() <= 2 * (32 << 10) + 256, "{}", server.compression_memory());
        assert!(client.compression_memory() <= 2 * (32 << 10) + 256);
    }
    // With a server's defaults and a browser's offer: 1 KiB of what it sent, 4 KiB of what it received.
    let (mut client, mut server) =
        compressed_pair("permessage-deflate; client_max_window_bits", DeflateConfig::server());
    let big = "x".repeat(100_000);
    server.send_text(&big).unwrap();
    pass(&mut server, &mut client);
    client.send_text(&big).unwrap();
    pass(&mut client, &mut server);
    assert_eq!(server.compression_memory(), std::mem::size_of::<DeflateState>() + (1 << 10) + (4 << 10));
}
