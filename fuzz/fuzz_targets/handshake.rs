//! The opening handshake, both sides, on arbitrary bytes delivered in arbitrary pieces.
//!
//! Input: `[split style, flags, mode, bytes...]`. The bytes are read as a request head by the server
//! side (`HeadReader::read_request`, then `validate` and `accept`) and as a response head by the
//! client side (`ClientHandshake::receive`), on their own or after a valid start of a head (mode).
//! Nothing may panic, and:
//! - a head's length is at most the bytes given and at most the limit;
//! - reading a growing buffer piece by piece gives the same result as reading it all at once;
//! - a rejection's response is a well-formed `HTTP/1.1 <status>` head whose Content-Length is right;
//! - an accepted request's 101 answer is accepted by a client that sent that request;
//! - whatever permessage-deflate offer a server accepts, its answer is acceptable to a client.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_fuzz::{split, take_control};
use tether_proto::deflate::negotiation::{accept_offer, accept_response};
use tether_proto::deflate::DeflateConfig;
use tether_proto::handshake::client::{ClientHandshake, ClientHandshakeError, ClientRequest};
use tether_proto::handshake::extensions::parse_extensions;
use tether_proto::handshake::head::{HeadError, HeadLimits, HeadReader};
use tether_proto::handshake::server::{accept, validate, AcceptOptions, Rejection};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// With mode bit 1 the server reads the bytes after this valid start of an upgrade request, and the
/// client after this valid start of an answer to its request, so that the fuzzer spends its time on
/// the headers that follow (extensions, protocols, repeats) rather than on finding these.
const REQUEST_START: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
const RESPONSE_START: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";

fuzz_target!(|data: &[u8]| {
    let ([style, flags, mode], bytes) = take_control::<3>(data);
    let limits = if mode & 2 != 0 { HeadLimits { max_bytes: 200, max_headers: 4 } } else { HeadLimits::default() };
    let server_deflate = DeflateConfig {
        no_context_takeover: flags & 2 != 0,
        max_window_bits: 9 + (flags >> 5) % 7,
        request_peer_no_context_takeover: flags & 4 != 0,
        request_peer_max_window_bits: (flags & 8 != 0).then_some(8 + (flags >> 4) % 8),
        ..DeflateConfig::default()
    };
    let (request, response) = if mode & 1 != 0 {
        ([REQUEST_START, bytes].concat(), [RESPONSE_START, bytes].concat())
    } else {
        (bytes.to_vec(), bytes.to_vec())
    };

    server_side(&request, &split(&request, style), limits, &server_deflate);
    client_side(&response, &split(&response, style), limits, flags);
    extension_negotiation(bytes, &server_deflate);
});

/// Feeds growing prefixes of `bytes` (ending at the piece boundaries) to `read` until it returns
/// something other than `Ok(None)`; returns that result and the length of the prefix it saw.
fn read_growing<T>(
    bytes: &[u8],
    pieces: &[&[u8]],
    mut read: impl FnMut(&[u8]) -> Result<Option<T>, HeadError>,
) -> (Result<Option<T>, HeadError>, usize) {
    let mut end = 0;
    for piece in pieces {
        end += piece.len();
        match read(&bytes[..end]) {
            Ok(None) => {}
            other => return (other, end),
        }
    }
    (Ok(None), end)
}

fn server_side(bytes: &[u8], pieces: &[&[u8]], limits: HeadLimits, deflate: &DeflateConfig) {
    let mut reader = HeadReader::new(limits);
    let (result, seen) = read_growing(bytes, pieces, |buf| reader.read_request(buf));
    if let Ok(Some((_, len))) = &result {
        assert!(*len <= seen, "head length {len} past the {seen} bytes given");
        assert!(*len <= limits.max_bytes, "head length {len} over the limit");
    }
    // Reading all at once must agree with reading piece by piece.
    let at_once = HeadReader::new(limits).read_request(bytes);
    assert_eq!(result, at_once, "piecewise and whole reads disagree");

    let head = match result {
        Ok(Some((head, _))) => head,
        Ok(None) => return,
        Err(error) => {
            check_rejection(&Rejection::from(error));
            return;
        }
    };
    let upgrade = match validate(head) {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            check_rejection(&rejection);
            return;
        }
    };
    let protocols = ["chat".to_owned(), "json".to_owned()];
    let accepted = accept(&upgrade, &AcceptOptions { protocols: &protocols, deflate: Some(deflate) });
    let response = accepted.response.to_bytes();
    assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(response.ends_with(b"\r\n\r\n"));
    if let Some(protocol) = &accepted.protocol {
        assert!(upgrade.protocols.contains(protocol), "chose a protocol that was not offered");
    }

    // A client that made this request accepts the answer.
    let request = ClientRequest {
        host: upgrade.host.clone(),
        protocols: upgrade.protocols.clone(),
        deflate: Some(DeflateConfig::default()),
        ..ClientRequest::default()
    };
    let (mut client, _) = ClientHandshake::with_key(&request, upgrade.key.clone());
    match client.receive(&response) {
        Ok(Some((answer, len))) => {
            assert_eq!(len, response.len());
            assert_eq!(answer.protocol, accepted.protocol);
            assert_eq!(answer.deflate.is_some(), accepted.deflate.is_some());
            if let (Some(client), Some(server)) = (answer.deflate, accepted.deflate) {
                assert_eq!(client.server_max_window_bits, server.server_max_window_bits);
                assert_eq!(client.server_no_context_takeover, server.server_no_context_takeover);
                assert_eq!(client.client_no_context_takeover, server.client_no_context_takeover);
            }
        }
        other => panic!("a client rejects our own 101: {other:?}\n{}", String::from_utf8_lossy(&response)),
    }
}

/// A rejection answers with a complete, parseable HTTP/1.1 response carrying its status.
fn check_rejection(rejection: &Rejection) {
    let status = rejection.status();
    assert!((400..600).contains(&status), "{status}");
    let response = rejection.response().to_bytes();
    assert!(response.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
    let (head, len) = HeadReader::default()
        .read_response(&response)
        .expect("a rejection is valid HTTP")
        .expect("a rejection is a complete head");
    assert_eq!(head.status, status);
    let content_length: usize = head.headers.get_one("content-length").expect("Content-Length").parse().unwrap();
    assert_eq!(content_length, response.len() - len);
    assert!(head.headers.get_all("connection").next().is_some(), "a rejection closes the connection");
}

fn client_side(bytes: &[u8], pieces: &[&[u8]], limits: HeadLimits, flags: u8) {
    let request = ClientRequest {
        host: "localhost".into(),
        target: "/".into(),
        protocols: vec!["chat".into(), "json".into()],
        deflate: (flags & 16 != 0).then(|| DeflateConfig {
            request_peer_max_window_bits: (flags & 32 != 0).then_some(10),
            ..DeflateConfig::default()
        }),
        limits,
        ..ClientRequest::default()
    };
    let (mut client, _) = ClientHandshake::with_key(&request, KEY.to_owned());
    let mut end = 0;
    for piece in pieces {
        end += piece.len();
        match client.receive(&bytes[..end]) {
            Ok(None) => continue,
            Ok(Some((accepted, len))) => {
                assert!(len <= end && len <= limits.max_bytes);
                assert_eq!(accepted.response.status, 101);
                if let Some(protocol) = &accepted.protocol {
                    assert!(request.protocols.contains(protocol));
                }
                assert!(accepted.deflate.is_none() || request.deflate.is_some());
            }
            Err(ClientHandshakeError::Rejected(head)) => assert_ne!(head.status, 101),
            Err(ClientHandshakeError::InvalidResponse(_) | ClientHandshakeError::Head(_)) => {}
        }
        break;
    }
}

/// Any permessage-deflate offer the server accepts yields an answer a client accepts.
fn extension_negotiation(bytes: &[u8], server: &DeflateConfig) {
    let Ok(offers) = parse_extensions(bytes.split(|&b| b == b'\n')) else { return };
    for offer in &offers {
        let _ = accept_response(&DeflateConfig::default(), offer);
    }
    if let Some((params, answer)) = accept_offer(server, &offers) {
        let parsed = parse_extensions([answer.as_bytes()]).expect("our answer parses");
        assert_eq!(parsed.len(), 1, "{answer}");
        let client = accept_response(&DeflateConfig::default(), &parsed[0]).expect("our answer is acceptable");
        assert_eq!(client.server_max_window_bits, params.server_max_window_bits);
        assert_eq!(client.server_no_context_takeover, params.server_no_context_takeover);
        assert_eq!(client.client_no_context_takeover, params.client_no_context_takeover);
        assert!((8..=15).contains(&params.server_max_window_bits));
        assert!((8..=15).contains(&params.client_max_window_bits));
    }
}
