//! Opening the connection, shared by both modes: the handshake (printed with `--show-handshake`),
//! the errors that explain why it failed, and the verdict on how a session ended.
//!
//! The connection runs as a listener-style connection ([`ClientBuilder::spawn`]): its own task
//! owns the socket and reports through a channel of [`Event`]s, while the modes send through the
//! [`Conn`] handle, which never waits. That keeps reading and writing independent of the user,
//! and leaves no half-written frame behind when the user's input and a received message race.

use std::time::Duration;

use bytes::Bytes;
use tether_tokio::client::WsUrl;
use tether_tokio::{ClientBuilder, ClientError, ClientResponse, CloseCode, Closed, Conn, Listener, Message};
use tokio::sync::mpsc;

use super::args::{normalize_url, ConnectArgs};
use super::format::{describe_close, handshake_lines, is_plain_answer, tls_sentence};

/// What the connection's task reports.
#[derive(Debug)]
pub(super) enum Event {
    Message(Message),
    /// The answer to a `/ping`, with its payload.
    Pong(Bytes),
    /// A protocol or transport error; [`Event::Closed`] follows.
    Failed(String),
    /// The connection has ended, the last event.
    Closed(Closed),
}

/// The [`Listener`] of our one connection: it forwards everything to [`Event`]s. The channel is
/// bounded, so a server that sends faster than the terminal or the pipe takes the output is
/// slowed down by TCP instead of filling our memory.
struct Forward(mpsc::Sender<Event>);

impl Listener for Forward {
    async fn message(&self, _conn: &Conn, message: Message) {
        let _ = self.0.send(Event::Message(message)).await;
    }

    async fn pong(&self, _conn: &Conn, payload: Bytes) {
        let _ = self.0.send(Event::Pong(payload)).await;
    }

    async fn error(&self, _conn: &Conn, error: &tether_tokio::Error) {
        let _ = self.0.send(Event::Failed(error.to_string())).await;
    }

    async fn closed(&self, _conn: &Conn, closed: &Closed) {
        let _ = self.0.send(Event::Closed(closed.clone())).await;
    }
}

/// An open connection.
pub(super) struct Session {
    /// The URL as normalized (`http://` made `ws://`), for the interactive banner.
    pub url: String,
    pub conn: Conn,
    pub events: mpsc::Receiver<Event>,
    pub response: ClientResponse,
}

/// Connects to `url` (checked by `args::check_arguments`) and completes the handshake; with
/// `--show-handshake` the request and the response head are printed as they cross the socket.
pub(super) async fn open(args: &ConnectArgs, url: &WsUrl) -> Result<Session, String> {
    let authority = url.authority();
    // The URL as the user gave it (normalized), for the client and the banner alike.
    let given = normalize_url(&args.url);
    let mut builder = ClientBuilder::new(&given)
        .connect_timeout(args.timeout)
        .handshake_timeout(args.timeout)
        .danger_accept_invalid_certificates(args.insecure);
    if args.no_compression {
        builder = builder.deflate(None);
    }
    for protocol in &args.subprotocols {
        builder = builder.protocol(protocol);
    }
    for (name, value) in &args.headers {
        builder = builder.header(name, value);
    }
    if let Some(origin) = &args.origin {
        builder = builder.origin(origin);
    }
    if let Some(path) = &args.ca_file {
        builder = builder.ca_file(path).map_err(|e| e.to_string())?;
    }
    if args.show_handshake {
        builder = builder.observe_handshake(|bytes| eprint!("{}", handshake_lines(bytes)));
    }
    let (events_tx, events) = mpsc::channel(64);
    let connecting = builder.spawn(Forward(events_tx));
    let result = if url.tls {
        // A plain server never answers a TLS ClientHello: it waits for an HTTP head that is not
        // coming, until one side's timeout. Meanwhile a second connection asks it in plain HTTP.
        tokio::pin!(connecting);
        tokio::select! {
            result = &mut connecting => result,
            plain = answers_plain_http(url) => {
                if plain {
                    return Err(plain_server(url));
                }
                connecting.await
            }
        }
    } else {
        connecting.await
    };
    match result {
        Ok((conn, response)) => Ok(Session { url: given, conn, events, response }),
        Err(error) => Err(match error {
            ClientError::Io(error) => format!("cannot connect to {authority}: {error}"),
            ClientError::Timeout(what) => {
                format!("{authority}: {what} timed out after {} s (see --timeout)", args.timeout.as_secs_f64())
            }
            ClientError::Tls(why) if is_plain_answer(&why) => plain_server(url),
            ClientError::Tls(why) => match tls_sentence(&why) {
                Some(sentence) => format!("TLS with {authority} failed: {sentence}"),
                None => format!("TLS with {authority} failed: {why}"),
            },
            other => other.to_string(),
        }),
    }
}

/// How long a wss:// handshake may go unanswered before we check whether the server speaks plain
/// HTTP. A TLS server answers a ClientHello within a round trip, far below this.
const PLAIN_PROBE_DELAY: Duration = Duration::from_secs(1);

/// Whether the server answers a plain HTTP request with an HTTP response: then it is no TLS
/// server. Waits [`PLAIN_PROBE_DELAY`] first; `false` when it cannot tell (then the TLS attempt
/// just goes on).
async fn answers_plain_http(url: &WsUrl) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::time::sleep(PLAIN_PROBE_DELAY).await;
    let probe = async {
        let mut tcp = tokio::net::TcpStream::connect((url.host.as_str(), url.port)).await.ok()?;
        let request = format!("HEAD / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", url.authority());
        tcp.write_all(request.as_bytes()).await.ok()?;
        let mut start = [0u8; 5];
        tcp.read_exact(&mut start).await.ok()?;
        Some(&start == b"HTTP/")
    };
    tokio::time::timeout(Duration::from_secs(2), probe).await.ok().flatten().unwrap_or(false)
}

/// The error for a wss:// URL that reached a plain (ws://) server, with the URL to try instead
/// (the same port: that is where the plain server answered).
fn plain_server(url: &WsUrl) -> String {
    let plain = WsUrl { tls: false, ..url.clone() };
    format!(
        "the server at {} did not answer the TLS handshake: it speaks plain HTTP, so it is a ws:// server (try {plain})",
        url.authority()
    )
}

/// Success is a completed closing handshake that we started, or that the server started with
/// 1000 or without a code; anything else is reported as the reason to exit non-zero.
pub(super) fn verdict(closed: &Closed, we_closed: bool, problem: Option<String>) -> Result<(), String> {
    if let Some(problem) = problem {
        return Err(format!("{problem} (connection closed: {})", describe_close(closed)));
    }
    if !closed.clean {
        return Err(format!("the connection ended without a closing handshake: {}", describe_close(closed)));
    }
    if we_closed || matches!(closed.code, CloseCode::NORMAL | CloseCode::NO_STATUS) {
        Ok(())
    } else {
        Err(format!("the server closed the connection: {}", describe_close(closed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let closed = |code: u16, clean: bool| Closed { code: CloseCode(code), reason: String::new(), clean };
        assert!(verdict(&closed(1000, true), false, None).is_ok());
        assert!(verdict(&closed(1005, true), false, None).is_ok());
        assert!(verdict(&closed(4000, true), true, None).is_ok(), "we chose the code");
        assert!(verdict(&closed(1001, true), false, None).unwrap_err().contains("1001 (going away)"));
        assert!(verdict(&closed(1006, false), true, None).unwrap_err().contains("without a closing handshake"));
        assert!(verdict(&closed(1000, true), true, Some("stdin line 2 is not UTF-8".into())).is_err());
    }
}
