//! `tether`: the command-line entry point. One module per subcommand.
#![forbid(unsafe_code)]

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
    Serve(settings::ServeSettings),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let command = cli.command.unwrap_or_else(|| Command::Serve(settings::ServeSettings::default()));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match command {
            Command::Serve(settings) => serve::run(settings).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tether: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
