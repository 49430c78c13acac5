//! `tether bench`: a load generator for any WebSocket server.
//!
//! Three modes, each bounded in time and in connections:
//! - [`echo`]: N connections keep K messages each in flight against an echo endpoint; throughput,
//!   round-trip latency percentiles, errors, and the generator's own CPU use;
//! - [`idle`]: N connections opened and held, to see how many a server takes;
//! - [`fanout`]: subscribers on one channel of the token protocol (`/tether`) and publishers at a
//!   fixed rate; deliveries per second and publish-to-delivery latency.
//!
//! Connections are opened by [`net`] (a socket bound to a chosen source address when asked, TLS,
//! the sans-IO handshake) and driven directly through `tether_proto::Connection`: one write per
//! batch of queued frames, every frame of a read parsed at once, no allocation per message beyond
//! what the protocol core does. Everything runs on a current-thread runtime unless `--threads`
//! says otherwise, so a benchmark script can pin the generator to one CPU.

mod echo;
mod fanout;
mod idle;
mod net;
mod progress;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

/// `tether bench` arguments.
#[derive(Debug, Args)]
#[command(after_long_help = "Load-test a WebSocket server (any server, not only Tether): echo throughput and \
                  latency, many idle connections, or token-protocol fan-out.\n\n\
                  Progress goes to stderr, the report to stdout (with --json: one JSON object on the \
                  last line of stdout, the readable report on stderr). The exit status is 1 when no \
                  connection could be opened, 2 for bad arguments, 0 otherwise (check `errors`).")]
pub struct BenchArgs {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Round trips against an echo endpoint: messages/s, MB/s, latency percentiles, errors.
    #[command(long_about = echo::LONG_ABOUT)]
    Echo(echo::EchoArgs),
    /// Open many connections and hold them: how many does the server accept?
    #[command(long_about = idle::LONG_ABOUT)]
    Idle(idle::IdleArgs),
    /// Publish at a fixed rate to subscribers of the token protocol (`/tether`): deliveries/s and
    /// publish-to-delivery latency.
    #[command(long_about = fanout::LONG_ABOUT)]
    Fanout(fanout::FanoutArgs),
}

/// Flags every mode has.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connections and output")]
pub struct Common {
    /// Print the results as one JSON object on the last line of stdout; the readable report goes
    /// to stderr.
    #[arg(long)]
    pub json: bool,
    /// Runtime threads. 1 (the default) runs everything on one current-thread runtime, which a
    /// script can pin to one CPU with `taskset -c`; N > 1 runs a multi-thread runtime with N workers.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,
    /// Offer permessage-deflate. The server may decline; the report says whether it was agreed.
    #[arg(long)]
    pub compression: bool,
    /// Seconds each connection has for TCP connect, TLS and the opening handshake; after that it
    /// counts as failed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = secs)]
    pub connect_timeout: f64,
    /// Seconds to wait after the measured run for answers still in flight and closing handshakes;
    /// whatever has not arrived by then counts as lost (an error).
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = secs)]
    pub drain_timeout: f64,
    /// Handshakes in progress at once while ramping up.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub ramp: u32,
    /// Spread connections over the source addresses 127.0.0.1 ..= 127.0.0.N (N at most 254), binding
    /// each socket before it connects. Each source address has its own ~28k ephemeral ports, so one
    /// generator can open more than ~28k connections to one server port. Loopback servers only
    /// (Linux routes all of 127.0.0.0/8 to lo).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=254))]
    pub source_ips: Option<u8>,
    /// For wss://: accept any server certificate (self-signed test servers). This disables TLS's
    /// protection; use it only against your own test server.
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// For wss://: also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Offer this sub-protocol (repeatable, in order of preference).
    #[arg(long = "protocol", value_name = "NAME")]
    pub protocols: Vec<String>,
    /// Add a request header (repeatable), e.g. -H 'Authorization: Bearer xyz'.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = header)]
    pub headers: Vec<(String, String)>,
}

impl Common {
    fn target_options(&self) -> net::TargetOptions {
        net::TargetOptions {
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            protocols: self.protocols.clone(),
            headers: self.headers.clone(),
            deflate: self.compression,
            connect_timeout: Duration::from_secs_f64(self.connect_timeout),
            source_ips: self.source_ips.unwrap_or(0),
        }
    }

    fn drain(&self) -> Duration {
        Duration::from_secs_f64(self.drain_timeout)
    }
}

/// A number of seconds: finite, not negative, at most a day.
fn secs(value: &str) -> Result<f64, String> {
    let secs: f64 = value.parse().map_err(|_| format!("{value:?} is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{value} is out of range (0 to 86400 seconds)"));
    }
    Ok(secs)
}

/// A number of seconds more than 0.
fn positive_secs(value: &str) -> Result<f64, String> {
    let secs = secs(value)?;
    if secs > 0.0 {
        Ok(secs)
    } else {
        Err("must be more than 0 seconds".into())
    }
}

/// A `ws://` or `wss://` URL with a host.
fn ws_url(value: &str) -> Result<String, String> {
    // The parse the connections will use, so that what passes here also opens there.
    tether_tokio::client::WsUrl::parse(value).map(|_| value.to_owned()).map_err(|e| e.to_string())
}

fn header(value: &str) -> Result<(String, String), String> {
    let (name, value) = value.split_once(':').ok_or("expected NAME: VALUE")?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
        return Err(format!("invalid header name {name:?}"));
    }
    if value.contains(['\r', '\n']) {
        return Err("header values cannot contain line breaks".into());
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// What a mode hands back.
pub struct Outcome {
    /// The readable report.
    human: String,
    /// The same as one JSON object.
    json: serde_json::Value,
    /// Whether any connection opened (the exit status).
    connected: bool,
}

/// Runs `tether bench`.
pub fn main(args: BenchArgs) -> ExitCode {
    let common = match &args.mode {
        Mode::Echo(a) => a.common.clone(),
        Mode::Idle(a) => a.common.clone(),
        Mode::Fanout(a) => a.common.clone(),
    };
    let runtime = if common.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(usize::from(common.threads)).enable_all().build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tether bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let ui = progress::Ui::new();
    let result = runtime.block_on(async {
        match args.mode {
            Mode::Echo(args) => echo::run(args, ui).await,
            Mode::Idle(args) => idle::run(args, ui).await,
            Mode::Fanout(args) => fanout::run(args, ui).await,
        }
    });
    // Tasks still lingering (a connection that would not close) must not hold the process.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(outcome) => {
            if common.json {
                eprint!("{}", outcome.human);
                println!("{}", outcome.json);
            } else {
                print!("{}", outcome.human);
            }
            if outcome.connected {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("tether bench: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_headers_are_checked() {
        assert_eq!(secs("1.5"), Ok(1.5));
        assert!(secs("-1").is_err() && secs("NaN").is_err() && secs("x").is_err() && secs("1e9").is_err());
        assert_eq!(header("Cookie: a=b"), Ok(("Cookie".into(), "a=b".into())));
        assert!(header("no colon").is_err() && header("bad name: x").is_err());
        assert!(positive_secs("0").is_err() && positive_secs("0.5").is_ok());
        assert!(ws_url("ws://127.0.0.1:8787/echo").is_ok() && ws_url("wss://example.test").is_ok());
        assert!(ws_url("http://127.0.0.1/").is_err() && ws_url("127.0.0.1:80").is_err());
    }
}
