//! `tether connect`'s flags and the checks that need no network.
//!
//! Kept apart from the modes so that `--help` (the flags, and [`AFTER_HELP`] with what each mode
//! does) reads in one place, and so that a bad argument fails with status 2 before anything is
//! attempted.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tether_proto::handshake::is_token;
use tether_tokio::client::{WsUrl, WsUrlError};

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
    /// Print the handshake request and the server's response head to stderr, exactly as they were
    /// sent and received (the key included).
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

/// Parses `-H 'Name: value'`. The name must be an HTTP token and the value may not contain line
/// breaks: both would otherwise let an argument smuggle extra lines into the request head.
fn parse_header(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg.split_once(':').ok_or_else(|| format!("expected 'Name: value', got {arg:?}"))?;
    let name = name.trim();
    if !is_token(name) {
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

/// The checks that need no network: the URL (normalized) is a ws:// or wss:// URL with a host,
/// and the CA file (if any) can be read. Returns the URL taken apart, for [`super::session`].
pub(super) fn check_arguments(args: &ConnectArgs) -> Result<WsUrl, String> {
    let url = normalize_url(&args.url);
    let parsed = WsUrl::parse(&url).map_err(|error| match error {
        // `normalize_url` has turned http(s):// into ws(s)://, so all four are accepted.
        WsUrlError::Scheme(_) => format!("invalid URL {url:?}: the scheme must be ws://, wss://, http:// or https://"),
        other => format!("invalid URL {url:?}: {other}"),
    })?;
    if let Some(path) = &args.ca_file {
        std::fs::metadata(path).map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    }
    Ok(parsed)
}

/// Accepts what people paste: `ws://` and `wss://` as they are, `http(s)://` as the matching
/// WebSocket scheme, and a bare `host:port/path` as `ws://`.
pub(super) fn normalize_url(url: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ConnectArgs,
    }

    fn args(argv: &[&str]) -> ConnectArgs {
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn a_foreign_scheme_is_refused_naming_the_four_accepted() {
        let args = args(&["connect", "ftp://x/"]);
        assert_eq!(
            check_arguments(&args).unwrap_err(),
            "invalid URL \"ftp://x/\": the scheme must be ws://, wss://, http:// or https://"
        );
        let args = self::args(&["connect", "http://x:1/a?b"]);
        assert_eq!(check_arguments(&args).unwrap().target(), "/a?b");
    }
}
