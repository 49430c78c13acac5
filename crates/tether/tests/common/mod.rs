//! Helpers for tests that run the real `tether` binary on an ephemeral port and talk to it over
//! blocking sockets with a client built from the protocol core.
#![allow(dead_code)]

pub mod redis;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use tether_proto::handshake::client::{ClientAccepted, ClientHandshake, ClientHandshakeError, ClientRequest};
use tether_proto::{Config, Connection, Event, Message, Role};

/// The binary under test: this build's, or the one named by `TETHER_BIN` (to show that a
/// regression test fails on an older build).
pub fn tether_bin() -> String {
    std::env::var("TETHER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tether").to_owned())
}

/// A `tether serve --port 0` process, killed on drop.
pub struct Served {
    pub child: Child,
    pub addr: String,
}

/// `tether serve --port 0 EXTRA` with warnings-only logs, not started yet.
pub fn serve_command(extra: &[&str]) -> Command {
    let mut command = Command::new(tether_bin());
    command.args(["serve", "--port", "0"]).args(extra).env("TETHER_LOG", "warn");
    command
}

impl Served {
    pub fn start(extra: &[&str]) -> Self {
        let mut child =
            serve_command(extra).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start tether");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit_once("://").expect("listening line").1.to_owned();
        Self { child, addr }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }

    /// Sends a raw request and returns the whole response (for requests the server closes after).
    pub fn raw(&self, request: &[u8]) -> String {
        let mut stream = self.connect();
        stream.write_all(request).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }

    /// Sends a raw request and returns the response head only.
    pub fn raw_head(&self, request: &[u8]) -> String {
        let mut stream = self.connect();
        stream.write_all(request).unwrap();
        read_head(&mut stream)
    }

    /// Opens a WebSocket connection.
    pub fn open(&self, target: &str, request: ClientRequest) -> Client<TcpStream> {
        Client::open(self.connect(), &self.addr, target, request).expect("handshake succeeds")
    }

    /// Opens a WebSocket connection whose socket has a fixed, small receive buffer: a client that
    /// does not read then stops the server's writes soon, however large the kernel would otherwise
    /// let the buffer grow.
    pub fn open_with_small_receive_buffer(&self, target: &str) -> Client<TcpStream> {
        let addr: std::net::SocketAddr = self.addr.parse().unwrap();
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        socket.connect(&addr.into()).unwrap();
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client::open(stream, &self.addr, target, ClientRequest::default()).expect("handshake succeeds")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn read_head(stream: &mut impl Read) -> String {
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
        response.push(byte[0]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// An upgrade request for `path` with the RFC's sample key, without `Sec-WebSocket-Version`.
pub fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

pub fn status_of(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("")
}

/// A blocking WebSocket client built from the protocol core.
pub struct Client<S> {
    pub stream: S,
    pub conn: Connection,
    pub accepted: ClientAccepted,
    buf: BytesMut,
}

impl<S: Read + Write> Client<S> {
    pub fn open(mut stream: S, host: &str, target: &str, request: ClientRequest) -> Result<Self, ClientHandshakeError> {
        let request = ClientRequest { host: host.to_owned(), target: target.into(), ..request };
        let (mut handshake, bytes) = ClientHandshake::new(&request);
        stream.write_all(&bytes).unwrap();
        let mut buf = BytesMut::new();
        let accepted = loop {
            if let Some((accepted, len)) = handshake.receive(&buf)? {
                let _ = buf.split_to(len);
                break accepted;
            }
            assert!(read_more(&mut stream, &mut buf), "server closed during the handshake");
        };
        let conn = Connection::new(Role::Client, Config::default(), accepted.deflate);
        Ok(Self { stream, conn, accepted, buf })
    }

    pub fn flush(&mut self) {
        let out = self.conn.take_output();
        self.stream.write_all(&out).unwrap();
    }

    pub fn send_text(&mut self, text: &str) {
        self.conn.send_text(text).unwrap();
        self.flush();
    }

    pub fn next_event(&mut self) -> Result<Event, String> {
        loop {
            match self.conn.receive(&mut self.buf) {
                Ok(Some(event)) => {
                    // Answer pings and echo a Close at once, as a real client does.
                    self.flush();
                    return Ok(event);
                }
                Ok(None) => {}
                Err(error) => return Err(error.to_string()),
            }
            if !read_more(&mut self.stream, &mut self.buf) {
                return Err("connection closed".into());
            }
        }
    }

    /// The next message, skipping pings and pongs.
    pub fn next_message(&mut self) -> Message {
        loop {
            match self.next_event().unwrap() {
                Event::Message(message) => return message,
                Event::Ping(_) | Event::Pong(_) => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// The next text message parsed as JSON.
    pub fn next_json(&mut self) -> serde_json::Value {
        match self.next_message() {
            Message::Text(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected text, got {other:?}"),
        }
    }
}

pub fn read_more(stream: &mut impl Read, buf: &mut BytesMut) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            n > 0
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
        Err(e) => panic!("read failed: {e}"),
    }
}

impl Served {
    /// Starts like [`Served::start`] and returns the first `lines` lines `tether serve` printed
    /// (the `listening on` line first; with `--internal-port` the `server API on` line next).
    pub fn start_reading(extra: &[&str], lines: usize) -> (Self, Vec<String>) {
        let mut child =
            serve_command(extra).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start tether");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let printed: Vec<String> = (0..lines)
            .map(|_| {
                let mut line = String::new();
                stdout.read_line(&mut line).unwrap();
                line.trim().to_owned()
            })
            .collect();
        let addr = printed[0].rsplit_once("://").expect("listening line").1.to_owned();
        (Self { child, addr }, printed)
    }
}

/// A plain HTTP answer: the status, the head as text and the body.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpAnswer {
    /// The body as JSON (panics, showing the answer, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), with `headers` and a
/// `Content-Length` body. A server that answers before reading the whole body (a 413) may reset
/// the connection: what was read until then is the answer.
pub fn http_request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpAnswer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let _ = stream.write_all(request.as_bytes()).and_then(|()| stream.write_all(body));
    let mut response = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !response.is_empty() => break,
            Err(e) => panic!("reading the answer to {method} {path}: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = status_of(head).parse().unwrap_or_else(|_| panic!("no status in {text:?}"));
    HttpAnswer { status, head: head.to_owned(), body: body.to_owned() }
}

/// Runs `tether serve --port 0 ARGS` and returns its exit status and stderr. A server that starts
/// instead of refusing is killed after 5 s and reported as status `None`.
pub fn serve_refusal(args: &[&str]) -> (Option<i32>, String) {
    use std::io::Read as _;
    let mut child = serve_command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tether");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > std::time::Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status, stderr)
}

impl<S: Read + Write> Client<S> {
    /// Starts the closing handshake with `code` and reads until the server's Close: the messages
    /// that arrived before it (everything the server sent), and the code of its Close.
    pub fn close_and_drain(&mut self, code: u16) -> (Vec<Message>, Option<u16>) {
        self.conn.close(tether_proto::CloseCode(code), "").unwrap();
        self.flush();
        let mut messages = Vec::new();
        loop {
            match self.next_event() {
                Ok(Event::Message(message)) => messages.push(message),
                Ok(Event::Close(frame)) => return (messages, frame.map(|frame| frame.code.0)),
                Ok(_) => {}
                Err(error) => panic!("expected the server's Close, got {error}"),
            }
        }
    }
}

/// Polls `done` every 20 ms for up to 10 s; panics with `what` if it never holds. For effects the
/// server records a moment after the client saw them (a connection is forgotten when its task
/// ends, after the closing handshake).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A self-signed certificate for `localhost`, written as PEM files into a temporary directory
/// named after `tag` and this process: the certificate (for a client's roots) and the two paths
/// for `--tls-cert` / `--tls-key`.
pub fn self_signed_cert(tag: &str) -> (rcgen::CertifiedKey<rcgen::KeyPair>, std::path::PathBuf, std::path::PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("tether-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (certified, cert, key)
}

impl Served {
    /// A client of `/echo` that sends ~8 MiB of 16 KiB echo requests without reading a byte,
    /// until TCP stops taking them: the server's queue for it overflows (a slow consumer). Its
    /// socket has a small receive buffer (see [`Served::open_with_small_receive_buffer`]).
    pub fn open_slow_consumer(&self) -> Client<TcpStream> {
        let mut slow = self.open_with_small_receive_buffer("/echo");
        slow.stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let chunk = "x".repeat(16 * 1024);
        for _ in 0..512 {
            slow.conn.send_text(&chunk).unwrap();
            let out = slow.conn.take_output();
            if slow.stream.write_all(&out).is_err() {
                break; // The server stopped reading us: TCP backpressure.
            }
        }
        slow
    }
}
