//! What the peer echo servers share: the `--port P` flag and the `listening on` line that
//! bench/run.sh waits for.

use std::io::Write;
use std::net::SocketAddr;

/// The port from `--port P` (or `--port=P`); 0, an ephemeral port, when absent.
pub fn port_from_args() -> u16 {
    let mut args = std::env::args().skip(1);
    let mut port = 0;
    while let Some(arg) = args.next() {
        let value = if arg == "--port" || arg == "-p" {
            args.next()
        } else if let Some(v) = arg.strip_prefix("--port=") {
            Some(v.to_string())
        } else {
            eprintln!("usage: {} [--port P]", std::env::args().next().unwrap_or_default());
            std::process::exit(2);
        };
        port = match value.as_deref().map(str::parse) {
            Some(Ok(p)) => p,
            _ => {
                eprintln!("--port needs a number from 0 to 65535");
                std::process::exit(2);
            }
        };
    }
    port
}

/// Prints `listening on ws://127.0.0.1:PORT` and flushes, so a script reading a pipe sees it.
pub fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on ws://{addr}");
    let _ = out.flush();
}
