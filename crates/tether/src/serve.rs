//! `tether serve`: runs the server.
//!
//! Endpoints: `/echo` echoes every message back with its type (text as text, binary as binary),
//! with permessage-deflate accepted when offered. It is the endpoint the Autobahn suite runs against.

use std::io::Write as _;
use std::net::IpAddr;

use clap::Parser;
use tether_proto::handshake::server::UpgradeRequest;
use tether_tokio::{Server, ServerConfig, WebSocket};
use tokio::net::TcpStream;

/// Settings of `tether serve`.
#[derive(Debug, Parser)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on; 0 picks a free one (printed as `listening on ws://HOST:PORT`).
    #[arg(long, short, default_value_t = 8787)]
    port: u16,
    /// Largest accepted message in bytes, after decompression; larger ones close with 1009.
    #[arg(long, default_value_t = 64 << 20)]
    max_message_size: usize,
    /// Largest accepted frame payload in bytes; larger frames close with 1009.
    #[arg(long, default_value_t = 64 << 20)]
    max_frame_size: usize,
    /// Largest request head in bytes; larger requests get 431.
    #[arg(long, default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// Seconds a client has to complete the opening handshake; slower ones get 408.
    #[arg(long, default_value_t = 10)]
    handshake_timeout: u64,
    /// Never negotiate permessage-deflate.
    #[arg(long)]
    no_compression: bool,
}

/// Runs the server until Ctrl-C.
pub async fn run(args: ServeArgs) -> std::io::Result<()> {
    let mut config = ServerConfig {
        handshake_timeout: std::time::Duration::from_secs(args.handshake_timeout),
        compression: !args.no_compression,
        ..ServerConfig::default()
    };
    config.connection.max_message_size = args.max_message_size;
    config.connection.max_frame_size = args.max_frame_size;
    config.head_limits.max_bytes = args.max_header_bytes;
    let server = Server::new(config).route("/echo", echo).bind((args.host, args.port)).await?;
    let addr = server.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on ws://{addr}")?;
        stdout.flush()?;
    }
    server
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// Echoes every message. `feed` queues the answer; it is written with the others produced from the
/// same read, before the connection waits for more input.
async fn echo(mut ws: WebSocket<TcpStream>, _request: UpgradeRequest) {
    while let Some(Ok(message)) = ws.recv().await {
        if ws.feed(&message).await.is_err() {
            break;
        }
    }
}
