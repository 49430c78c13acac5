//! The client against real servers on ephemeral ports: Tether's own server (ws and wss with a
//! private CA made by rcgen) and an independent implementation (Python `websockets`), with and
//! without compression; and Python's client against Tether's server.

mod common;

use common::Echo;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tether_proto::deflate::DeflateConfig;
use tether_tokio::client::{HandshakeBytes, WsUrl};
use tether_tokio::{
    tls, ClientBuilder, ClientError, CloseCode, Conn, Listener, Message, PreparedMessage, Server, ServerConfig,
};

/// Starts an in-process Tether echo server on `/echo`; returns its address.
async fn tether_server(config: ServerConfig) -> String {
    let server = Server::new(config).route("/echo", Echo).bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    tokio::spawn(server.run());
    addr
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// A Python `websockets` echo server, killed on drop.
struct PythonServer {
    child: Child,
    url: String,
}

impl PythonServer {
    fn start(compression: bool) -> Self {
        let mut command = Command::new("python3");
        command.arg(interop_dir().join("python_echo_server.py"));
        if !compression {
            command.arg("--no-compression");
        }
        let mut child = command.stdout(Stdio::piped()).spawn().expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").expect("python server started (pip install websockets)");
        Self { url: url.to_owned(), child }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends messages of several sizes and types and checks every echo, then closes cleanly.
async fn exchange(builder: ClientBuilder, expect_compression: bool) {
    let (mut ws, response) = builder.connect().await.expect("connects");
    assert_eq!(response.compressed, expect_compression);
    for size in [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20] {
        let text: String = "tether ".repeat(size / 7 + 1).chars().take(size).collect();
        let binary: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        for message in [Message::Text(text.as_str().into()), Message::Binary(binary.into())] {
            ws.send(&message).await.unwrap();
            assert_eq!(ws.recv().await.unwrap().unwrap(), message, "{size} bytes");
        }
    }
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    assert!(ws.recv().await.is_none());
    let closed = ws.closed().unwrap();
    assert!(closed.clean, "{closed:?}");
    assert_eq!(closed.code, CloseCode::NORMAL);
}

#[tokio::test]
async fn talks_to_tether_with_and_without_compression() {
    let addr = tether_server(ServerConfig::default()).await;
    let url = format!("ws://{addr}/echo");
    exchange(ClientBuilder::new(&url), true).await;
    exchange(ClientBuilder::new(&url).deflate(None), false).await;
    let narrow = DeflateConfig {
        no_context_takeover: true,
        request_peer_no_context_takeover: true,
        request_peer_max_window_bits: Some(9),
        max_window_bits: 10,
        ..DeflateConfig::default()
    };
    exchange(ClientBuilder::new(&url).deflate(Some(narrow)), true).await;
}

#[tokio::test]
async fn talks_to_tether_over_tls_with_a_private_ca() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Tether test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();

    let key = rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = ServerConfig {
        tls: Some(tls::server_config(vec![leaf.der().clone()], key).unwrap()),
        ..ServerConfig::default()
    };
    let addr = tether_server(config).await;
    let port = addr.rsplit_once(':').unwrap().1;
    let url = format!("wss://localhost:{port}/echo");

    exchange(ClientBuilder::new(&url).ca_certificate(ca_cert.der().clone()), true).await;
    // Without the CA the certificate is not trusted...
    match ClientBuilder::new(&url).connect().await {
        Err(ClientError::Tls(why)) => assert!(why.to_lowercase().contains("certificate"), "{why}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // ...unless verification is explicitly switched off.
    exchange(ClientBuilder::new(&url).danger_accept_invalid_certificates(true), true).await;
}

#[tokio::test]
async fn talks_to_python_websockets_with_and_without_compression() {
    for compression in [true, false] {
        let server = PythonServer::start(compression);
        exchange(ClientBuilder::new(&server.url), compression).await;
        exchange(ClientBuilder::new(&server.url).deflate(None), false).await;
    }
}

#[tokio::test]
async fn python_websockets_talks_to_tether() {
    let addr = tether_server(ServerConfig::default()).await;
    for flag in [None, Some("--no-compression")] {
        let mut command = tokio::process::Command::new("python3");
        command.arg(interop_dir().join("python_client.py")).arg(format!("ws://{addr}/echo"));
        command.args(flag);
        let output = tokio::time::timeout(Duration::from_secs(60), command.output()).await.unwrap().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.trim() == "ok",
            "{flag:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn refusals_report_status_and_body_and_redirects_are_not_followed() {
    let addr = tether_server(ServerConfig::default()).await;
    match ClientBuilder::new(&format!("ws://{addr}/echo")).origin("http://evil.example").connect().await {
        Err(error @ ClientError::Rejected { status: 403, .. }) => {
            let message = error.to_string();
            assert!(message.contains("403") && message.contains("not allowed"), "{message}");
        }
        other => panic!("expected 403, got {other:?}"),
    }
    match ClientBuilder::new(&format!("ws://{addr}/nowhere")).connect().await {
        Err(ClientError::Rejected { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }

    // A server that redirects: the client reports it and does not follow.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 2048];
        let _ = socket.read(&mut buf).await;
        let _ = socket
            .write_all(
                b"HTTP/1.1 301 Moved Permanently\r\nLocation: ws://example.invalid/\r\nContent-Length: 0\r\n\r\n",
            )
            .await;
    });
    match ClientBuilder::new(&format!("ws://{redirect_addr}/")).connect().await {
        Err(error @ ClientError::Rejected { status: 301, .. }) => {
            assert!(error.to_string().contains("ws://example.invalid/"), "{error}");
        }
        other => panic!("expected a reported redirect, got {other:?}"),
    }
}

#[tokio::test]
async fn timeouts_and_bad_urls() {
    assert!(matches!(ClientBuilder::new("http://localhost/").connect().await, Err(ClientError::Url(_))));
    // A server that accepts TCP and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _keep = tokio::spawn(async move {
        let _socket = listener.accept().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let result =
        ClientBuilder::new(&format!("ws://{addr}/")).handshake_timeout(Duration::from_millis(300)).connect().await;
    assert!(matches!(result, Err(ClientError::Timeout("handshake"))), "{result:?}");
    for (url, why) in [("ws://", "empty host"), ("ftp://localhost/", "scheme \"ftp\": use ws:// or wss://")] {
        match ClientBuilder::new(url).connect().await {
            Err(error @ ClientError::Url(_)) => assert!(error.to_string().contains(why), "{url}: {error}"),
            other => panic!("{url}: expected a URL error, got {other:?}"),
        }
    }
}

#[test]
fn ws_urls_come_apart_into_tls_host_header_and_target() {
    let url = WsUrl::parse("wss://[::1]:8443/a/b?x=1&y").unwrap();
    assert_eq!((url.tls, url.host.as_str(), url.port), (true, "::1", 8443));
    assert_eq!(
        (url.authority(), url.host_header(), url.target()),
        ("[::1]:8443".into(), "[::1]:8443".into(), "/a/b?x=1&y".into())
    );
    let url = WsUrl::parse("ws://example.test").unwrap();
    assert_eq!((url.port, url.host_header(), url.target()), (80, "example.test".into(), "/".into()));
    assert_eq!(
        WsUrl::parse("ws://example.test:80/").unwrap().host_header(),
        "example.test",
        "a default port is not sent"
    );
    assert_eq!(WsUrl::parse("wss://example.test:80/").unwrap().host_header(), "example.test:80");
}

/// What the observer is shown is what went over the socket: a raw server records the request and
/// refuses it, and both sides' bytes match exactly.
#[tokio::test]
async fn the_observed_handshake_is_the_bytes_on_the_wire() {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const REFUSAL: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            socket.read_exact(&mut byte).await.unwrap();
            request.push(byte[0]);
        }
        socket.write_all(REFUSAL).await.unwrap();
        request
    });
    let seen = Arc::new(Mutex::new(Vec::<(bool, Vec<u8>)>::new()));
    let record = Arc::clone(&seen);
    let result = ClientBuilder::new(&format!("ws://{addr}/x?y"))
        .header("X-Trace", "42")
        .observe_handshake(move |bytes| {
            let entry = match bytes {
                HandshakeBytes::Request(bytes) => (true, bytes.to_vec()),
                HandshakeBytes::Response(bytes) => (false, bytes.to_vec()),
            };
            record.lock().unwrap().push(entry);
        })
        .connect()
        .await;
    assert!(matches!(result, Err(ClientError::Rejected { status: 403, .. })), "{result:?}");
    let received = server.await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "the request, then the response head");
    assert_eq!(seen[0], (true, received), "the request as the server read it");
    assert_eq!(seen[1], (false, REFUSAL[..REFUSAL.len() - 2].to_vec()), "the head without the body");
}

/// Hands every message and the close to the test.
struct Forward(tokio::sync::mpsc::UnboundedSender<Result<Message, tether_tokio::Closed>>);

impl Listener for Forward {
    async fn message(&self, _conn: &Conn, message: Message) {
        let _ = self.0.send(Ok(message));
    }

    async fn closed(&self, _conn: &Conn, closed: &tether_tokio::Closed) {
        let _ = self.0.send(Err(closed.clone()));
    }
}

/// A client's prepared message goes through its protocol core and is masked: the server takes it
/// as a message (an unmasked client frame is closed with 1002).
#[tokio::test]
async fn a_client_sends_prepared_messages_masked() {
    let addr = tether_server(ServerConfig::default()).await;
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let (conn, _) = ClientBuilder::new(&format!("ws://{addr}/echo")).spawn(Forward(events)).await.expect("connects");
    let big: Vec<u8> = (0..70_000).map(|i| (i % 251) as u8).collect();
    let messages = [PreparedMessage::text("prepared"), PreparedMessage::binary(&big), PreparedMessage::binary(b"")];
    for message in &messages {
        conn.send_prepared(message).unwrap();
    }
    let expected = [Message::Text("prepared".into()), Message::Binary(big.into()), Message::Binary(Vec::new().into())];
    for want in expected {
        let got = tokio::time::timeout(Duration::from_secs(5), received.recv()).await.expect("an echo in time");
        assert_eq!(got, Some(Ok(want)));
    }
    conn.close(CloseCode::NORMAL, "done").unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), received.recv()).await.expect("closed in time");
    match closed {
        Some(Err(closed)) => assert_eq!((closed.code, closed.clean), (CloseCode::NORMAL, true), "{closed:?}"),
        other => panic!("expected the close, got {other:?}"),
    }
}
