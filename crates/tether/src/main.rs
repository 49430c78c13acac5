//! `tether`: the command-line entry point. One module per subcommand, each on the library crates:
//!
//! ```text
//!  tether serve   ─ settings/ (flags over TOML over defaults, ranges checked: exit 2)
//!                   └▶ serve.rs: tether-tokio Server + tether-hub on /tether + demo/ routes
//!                      + api/ (the server HTTP API on /api/*, or on --internal-port)
//!                      + admin/ (the dashboard on /admin and /admin/ws, with api/'s port)
//!  tether connect ─ connect/args ─▶ session (tether-tokio client, WsUrl, handshake bytes)
//!                   └▶ scripted (send, expect, exit status) or interactive (prompt, commands)
//!  tether bench   ─ bench/common ─▶ echo | fanout/ | idle, over bench/net (tether-proto on raw
//!                   sockets: no runtime of ours between the generator and the server it measures)
//! ```
#![forbid(unsafe_code)]

mod admin;
mod api;
mod auth;
mod bench;
mod connect;
mod demo;
mod log_throttle;
mod metrics;
mod serve;
mod settings;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};

use settings::LogFormat;

/// Tether: a conformant, fast WebSocket server.
#[derive(Debug, Parser)]
#[command(name = "tether", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default when no subcommand is given): the tutorial's demo on `/`, an
    /// echo endpoint on `/echo`, the token protocol on `/tether`, on 127.0.0.1:8787.
    Serve(Box<settings::ServeSettings>),
    /// Connect to a WebSocket server: an interactive client in a terminal, one message per line
    /// when scripted (stdin not a terminal, or -x).
    Connect(connect::ConnectArgs),
    /// Load-test any WebSocket server: echo throughput and latency, many idle connections, or
    /// fan-out over the token protocol.
    Bench(bench::BenchArgs),
}

/// The exit status of a usage error (bad flag, bad setting), as clap uses it too.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    let command = cli.command.unwrap_or_else(|| Command::Serve(Box::default()));
    let settings = match command {
        Command::Serve(settings) => *settings,
        // `connect` shares stderr with its prompt and its error line: only warnings are logged there.
        // It runs its own runtime and prompt thread, and reports its own errors and exit status.
        Command::Connect(args) => {
            init_logging(LogFormat::Text, "warn");
            return connect::main(args);
        }
        // `bench` picks its own runtime (current-thread by default) and reports its own results.
        Command::Bench(args) => {
            init_logging(LogFormat::Text, "warn");
            return bench::main(args);
        }
    };
    // Logging starts once the settings are read (the format is one of them): an error before that
    // can only be the plain line.
    let mut json_logs = false;
    let resolved = match settings.load().and_then(|settings| {
        let format = settings.log_format.unwrap_or_default();
        init_logging(format, "info");
        json_logs = format == LogFormat::Json;
        settings.resolve()
    }) {
        Ok(resolved) => resolved,
        Err(error) => return fatal(&error, json_logs, ExitCode::from(USAGE)),
    };
    // One thread means tokio's current-thread scheduler: everything on the thread that started,
    // with no work-stealing queues and no cross-thread wake-ups.
    let mut builder = match resolved.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder.enable_all().build().expect("tokio runtime");
    match runtime.block_on(serve::run(resolved)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fatal(&error, json_logs, ExitCode::FAILURE),
    }
}

/// Reports the error that stops `tether serve` and returns `code`: the plain `tether: ERROR` line
/// on stderr (for a person or a script), and with `--log-format json` one `error` JSON line after
/// it too, so that a log collector, which reads only the JSON lines, sees why the server stopped.
fn fatal(error: &str, json_logs: bool, code: ExitCode) -> ExitCode {
    eprintln!("tether: {error}");
    if json_logs {
        tracing::error!("{error}");
    }
    code
}

/// Logs to stderr, filtered by `TETHER_LOG`. Colours only on a terminal (and not with NO_COLOR):
/// escape codes in a file or a log collector are noise.
fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG").unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(ansi).init();
        }
    }
}

/// Reports a command-line error. A bad value of a setting gets one line naming the flag, the value
/// and the range (`tether: --ping-interval 0.5: expected whole seconds 0..=86400 (0 = off)`), like
/// a bad value in the TOML file; everything else is clap's own message. Help and version go to
/// stdout with status 0.
fn usage_error(error: clap::Error) -> ExitCode {
    if matches!(error.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        let context = |kind| match error.get(kind) {
            Some(ContextValue::String(text)) => Some(text.clone()),
            _ => None,
        };
        // (A missing value is an InvalidValue with an empty value: clap's message says it best.)
        let value = context(ContextKind::InvalidValue).filter(|value| !value.is_empty());
        if let (Some(arg), Some(value)) = (context(ContextKind::InvalidArg), value) {
            let flag = arg.split([' ', '=']).next().unwrap_or(&arg).to_owned();
            let key = flag.trim_start_matches('-').replace('-', "_");
            let expected = match (settings::range_of(&key), error.get(ContextKind::ValidValue)) {
                (Some(range), _) => format!("expected {}", range.expected),
                (None, Some(ContextValue::Strings(values))) => format!("expected one of {}", values.join(", ")),
                (None, _) => std::error::Error::source(&error).map_or_else(
                    || error.kind().to_string(),
                    |source| source.to_string().lines().next().unwrap_or_default().to_owned(),
                ),
            };
            eprintln!("tether: {flag} {value}: {expected}");
            return ExitCode::from(USAGE);
        }
    }
    let _ = error.print();
    ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(USAGE))
}
