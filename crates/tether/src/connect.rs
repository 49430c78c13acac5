//! `tether connect URL`: a terminal WebSocket client, for the jobs people reach for wscat or
//! websocat for.
//!
//! Two modes, picked by what stdin is:
//! - **Interactive** (stdin is a terminal): a prompt with line editing and history (rustyline).
//!   Each line typed is sent as a text message; received messages are printed above the prompt as
//!   they arrive, marked `< `. Lines starting with `/` are commands (`/help` lists them).
//! - **Scripted** (stdin is a pipe or a file, or `-x` is given): each input line is one text
//!   message, and stdout carries exactly one line per received message and nothing else, so the
//!   output can be piped into `jq`, `grep` or a test. When the input ends, the client waits
//!   `--wait` seconds for replies, closes with 1000 and exits 0 once the server has answered.
//!   Everything that is not a received message (errors, `--show-handshake`) goes to stderr.
//!
//! The connection runs on tokio as a listener-style connection ([`ClientBuilder::spawn`]): its own
//! task owns the socket, and this module talks to it through the [`Conn`] handle (sending never
//! waits) and a channel of [`Event`]s. That keeps reading and writing independent of the user,
//! and leaves no half-written frame behind when the user's input and a received message race.
//! The prompt runs on a plain thread because rustyline blocks; it hands actions to the tokio side
//! over a channel, and received messages go back through rustyline's `ExternalPrinter`, which
//! redraws the prompt and the half-typed line below them.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use rustyline::ExternalPrinter;
use tether_proto::close::MAX_REASON_BYTES;
use tether_proto::deflate::{negotiation, DeflateConfig};
use tether_tokio::{ClientBuilder, ClientError, ClientResponse, CloseCode, Closed, Conn, Listener, Message};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

/// Shown after the flags in `tether connect --help`.
const AFTER_HELP: &str = "\
Modes:
  In a terminal, tether connect is interactive: each line you type is sent as a text message,
  received messages are printed as they arrive, marked '< '. Commands:
    /ping [DATA]             send a ping; its pong is shown
    /close [CODE [REASON]]   start the closing handshake (default 1000) and exit when it is done
    /binary HEX              send a binary message, e.g. /binary 01 02 ff
    /file PATH               send a file's contents as one binary message
    /quit                    close with 1000 and exit (also Ctrl-D, Ctrl-C)
    /help                    list the commands
    //TEXT                   send TEXT starting with a single '/'
  With stdin not a terminal, or with -x, it is scriptable: each input line is one text message;
  stdout gets exactly one line per received message (text as is, binary as
  '<binary N bytes: HEX>') and nothing else. When the input ends it waits --wait seconds for
  replies, then closes with 1000. A text message that itself contains line breaks, or --json,
  spans several lines.

Exit status:
  0  the closing handshake completed: we closed, or the server closed with 1000 or no code
  1  the connection could not be opened (refused, timed out, handshake rejected: the HTTP status
     is shown), or it ended without a closing handshake, or the server closed with another code
  2  bad arguments

Examples:
  tether connect ws://127.0.0.1:8787/echo
  printf '1\\n2\\n3\\n' | tether connect -s json ws://127.0.0.1:8787/
  tether connect -x hello --wait 2 wss://example.test/echo";

/// `tether connect` flags.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ConnectArgs {
    /// The server: ws://HOST[:PORT]/PATH or wss://... (http:// and https:// mean ws:// and wss://;
    /// without a scheme, ws:// is assumed).
    #[arg(value_name = "URL")]
    pub url: String,
    /// Offer this sub-protocol (repeatable, in order of preference); the server's choice is shown
    /// in interactive mode and with --show-handshake.
    #[arg(short = 's', long = "subprotocol", value_name = "PROTOCOL")]
    pub subprotocols: Vec<String>,
    /// Add a request header, 'Name: value' (repeatable), e.g. -H 'Authorization: Bearer abc'.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Send this Origin header, as a browser on that origin would (servers may refuse foreign ones).
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
    /// Also trust the CA certificates in this PEM file (for wss:// servers with a private CA).
    #[arg(long = "ca", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Accept any TLS certificate without checking it. For testing only: anyone on the path can
    /// then read and change the traffic.
    #[arg(long)]
    pub insecure: bool,
    /// Do not offer permessage-deflate compression.
    #[arg(long)]
    pub no_compression: bool,
    /// Print the handshake request (as far as it can be shown before it is sent: the key is
    /// generated then) and the server's response head to stderr.
    #[arg(long)]
    pub show_handshake: bool,
    /// Pretty-print received text messages that are JSON objects or arrays (over several lines).
    #[arg(long)]
    pub json: bool,
    /// Prefix each received message with the local time (HH:MM:SS.mmm).
    #[arg(long)]
    pub timestamps: bool,
    /// Send this text message (repeatable, in order) instead of reading stdin; implies the
    /// scripted mode.
    #[arg(short = 'x', long = "execute", value_name = "MESSAGE")]
    pub execute: Vec<String>,
    /// Scripted mode: once the input has ended (stdin at EOF, or the -x messages sent), wait this
    /// many seconds for replies, then close with 1000. Fractions are allowed; 0 closes at once.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_seconds)]
    pub wait: Duration,
    /// Seconds to connect, and again for TLS and the opening handshake, before giving up.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    pub timeout: Duration,
}

/// Runs `tether connect` to the end and returns the process's exit status. Errors are reported
/// here, on one line of stderr, because scripts read stdout and a terminal user reads both.
pub fn main(args: ConnectArgs) -> ExitCode {
    // A URL that cannot work, or a CA file that cannot be read, is a bad argument: status 2, as
    // the help says, before anything is attempted.
    if let Err(error) = check_arguments(&args) {
        eprintln!("tether connect: {}", one_line(&error));
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the tokio runtime: {error}")),
    };
    let interactive = args.execute.is_empty() && std::io::stdin().is_terminal();
    let result = match runtime.block_on(open(&args)) {
        Ok(session) if interactive => run_interactive(&runtime, session, &args),
        Ok(session) => runtime.block_on(run_scripted(session, &args)),
        Err(error) => Err(error),
    };
    // The connection's task may still linger over a socket; it has nothing left to deliver.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &str) -> ExitCode {
    eprintln!("tether connect: {}", one_line(error));
    ExitCode::FAILURE
}

// ---------------------------------------------------------------------------------------------
// Arguments

/// Parses `-H 'Name: value'`. The name must be an HTTP token and the value may not contain line
/// breaks: both would otherwise let an argument smuggle extra lines into the request head.
fn parse_header(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg.split_once(':').ok_or_else(|| format!("expected 'Name: value', got {arg:?}"))?;
    let name = name.trim();
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(is_token_char) {
        return Err(format!("invalid header name {name:?}"));
    }
    let value = value.trim();
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("the value of {name} contains a control character"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Parses a number of seconds such as `1`, `0.5` or `0`.
/// Seconds 0..=86400 (a day): no deadline computed from them can overflow an `Instant`.
fn parse_seconds(arg: &str) -> Result<Duration, String> {
    let seconds: f64 = arg.trim().parse().map_err(|_| format!("expected a number of seconds, got {arg:?}"))?;
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("expected seconds 0..=86400, got {arg:?}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The checks that need no network: the URL parses as ws:// or wss:// with a host, and the CA file
/// (if any) can be read.
fn check_arguments(args: &ConnectArgs) -> Result<(), String> {
    let url = normalize_url(&args.url);
    let parsed = url::Url::parse(&url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "ws" | "wss") {
        return Err(format!("invalid URL {url:?}: the scheme must be ws://, wss://, http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("invalid URL {url:?}: no host"));
    }
    if let Some(path) = &args.ca_file {
        std::fs::metadata(path).map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Accepts what people paste: `ws://` and `wss://` as they are, `http(s)://` as the matching
/// WebSocket scheme, and a bare `host:port/path` as `ws://`.
fn normalize_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if url.contains("://") {
        url.to_owned()
    } else {
        format!("ws://{url}")
    }
}

// ---------------------------------------------------------------------------------------------
// Connecting

/// What the connection's task reports.
#[derive(Debug)]
enum Event {
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
struct Session {
    url: String,
    conn: Conn,
    events: mpsc::Receiver<Event>,
    response: ClientResponse,
}

/// Connects and completes the handshake, printing it first with `--show-handshake`.
async fn open(args: &ConnectArgs) -> Result<Session, String> {
    let url = normalize_url(&args.url);
    let parsed = url::Url::parse(&url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let authority = format!(
        "{}:{}",
        parsed.host_str().unwrap_or_default(),
        parsed.port_or_known_default().map_or_else(String::new, |p| p.to_string())
    );
    let mut builder = ClientBuilder::new(&url)
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
        eprint!("{}", request_preview(args, &parsed));
    }
    let (events_tx, events) = mpsc::channel(64);
    let connecting = builder.spawn(Forward(events_tx));
    let result = if parsed.scheme() == "wss" {
        // A plain server never answers a TLS ClientHello: it waits for an HTTP head that is not
        // coming, until one side's timeout. Meanwhile a second connection asks it in plain HTTP.
        tokio::pin!(connecting);
        let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        tokio::select! {
            result = &mut connecting => result,
            plain = answers_plain_http(&host, port) => {
                if plain {
                    return Err(plain_server(&authority, &parsed));
                }
                connecting.await
            }
        }
    } else {
        connecting.await
    };
    match result {
        Ok((conn, response)) => {
            if args.show_handshake {
                eprint!("{}", response_preview(&response));
            }
            Ok(Session { url, conn, events, response })
        }
        Err(error) => {
            if let (true, ClientError::Rejected { status, reason, .. }) = (args.show_handshake, &error) {
                eprintln!("< HTTP/1.1 {status} {reason}");
            }
            Err(match error {
                ClientError::Io(error) => format!("cannot connect to {authority}: {error}"),
                ClientError::Timeout(what) => {
                    format!("{authority}: {what} timed out after {} s (see --timeout)", args.timeout.as_secs_f64())
                }
                ClientError::Tls(why) if is_plain_answer(&why) => plain_server(&authority, &parsed),
                ClientError::Tls(why) => match tls_sentence(&why) {
                    Some(sentence) => format!("TLS with {authority} failed: {sentence}"),
                    None => format!("TLS with {authority} failed: {why}"),
                },
                other => other.to_string(),
            })
        }
    }
}

/// How long a wss:// handshake may go unanswered before we check whether the server speaks plain
/// HTTP. A TLS server answers a ClientHello within a round trip, far below this.
const PLAIN_PROBE_DELAY: Duration = Duration::from_secs(1);

/// Whether the server answers a plain HTTP request with an HTTP response: then it is no TLS
/// server. Waits [`PLAIN_PROBE_DELAY`] first; `false` when it cannot tell (then the TLS attempt
/// just goes on).
async fn answers_plain_http(host: &str, port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::time::sleep(PLAIN_PROBE_DELAY).await;
    let probe = async {
        let mut tcp = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        let host_header = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let request = format!("HEAD / HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.ok()?;
        let mut start = [0u8; 5];
        tcp.read_exact(&mut start).await.ok()?;
        Some(&start == b"HTTP/")
    };
    tokio::time::timeout(Duration::from_secs(2), probe).await.ok().flatten().unwrap_or(false)
}

/// The error for a wss:// URL that reached a plain (ws://) server.
fn plain_server(authority: &str, url: &url::Url) -> String {
    let mut plain = url.clone();
    let _ = plain.set_scheme("ws");
    format!("the server at {authority} did not answer the TLS handshake: it speaks plain HTTP, so it is a ws:// server (try {plain})")
}

/// Whether a TLS error means the server answered our ClientHello with something that is not TLS
/// (an HTTP error page, typically) or hung up on it.
fn is_plain_answer(why: &str) -> bool {
    why.contains("InvalidContentType") || why.contains("corrupt message") || why.contains("tls handshake eof")
}

/// The common rustls errors as sentences; rustls' Display names enum variants
/// (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`). `None` for the others.
pub(crate) fn tls_sentence(why: &str) -> Option<String> {
    const SENTENCES: &[(&str, &str)] = &[
        ("CaUsedAsEndEntity", "the server presents a CA certificate as its own; it needs a server certificate issued by that CA"),
        ("EndEntityUsedAsCa", "the server's certificate chain uses a server certificate as a CA"),
        ("UnknownIssuer", "the server's certificate is not signed by a trusted CA (for a private CA pass it with --ca FILE; --insecure skips the check, for testing only)"),
        ("NotValidForName", "the server's certificate is not valid for this host name"),
        ("certificate not valid for name", "the server's certificate is not valid for this host name"),
        ("ExpiredRevocationList", "the certificate revocation list has expired"),
        ("Expired", "the server's certificate has expired"),
        ("certificate expired", "the server's certificate has expired"),
        ("NotValidYet", "the server's certificate is not valid yet (check the clock)"),
        ("certificate not valid yet", "the server's certificate is not valid yet (check the clock)"),
        ("Revoked", "the server's certificate has been revoked"),
        ("BadSignature", "the server's certificate has an invalid signature"),
        ("BadEncoding", "the certificate is not valid DER"),
        ("UnsupportedSignatureAlgorithm", "the certificate is signed with an algorithm that is not supported"),
        ("InvalidPurpose", "the certificate is not meant for TLS servers (its extended key usage)"),
        ("does not allow extended key usage", "the certificate is not meant for TLS servers (its extended key usage)"),
        ("UnhandledCriticalExtension", "the certificate has a critical extension that is not supported"),
        ("KeyMismatch", "the private key does not belong to the certificate"),
        ("inconsistent keys", "the private key does not belong to the certificate"),
        ("received fatal alert: HandshakeFailure", "the server refused the TLS handshake (no TLS version or cipher in common)"),
        ("received fatal alert: ProtocolVersion", "the server refused the TLS handshake (no TLS version in common)"),
        ("received fatal alert: UnrecognisedName", "the server does not serve this host name"),
        ("received fatal alert: CertificateRequired", "the server requires a client certificate"),
        ("received fatal alert", "the server ended the TLS handshake with an alert"),
        ("peer sent no certificates", "the server sent no certificate"),
    ];
    SENTENCES.iter().find(|(pattern, _)| why.contains(pattern)).map(|(_, sentence)| (*sentence).to_owned())
}

/// The request head as `--show-handshake` prints it, marked `> `. It is rebuilt from the same
/// inputs the client uses; only the key is unknown, because the client draws it when it sends.
fn request_preview(args: &ConnectArgs, url: &url::Url) -> String {
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut lines = vec![
        format!("GET {target} HTTP/1.1"),
        format!("Host: {host}"),
        "Upgrade: websocket".to_owned(),
        "Connection: Upgrade".to_owned(),
        "Sec-WebSocket-Key: (random, drawn when sent)".to_owned(),
        "Sec-WebSocket-Version: 13".to_owned(),
    ];
    if !args.subprotocols.is_empty() {
        lines.push(format!("Sec-WebSocket-Protocol: {}", args.subprotocols.join(", ")));
    }
    if !args.no_compression {
        lines.push(format!("Sec-WebSocket-Extensions: {}", negotiation::client_offer(&DeflateConfig::default())));
    }
    lines.extend(args.headers.iter().map(|(name, value)| format!("{name}: {value}")));
    if let Some(origin) = &args.origin {
        lines.push(format!("Origin: {origin}"));
    }
    lines.iter().map(|line| format!("> {line}\n")).collect::<String>() + ">\n"
}

/// The response head as `--show-handshake` prints it, marked `< `.
fn response_preview(response: &ClientResponse) -> String {
    let head = &response.head;
    let mut out = format!("< HTTP/1.1 {} {}\n", head.status, head.reason);
    for header in &head.headers.0 {
        out.push_str(&format!("< {}: {}\n", header.name, String::from_utf8_lossy(&header.value)));
    }
    out.push_str("<\n");
    out
}

// ---------------------------------------------------------------------------------------------
// Scripted mode

/// One line of stdin, or why it could not be used.
type InputLine = Result<String, String>;

/// Reads stdin on a thread of its own: a blocking read cannot be cancelled, and a thread that is
/// still blocked when the connection ends simply goes away with the process (tokio's own stdin
/// would make the runtime's shutdown wait for the next line instead).
fn spawn_stdin_reader() -> mpsc::Receiver<InputLine> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut number = 0usize;
        loop {
            let mut raw = Vec::new();
            number += 1;
            let line = match stdin.read_until(b'\n', &mut raw) {
                Ok(0) => break,
                Ok(_) => {
                    strip_line_end(&mut raw);
                    String::from_utf8(raw)
                        .map_err(|_| format!("stdin line {number} is not UTF-8 (text messages must be)"))
                }
                Err(error) => Err(format!("cannot read stdin: {error}")),
            };
            let stop = line.is_err();
            if tx.blocking_send(line).is_err() || stop {
                break;
            }
        }
    });
    rx
}

fn strip_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// Sends the input, prints what arrives, closes after `--wait`, and judges how it ended.
async fn run_scripted(session: Session, args: &ConnectArgs) -> Result<(), String> {
    let Session { conn, mut events, .. } = session;
    let format = Format { json: args.json, timestamps: args.timestamps };
    let mut input = if args.execute.is_empty() {
        Some(spawn_stdin_reader())
    } else {
        for message in &args.execute {
            // Fails only once the connection is closing; its Closed event follows.
            let _ = conn.send_text(message.clone());
        }
        None
    };
    let mut close_at = input.is_none().then(|| Instant::now() + args.wait);
    let mut we_closed = false;
    let mut problem: Option<String> = None;
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Message(message)) => {
                    let line = format!("{}\n", scripted_line(&message, &format));
                    if let Err(error) = stdout.write_all(line.as_bytes()).and_then(|()| stdout.flush()) {
                        // Nobody reads any more (`| head -1`): a normal way for a script to stop.
                        if error.kind() != std::io::ErrorKind::BrokenPipe {
                            problem.get_or_insert(format!("cannot write to stdout: {error}"));
                        }
                        input = None;
                        close_at = Some(Instant::now());
                    }
                }
                // Scripted output is the messages only, one per line.
                Some(Event::Pong(_)) => {}
                Some(Event::Failed(error)) => {
                    problem.get_or_insert(error);
                }
                Some(Event::Closed(closed)) => return verdict(&closed, we_closed, problem),
                None => return Err("the connection ended without reporting how".into()),
            },
            line = next_line(&mut input), if input.is_some() => match line {
                Some(Ok(text)) => {
                    if conn.send_text(text).is_err() {
                        input = None;
                    }
                }
                Some(Err(error)) => {
                    problem.get_or_insert(error);
                    input = None;
                    close_at = Some(Instant::now());
                }
                None => {
                    input = None;
                    close_at = Some(Instant::now() + args.wait);
                }
            },
            () = sleep_until(close_at.unwrap_or_else(Instant::now)), if close_at.is_some() && !we_closed => {
                we_closed = true;
                // Fails only when the server closed first; its Closed event is on the way.
                let _ = conn.close(CloseCode::NORMAL, "");
            }
        }
    }
}

async fn next_line(input: &mut Option<mpsc::Receiver<InputLine>>) -> Option<InputLine> {
    match input {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Success is a completed closing handshake that we started, or that the server started with
/// 1000 or without a code; anything else is reported as the reason to exit non-zero.
fn verdict(closed: &Closed, we_closed: bool, problem: Option<String>) -> Result<(), String> {
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

// ---------------------------------------------------------------------------------------------
// Interactive mode

/// What the user asked for at the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Text(String),
    Binary(Vec<u8>),
    /// Read by the prompt thread (blocking file I/O belongs there) and sent as [`Action::Binary`].
    File(PathBuf),
    Ping(Vec<u8>),
    Close(CloseCode, String),
    Quit,
}

/// A parsed prompt line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    /// An empty line: sending empty messages by accident helps nobody.
    Nothing,
    Help,
    Do(Action),
}

const COMMANDS: &str = "\
commands:
  /ping [DATA]            send a ping
  /close [CODE [REASON]]  close (default 1000) and exit when the server answers
  /binary HEX             send a binary message, e.g. /binary 01 02 ff
  /file PATH              send a file as one binary message
  /quit                   close with 1000 and exit (also Ctrl-D, Ctrl-C)
  //TEXT                  send TEXT starting with one '/'
anything else is sent as a text message";

/// Parses one prompt line. Errors are messages for the user, shown without sending anything.
fn parse_line(line: &str) -> Result<Parsed, String> {
    if let Some(rest) = line.strip_prefix("//") {
        return Ok(Parsed::Do(Action::Text(format!("/{rest}"))));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(if line.is_empty() { Parsed::Nothing } else { Parsed::Do(Action::Text(line.to_owned())) });
    };
    let (name, arg) = match command.split_once(char::is_whitespace) {
        Some((name, arg)) => (name, arg.trim()),
        None => (command, ""),
    };
    let action = match name {
        "ping" => {
            if arg.len() > 125 {
                return Err(format!("a ping carries at most 125 bytes, this is {}", arg.len()));
            }
            Action::Ping(arg.as_bytes().to_vec())
        }
        "close" => {
            let (code, reason) = parse_close_args(arg)?;
            Action::Close(code, reason)
        }
        "binary" => {
            if arg.is_empty() {
                return Err("usage: /binary HEX, e.g. /binary 01 02 ff".into());
            }
            Action::Binary(parse_hex(arg)?)
        }
        "file" => {
            if arg.is_empty() {
                return Err("usage: /file PATH".into());
            }
            Action::File(PathBuf::from(arg))
        }
        "quit" | "exit" => Action::Quit,
        "help" | "?" => return Ok(Parsed::Help),
        _ => return Err(format!("unknown command /{name}; /help lists them, //{name} sends the text /{name}")),
    };
    Ok(Parsed::Do(action))
}

/// `[CODE [REASON]]` of `/close`, checked the way the protocol will: only codes that may appear on
/// the wire, and a reason that fits in a control frame.
fn parse_close_args(arg: &str) -> Result<(CloseCode, String), String> {
    if arg.is_empty() {
        return Ok((CloseCode::NORMAL, String::new()));
    }
    let (code, reason) = match arg.split_once(char::is_whitespace) {
        Some((code, reason)) => (code, reason.trim()),
        None => (arg, ""),
    };
    let code: u16 = code.parse().map_err(|_| format!("not a close code: {code:?}"))?;
    let code = CloseCode(code);
    if !code.is_valid_on_wire() {
        return Err(format!("close code {code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"));
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(format!("a close reason has at most {MAX_REASON_BYTES} bytes, this one {}", reason.len()));
    }
    Ok((code, reason.to_owned()))
}

/// Parses hex digits, allowing whitespace, `:` and `-` between bytes and an optional `0x`.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let text = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    let digits: Vec<char> = text.chars().filter(|c| !(c.is_whitespace() || *c == ':' || *c == '-')).collect();
    if let Some(bad) = digits.iter().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("not a hex digit: {bad:?}"));
    }
    if !digits.len().is_multiple_of(2) {
        return Err("an odd number of hex digits: each byte takes two".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let byte: String = pair.iter().collect();
            u8::from_str_radix(&byte, 16).map_err(|e| e.to_string())
        })
        .collect()
}

/// Where interactive output goes: above the prompt while rustyline reads a line, straight to
/// stdout when there is no prompt to keep intact (the printer could not be created, or the prompt
/// thread has finished).
struct Screen {
    printer: Option<Box<dyn ExternalPrinter + Send>>,
    format: Format,
}

impl Screen {
    fn print(&mut self, text: String) {
        let text = if text.ends_with('\n') { text } else { text + "\n" };
        if let Some(printer) = &mut self.printer {
            if printer.print(text.clone()).is_ok() {
                return;
            }
            self.printer = None;
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    /// A line of ours (not a received message), with the timestamp when asked for.
    fn note(&mut self, marker: &str, text: &str) {
        let line = format!("{}{marker}{text}", self.format.stamp());
        self.print(line);
    }
}

/// The prompt thread's side: which actions it hands over, and whether it should stop.
struct Prompt {
    actions: mpsc::Sender<Action>,
    stop: Arc<AtomicBool>,
}

/// Runs the interactive mode: the prompt on its own thread, the connection on the runtime.
fn run_interactive(runtime: &tokio::runtime::Runtime, session: Session, args: &ConnectArgs) -> Result<(), String> {
    let config =
        rustyline::Config::builder().auto_add_history(true).max_history_size(1000).map_err(|e| e.to_string())?;
    let mut editor = rustyline::DefaultEditor::with_config(config.build()).map_err(|e| e.to_string())?;
    let printer: Option<Box<dyn ExternalPrinter + Send>> = match editor.create_external_printer() {
        Ok(printer) => Some(Box::new(printer)),
        Err(_) => None,
    };
    // Taken before rustyline switches the terminal to raw mode, to put it back if the connection
    // ends while a prompt is still up (see `Terminal::release`).
    let terminal = Terminal::save();
    let format = Format { json: args.json, timestamps: args.timestamps };
    let mut screen = Screen { printer, format };
    let mut banner = format!("connected to {}", session.url);
    if let Some(protocol) = &session.response.protocol {
        banner.push_str(&format!(", sub-protocol {protocol}"));
    }
    if session.response.compressed {
        banner.push_str(", compressed (permessage-deflate)");
    }
    screen
        .print(format!("{banner}\ntype a message and press Enter to send it; /help lists the commands, /quit leaves"));

    let (actions_tx, actions) = mpsc::channel(16);
    let stop = Arc::new(AtomicBool::new(false));
    let prompt = Prompt { actions: actions_tx, stop: Arc::clone(&stop) };
    let prompt_thread = std::thread::spawn(move || prompt_loop(editor, prompt));

    let result = runtime.block_on(interactive_loop(session, actions, &mut screen));

    stop.store(true, Ordering::SeqCst);
    if !prompt_thread.is_finished() {
        terminal.release(screen.printer.is_some());
    }
    screen.printer = None;
    match result {
        Ok(closed_line) => {
            screen.note("* ", &closed_line);
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Reads lines until the user quits or closes; runs on a blocking thread of its own.
fn prompt_loop(mut editor: rustyline::DefaultEditor, prompt: Prompt) {
    use rustyline::error::ReadlineError;
    while !prompt.stop.load(Ordering::SeqCst) {
        let line = match editor.readline("> ") {
            Ok(line) => line,
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => {
                let _ = prompt.actions.blocking_send(Action::Quit);
                return;
            }
            Err(error) => {
                eprintln!("! cannot read the terminal: {error}");
                let _ = prompt.actions.blocking_send(Action::Quit);
                return;
            }
        };
        let action = match parse_line(&line) {
            Ok(Parsed::Nothing) => continue,
            Ok(Parsed::Help) => {
                println!("{COMMANDS}");
                continue;
            }
            Ok(Parsed::Do(Action::File(path))) => match read_file(&path) {
                Ok(bytes) => Action::Binary(bytes),
                Err(error) => {
                    eprintln!("! {error}");
                    continue;
                }
            },
            Ok(Parsed::Do(action)) => action,
            Err(error) => {
                eprintln!("! {error}");
                continue;
            }
        };
        let last = matches!(action, Action::Close(..) | Action::Quit);
        if prompt.actions.blocking_send(action).is_err() || last {
            return;
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Connects the user's actions to the connection and prints what arrives, until the connection
/// has ended. Returns the line describing the close, or why it was not a good one.
async fn interactive_loop(
    session: Session,
    mut actions: mpsc::Receiver<Action>,
    screen: &mut Screen,
) -> Result<String, String> {
    let Session { conn, mut events, .. } = session;
    let mut prompt_open = true;
    let mut we_closed = false;
    let mut problem: Option<String> = None;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Message(message)) => {
                    let text = interactive_lines(&message, &screen.format);
                    screen.print(text);
                }
                Some(Event::Pong(payload)) => screen.note("< ", &pong_line(&payload)),
                Some(Event::Failed(error)) => {
                    screen.note("! ", &error);
                    problem.get_or_insert(error);
                }
                Some(Event::Closed(closed)) => {
                    return verdict(&closed, we_closed, problem).map(|()| format!("closed: {}", describe_close(&closed)));
                }
                None => return Err("the connection ended without reporting how".into()),
            },
            action = actions.recv(), if prompt_open => {
                let sent = match action {
                    Some(Action::Text(text)) => conn.send_text(text),
                    Some(Action::Binary(bytes)) => {
                        screen.note("> ", &binary_preview(&bytes));
                        conn.send_binary(bytes)
                    }
                    Some(Action::File(_)) => Ok(()), // Turned into Binary by the prompt thread.
                    Some(Action::Ping(data)) => {
                        screen.note("> ", &format!("ping ({} bytes)", data.len()));
                        conn.ping(data)
                    }
                    Some(Action::Close(code, reason)) => {
                        prompt_open = false;
                        we_closed = true;
                        conn.close(code, &reason)
                    }
                    Some(Action::Quit) | None => {
                        prompt_open = false;
                        we_closed = true;
                        conn.close(CloseCode::NORMAL, "")
                    }
                };
                if sent.is_err() {
                    screen.note("! ", "not sent: the connection is closing");
                }
            }
        }
    }
}

/// The terminal mode from before rustyline's raw mode. rustyline restores it itself when
/// `readline` returns, but `readline` cannot be interrupted from another thread: when the server
/// ends the connection while the user sits at the prompt, we restore the mode here and exit,
/// rather than leaving the shell without echo or asking the user to press Enter.
struct Terminal(Option<nix::sys::termios::Termios>);

impl Terminal {
    fn save() -> Self {
        Self(nix::sys::termios::tcgetattr(std::io::stdin()).ok())
    }

    /// Takes the terminal back from a prompt thread that is still in `readline`.
    fn release(&self, printer_used: bool) {
        if printer_used {
            // The printer hands lines to the prompt thread through a pipe: give it a moment to
            // draw the last ones before the process ends.
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(mode) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, mode);
        }
        // Bracketed paste off (rustyline turns it on), then erase the abandoned prompt line.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(b"\x1b[?2004l\r\x1b[2K");
        let _ = stdout.flush();
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting

/// How received messages are shown.
#[derive(Debug, Clone, Copy, Default)]
struct Format {
    json: bool,
    timestamps: bool,
}

impl Format {
    /// The timestamp prefix, or nothing.
    fn stamp(&self) -> String {
        if self.timestamps {
            format!("{} ", chrono::Local::now().format("%H:%M:%S%.3f"))
        } else {
            String::new()
        }
    }

    /// The text to show for a text message: pretty JSON when asked for and possible.
    fn text(&self, text: &str) -> String {
        if self.json {
            if let Some(pretty) = pretty_json(text) {
                return pretty;
            }
        }
        text.to_owned()
    }
}

/// Scripted output: one line per message, text as is, binary as `<binary N bytes: HEX>` in full
/// (a script may need every byte).
fn scripted_line(message: &Message, format: &Format) -> String {
    let body = match message {
        Message::Text(text) => format.text(text),
        Message::Binary(bytes) => format!("<binary {} bytes: {}>", bytes.len(), hex(bytes)),
    };
    format!("{}{body}", format.stamp())
}

/// Interactive output: `< ` before the first line and the same width of spaces before the others,
/// so a multi-line message stays one visible block; binary as a preview. Control characters are
/// escaped so that a server cannot drive the user's terminal with escape sequences.
fn interactive_lines(message: &Message, format: &Format) -> String {
    let prefix = format!("{}< ", format.stamp());
    let body = match message {
        Message::Text(text) => sanitize(&format.text(text)),
        Message::Binary(bytes) => binary_preview(bytes),
    };
    let indent = " ".repeat(prefix.chars().count());
    let mut out = String::new();
    for (i, line) in body.split('\n').enumerate() {
        out.push_str(if i == 0 { &prefix } else { &indent });
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// How many bytes of a binary message the interactive mode shows.
const PREVIEW_BYTES: usize = 32;

/// `binary 40 bytes: 00 01 02 ... 1f ...`: the length and the first [`PREVIEW_BYTES`] bytes.
fn binary_preview(bytes: &[u8]) -> String {
    format!("binary {}", byte_preview(bytes))
}

/// `40 bytes: 00 01 02 ... 1f ...`: the length and the first [`PREVIEW_BYTES`] bytes.
fn byte_preview(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(PREVIEW_BYTES)];
    let mut out = format!("{} byte{}", bytes.len(), if bytes.len() == 1 { "" } else { "s" });
    if !shown.is_empty() {
        out.push_str(": ");
        out.push_str(&shown.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "));
    }
    if bytes.len() > PREVIEW_BYTES {
        out.push_str(" ...");
    }
    out
}

/// `pong`, `pong "text"` (a UTF-8 payload, as `/ping text` sends) or `pong 3 bytes: 00 01 02`.
fn pong_line(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        _ if payload.is_empty() => "pong".to_owned(),
        Ok(text) => format!("pong {:?}", sanitize(text)),
        Err(_) => format!("pong {}", byte_preview(payload)),
    }
}

/// Lowercase hex without separators.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Escapes control characters other than line breaks and tabs (`\r` too, which would let a line
/// overwrite itself).
fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Pretty JSON for objects and arrays; scalars are left alone (re-printing `1e2` as `100.0` would
/// change what the server sent without making it any clearer).
fn pretty_json(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if !(value.is_object() || value.is_array()) {
        return None;
    }
    serde_json::to_string_pretty(&value).ok()
}

/// `1000 (normal closure): reason`, or `1006 (abnormal closure, no closing handshake)`.
fn describe_close(closed: &Closed) -> String {
    let mut out = closed.code.to_string();
    if let Some(name) = closed.code.name() {
        out.push_str(&format!(" ({name})"));
    }
    if !closed.reason.is_empty() {
        out.push_str(&format!(": {}", closed.reason));
    }
    out
}

/// Error messages go on one line of stderr, even when a server's error page has several.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_become_sentences() {
        let cases = [
            ("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))", "presents a CA certificate as its own"),
            ("invalid peer certificate: UnknownIssuer", "not signed by a trusted CA"),
            ("invalid peer certificate: certificate expired: verification time 2 (UNIX), but", "has expired"),
            ("keys may not be consistent: KeyMismatch", "private key does not belong to the certificate"),
            ("received fatal alert: HandshakeFailure", "refused the TLS handshake"),
        ];
        for (rustls, sentence) in cases {
            let got = tls_sentence(rustls).unwrap_or_default();
            assert!(got.contains(sentence), "{rustls} -> {got}");
            assert!(!got.contains("Error") && !got.contains("UNIX"), "{got}");
        }
        assert_eq!(tls_sentence("something new"), None, "unknown errors are shown as rustls words them");
        assert!(is_plain_answer("received corrupt message of type InvalidContentType"));
    }

    #[test]
    fn hex_preview_shows_the_length_and_at_most_32_bytes() {
        assert_eq!(binary_preview(&[]), "binary 0 bytes");
        assert_eq!(binary_preview(&[0xab]), "binary 1 byte: ab");
        assert_eq!(binary_preview(&[0, 1, 0xff]), "binary 3 bytes: 00 01 ff");
        let long: Vec<u8> = (0..40).collect();
        let preview = binary_preview(&long);
        assert!(preview.starts_with("binary 40 bytes: 00 01 02"), "{preview}");
        assert!(preview.ends_with("1e 1f ..."), "{preview}");
        assert!(!preview.contains(" 20"), "byte 32 is not shown: {preview}");
    }

    #[test]
    fn scripted_lines_are_text_as_is_and_binary_in_full_hex() {
        let format = Format::default();
        assert_eq!(scripted_line(&Message::Text("héllo".into()), &format), "héllo");
        let binary = Message::Binary(vec![0xde, 0xad, 0xbe, 0xef].into());
        assert_eq!(scripted_line(&binary, &format), "<binary 4 bytes: deadbeef>");
        let json = Format { json: true, timestamps: false };
        assert_eq!(scripted_line(&Message::Text(r#"{"a":1}"#.into()), &json), "{\n  \"a\": 1\n}");
        assert_eq!(scripted_line(&Message::Text("1e2".into()), &json), "1e2", "scalars stay as sent");
    }

    #[test]
    fn interactive_lines_mark_indent_and_escape() {
        let format = Format::default();
        assert_eq!(interactive_lines(&Message::Text("hi".into()), &format), "< hi\n");
        assert_eq!(interactive_lines(&Message::Text("a\nb".into()), &format), "< a\n  b\n");
        assert_eq!(interactive_lines(&Message::Text("\x1b[2Jx\r".into()), &format), "< \\u{1b}[2Jx\\r\n");
        assert_eq!(interactive_lines(&Message::Binary(vec![7].into()), &format), "< binary 1 byte: 07\n");
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse_line(""), Ok(Parsed::Nothing));
        assert_eq!(parse_line("hello"), Ok(Parsed::Do(Action::Text("hello".into()))));
        assert_eq!(parse_line("//etc"), Ok(Parsed::Do(Action::Text("/etc".into()))));
        assert_eq!(pong_line(b""), "pong");
        assert_eq!(pong_line(b"are you there"), "pong \"are you there\"");
        assert_eq!(pong_line(&[0xff, 0x00]), "pong 2 bytes: ff 00");
        assert_eq!(parse_line("/ping"), Ok(Parsed::Do(Action::Ping(vec![]))));
        assert_eq!(parse_line("/ping are you there"), Ok(Parsed::Do(Action::Ping(b"are you there".to_vec()))));
        assert!(parse_line(&format!("/ping {}", "x".repeat(126))).is_err());
        assert_eq!(parse_line("/close"), Ok(Parsed::Do(Action::Close(CloseCode::NORMAL, String::new()))));
        assert_eq!(parse_line("/close 4000 bye now"), Ok(Parsed::Do(Action::Close(CloseCode(4000), "bye now".into()))));
        assert!(parse_line("/close 1006").is_err(), "1006 never goes on the wire");
        assert!(parse_line("/close abc").is_err());
        assert!(parse_line(&format!("/close 1000 {}", "r".repeat(124))).is_err());
        assert_eq!(parse_line("/binary 01 02 ff"), Ok(Parsed::Do(Action::Binary(vec![1, 2, 255]))));
        assert!(parse_line("/binary").is_err());
        assert_eq!(parse_line("/file /tmp/x y"), Ok(Parsed::Do(Action::File("/tmp/x y".into()))));
        assert!(parse_line("/file").is_err());
        assert_eq!(parse_line("/quit"), Ok(Parsed::Do(Action::Quit)));
        assert_eq!(parse_line("/help"), Ok(Parsed::Help));
        assert!(parse_line("/frobnicate").unwrap_err().contains("//frobnicate"));
    }

    #[test]
    fn hex_parses_with_separators_and_rejects_garbage() {
        assert_eq!(parse_hex("0xDEADbeef"), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(parse_hex("de:ad-be ef"), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
        assert!(parse_hex("abc").unwrap_err().contains("odd"));
        assert!(parse_hex("zz").unwrap_err().contains("'z'"));
        assert_eq!(parse_hex("é").unwrap_err(), "not a hex digit: 'é'");
    }

    #[test]
    fn headers_and_durations_parse() {
        assert_eq!(parse_header("Authorization: Bearer a:b"), Ok(("Authorization".into(), "Bearer a:b".into())));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: x").is_err());
        assert!(parse_header("X-Evil: a\r\nHost: b").is_err());
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn urls_are_normalized() {
        assert_eq!(normalize_url("ws://a/b"), "ws://a/b");
        assert_eq!(normalize_url("https://a/b"), "wss://a/b");
        assert_eq!(normalize_url("http://a"), "ws://a");
        assert_eq!(normalize_url("localhost:8787/echo"), "ws://localhost:8787/echo");
    }

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

    #[test]
    fn errors_fit_on_one_line() {
        assert_eq!(one_line("HTTP 403 Forbidden: <h1>\nno\n</h1>\n"), "HTTP 403 Forbidden: <h1> no </h1>");
    }
}
