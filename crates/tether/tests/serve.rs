//! `tether serve` end to end: the real binary on an ephemeral port, driven over raw TCP.
//!
//! Bad handshakes must get the right HTTP status, protocol errors the right close code, and the
//! server must keep serving everyone else.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use tether_proto::frame::{encode_frame, OpCode};
use tether_proto::handshake::client::{ClientHandshake, ClientRequest};
use tether_proto::{CloseCode, CloseFrame, Config, Connection, Event, Message, Role};

/// A `tether serve --port 0` process, killed on drop.
struct Served {
    child: Child,
    addr: String,
}

impl Served {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(["serve", "--port", "0"])
            .args(extra)
            .env("TETHER_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tether");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ws://").expect("listening line").to_owned();
        Self { child, addr }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }

    /// Sends a raw request and returns the whole response (the server closes after an error).
    fn raw(&self, request: &[u8]) -> String {
        let mut stream = self.connect();
        stream.write_all(request).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }

    /// Sends a raw request and returns the response head only (for requests that succeed).
    fn raw_head(&self, request: &[u8]) -> String {
        let mut stream = self.connect();
        stream.write_all(request).unwrap();
        let mut response = Vec::new();
        let mut byte = [0u8; 1];
        while !response.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
            response.push(byte[0]);
        }
        String::from_utf8_lossy(&response).into_owned()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// A blocking WebSocket client built from the protocol core.
struct Client {
    stream: TcpStream,
    conn: Connection,
    buf: BytesMut,
}

impl Client {
    fn open(served: &Served, request: ClientRequest) -> Self {
        let mut stream = served.connect();
        let request = ClientRequest { host: served.addr.clone(), target: "/echo".into(), ..request };
        let (mut handshake, bytes) = ClientHandshake::new(&request);
        stream.write_all(&bytes).unwrap();
        let mut buf = BytesMut::new();
        let accepted = loop {
            if let Some((accepted, len)) = handshake.receive(&buf).unwrap() {
                let _ = buf.split_to(len);
                break accepted;
            }
            read_more(&mut stream, &mut buf);
        };
        Self { stream, conn: Connection::new(Role::Client, Config::default(), accepted.deflate), buf }
    }

    fn flush(&mut self) {
        let out = self.conn.take_output();
        self.stream.write_all(&out).unwrap();
    }

    fn next_event(&mut self) -> Result<Event, String> {
        loop {
            match self.conn.receive(&mut self.buf) {
                Ok(Some(event)) => return Ok(event),
                Ok(None) => {}
                Err(error) => return Err(error.to_string()),
            }
            if !read_more(&mut self.stream, &mut self.buf) {
                return Err("connection closed".into());
            }
        }
    }
}

fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).unwrap();
    buf.extend_from_slice(&chunk[..n]);
    n > 0
}

fn status_of(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("")
}

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
        ("GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(), "426", "plain HTTP"),
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
    let served = Served::start(&["--max-header-bytes", "512"]);
    let request = upgrade("/echo", &format!("Sec-WebSocket-Version: 13\r\nX-Pad: {}\r\n", "a".repeat(600)));
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
        let mut client = Client::open(&served, ClientRequest { deflate, ..ClientRequest::default() });
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
    let served = Served::start(&["--max-message-size", "1000"]);
    let bystander = {
        let mut client = Client::open(&served, ClientRequest::default());
        client.conn.send_text("before").unwrap();
        client.flush();
        assert!(matches!(client.next_event().unwrap(), Event::Message(_)));
        client
    };
    type WriteBadFrame<'a> = &'a dyn Fn(&mut BytesMut);
    let cases: [(WriteBadFrame, u16); 4] = [
        (&|b| encode_frame(b, OpCode::Text, true, false, b"unmasked", None), 1002),
        (&|b| encode_frame(b, OpCode::Text, true, false, &[0xce, 0xba, 0xff], Some([1, 2, 3, 4])), 1007),
        (&|b| encode_frame(b, OpCode::Binary, true, false, &[0; 1001], Some([1, 2, 3, 4])), 1009),
        (&|b| encode_frame(b, OpCode::Ping, false, false, b"", Some([1, 2, 3, 4])), 1002),
    ];
    for (write_bad_frame, code) in cases {
        let mut client = Client::open(&served, ClientRequest::default());
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
