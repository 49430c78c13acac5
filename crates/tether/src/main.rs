//! `tether`: the command-line entry point. One module per subcommand.
#![forbid(unsafe_code)]

mod bench;
mod connect;
mod demo;
mod serve;
mod settings;

use clap::{Parser, Subcommand};

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
    /// echo endpoint on `/echo`, on 127.0.0.1:8787.
    Serve(Box<settings::ServeSettings>),
    /// Connect to a WebSocket server: an interactive client in a terminal, one message per line
    /// when scripted (stdin not a terminal, or -x).
    Connect(connect::ConnectArgs),
    /// Load-test any WebSocket server: echo throughput and latency, many idle connections, or
    /// fan-out over the token protocol.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or_else(|| Command::Serve(Box::default()));
    // `connect` shares stderr with its prompt and its error line: only warnings are logged there.
    let default_filter = if matches!(command, Command::Connect(_) | Command::Bench(_)) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG").unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = match command {
        Command::Serve(settings) => *settings,
        // `connect` runs its own runtime and prompt thread, and reports its own errors and exit status.
        Command::Connect(args) => return connect::main(args),
        // `bench` picks its own runtime (current-thread by default) and reports its own results.
        Command::Bench(args) => return bench::main(args),
    };
    let settings = match settings.with_file() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("tether: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // One thread means tokio's current-thread scheduler: everything on the thread that started,
    // with no work-stealing queues and no cross-thread wake-ups.
    let mut builder = match settings.threads {
        Some(0 | 1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder.enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(serve::run(settings));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tether: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
