//! `tether serve` end to end: the real binary on an ephemeral port, driven over raw TCP.
//!
//! Bad handshakes must get the right HTTP status, protocol errors the right close code, and the
//! server must keep serving everyone else.

mod common;

use std::io::{Read, Write};

use bytes::BytesMut;
use common::{status_of, upgrade, Served};
use tether_proto::frame::{encode_frame, OpCode};
use tether_proto::handshake::client::ClientRequest;
use tether_proto::{CloseCode, CloseFrame, Event, Message};

#[test]
fn bad_handshakes_get_the_right_status() {
    let served = Served::start(&[]);
    let cases = [
        (upgrade("/echo", ""), "400", "missing version"),
        (
            upgrade("/echo", "Sec-WebSocket-Version: 13\r\n").replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
            "400",
            "bad key",
        ),
        (upgrade("/echo", "Sec-WebSocket-Version: 13\r\n").replace("GET", "POST"), "400", "not GET"),
        (upgrade("/echo", "Sec-WebSocket-Version: 8\r\n"), "426", "wrong version"),
        ("GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_owned(), "426", "plain HTTP"),
        (upgrade("/nowhere", "Sec-WebSocket-Version: 13\r\n"), "404", "unknown path"),
        (
            upgrade("/echo", &format!("Sec-WebSocket-Version: 13\r\nX-Big: {}\r\n", "a".repeat(20_000))),
            "431",
            "huge head",
        ),
        ("\x16\x03\x01garbage\r\n\r\n".to_owned(), "400", "not HTTP"),
    ];
    for (request, status, what) in cases {
        let response = served.raw(request.as_bytes());
        assert_eq!(status_of(&response), status, "{what}: {response}");
    }
    let response = served.raw(upgrade("/echo", "Sec-WebSocket-Version: 8\r\n").as_bytes());
    assert!(response.contains("Sec-WebSocket-Version: 13\r\n"), "{response}");
}

#[test]
fn header_limit_is_a_setting() {
    // 1024 is the smallest the setting takes (a request head must fit).
    let served = Served::start(&["--max-header-bytes", "1024"]);
    let request = upgrade("/echo", &format!("Sec-WebSocket-Version: 13\r\nX-Pad: {}\r\n", "a".repeat(1100)));
    assert_eq!(status_of(&served.raw(request.as_bytes())), "431");
    let small = upgrade("/echo", "Sec-WebSocket-Version: 13\r\n");
    assert_eq!(status_of(&served.raw_head(small.as_bytes())), "101");
}

#[test]
fn a_silent_client_gets_408_after_the_handshake_timeout() {
    let served = Served::start(&["--handshake-timeout", "1"]);
    let response = served.raw(b"GET /echo HTTP/1.1\r\n");
    assert_eq!(status_of(&response), "408", "{response}");
}

#[test]
fn echoes_text_and_binary_with_and_without_compression() {
    let served = Served::start(&[]);
    for deflate in [None, Some(Default::default())] {
        let compressed = deflate.is_some();
        let mut client = served.open("/echo", ClientRequest { deflate, ..ClientRequest::default() });
        assert_eq!(client.conn.is_compressed(), compressed);
        client.conn.send_text("héllo").unwrap();
        client.conn.send_binary(&[0, 1, 2, 255]).unwrap();
        let big = "x".repeat(300_000);
        client.conn.send_text(&big).unwrap();
        client.flush();
        let expect = |event: Event| match event {
            Event::Message(message) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(expect(client.next_event().unwrap()), Message::Text("héllo".into()));
        assert_eq!(expect(client.next_event().unwrap()), Message::Binary(vec![0, 1, 2, 255].into()));
        assert_eq!(expect(client.next_event().unwrap()).as_bytes(), big.as_bytes());
        client.conn.close(CloseCode::NORMAL, "done").unwrap();
        client.flush();
        let closed = client.next_event().unwrap();
        assert_eq!(closed, Event::Close(Some(CloseFrame { code: CloseCode::NORMAL, reason: String::new() })));
        // The server closes TCP after the closing handshake.
        let mut rest = Vec::new();
        assert_eq!(client.stream.read_to_end(&mut rest).unwrap(), 0);
    }
}

#[test]
fn protocol_errors_get_close_codes_and_others_keep_being_served() {
    let served = Served::start(&["--max-message-size", "1024"]);
    let bystander = {
        let mut client = served.open("/echo", ClientRequest::default());
        client.conn.send_text("before").unwrap();
        client.flush();
        assert!(matches!(client.next_event().unwrap(), Event::Message(_)));
        client
    };
    type WriteBadFrame<'a> = &'a dyn Fn(&mut BytesMut);
    let cases: [(WriteBadFrame, u16); 4] = [
        (&|b| encode_frame(b, OpCode::Text, true, false, b"unmasked", None), 1002),
        (&|b| encode_frame(b, OpCode::Text, true, false, &[0xce, 0xba, 0xff], Some([1, 2, 3, 4])), 1007),
        (&|b| encode_frame(b, OpCode::Binary, true, false, &[0; 1025], Some([1, 2, 3, 4])), 1009),
        (&|b| encode_frame(b, OpCode::Ping, false, false, b"", Some([1, 2, 3, 4])), 1002),
    ];
    for (write_bad_frame, code) in cases {
        let mut client = served.open("/echo", ClientRequest::default());
        let mut bad = BytesMut::new();
        write_bad_frame(&mut bad);
        client.stream.write_all(&bad).unwrap();
        match client.next_event().unwrap() {
            Event::Close(Some(frame)) => assert_eq!(frame.code.0, code),
            other => panic!("expected close {code}, got {other:?}"),
        }
    }
    let mut bystander = bystander;
    bystander.conn.send_text("after").unwrap();
    bystander.flush();
    assert_eq!(bystander.next_event().unwrap(), Event::Message(Message::Text("after".into())));
}
