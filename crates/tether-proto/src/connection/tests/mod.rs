//! Every connection-level rule of RFC 6455, one byte slice at a time, and the helpers that feed
//! and read a connection; the permessage-deflate rules (RFC 7692) are in `deflate`.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::close::{CloseCode, CloseFrame};
use crate::deflate::negotiation::{accept_offer, accept_response};
use crate::deflate::{Compressor, CompressorSettings};
use crate::error::{ProtocolError, SendError};
use crate::frame::{encode_frame, FrameDecoder, FrameEvent, OpCode};
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

mod deflate;
