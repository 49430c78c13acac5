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
//! what the protocol core does. The flags every mode has, and what a mode hands back, are in
//! [`common`]. Everything runs on a current-thread runtime unless `--threads`
//! says otherwise, so a benchmark script can pin the generator to one CPU.

mod common;
mod echo;
mod fanout;
mod idle;
mod net;
mod progress;
mod stats;

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
