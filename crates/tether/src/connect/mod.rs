//! `tether connect URL`: a terminal WebSocket client, for the jobs people reach for wscat or
//! websocat for.
//!
//! Two modes, picked by what stdin is:
//! - **Interactive** (stdin is a terminal, [`interactive`]): a prompt; each line typed is sent as
//!   a text message, received messages are printed above it. Lines starting with `/` are
//!   commands ([`commands`]; `/help` lists them).
//! - **Scripted** (stdin is a pipe or a file, or `-x` is given, [`scripted`]): one text message
//!   per input line, one stdout line per received message and nothing else.
//!
//! Both open the connection the same way ([`session`]) and show things the same way ([`format`]);
//! the flags are in [`args`]. This module only picks the mode and turns the result into an exit
//! status. Everything that is not a received message (errors, `--show-handshake`) goes to stderr.

mod args;
mod commands;
mod format;
mod interactive;
mod scripted;
mod session;

// `tether serve` words its TLS errors the same way.
pub(crate) use format::tls_sentence;

use std::io::IsTerminal;
use std::process::ExitCode;

use args::check_arguments;
pub use args::ConnectArgs;
use format::one_line;
use interactive::run_interactive;
use scripted::run_scripted;
use session::open;

/// Runs `tether connect` to the end and returns the process's exit status. Errors are reported
/// here, on one line of stderr, because scripts read stdout and a terminal user reads both.
pub fn main(args: ConnectArgs) -> ExitCode {
    // A URL that cannot work, or a CA file that cannot be read, is a bad argument: status 2, as
    // the help says, before anything is attempted.
    let url = match check_arguments(&args) {
        Ok(url) => url,
        Err(error) => {
            eprintln!("tether connect: {}", one_line(&error));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the tokio runtime: {error}")),
    };
    let interactive = args.execute.is_empty() && std::io::stdin().is_terminal();
    let result = match runtime.block_on(open(&args, &url)) {
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
