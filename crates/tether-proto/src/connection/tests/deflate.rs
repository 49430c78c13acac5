//! Every connection-level rule of RFC 7692 (permessage-deflate), one byte slice at a time.

use super::*;

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
