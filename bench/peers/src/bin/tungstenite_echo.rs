//! Echo server on tokio-tungstenite, set up as its own echo-server example: `accept_async`, then
//! forward every text and binary message back (text as text, binary as binary). Pings are
//! answered by tungstenite itself; Close is answered by it too and ends the stream.
//!
//! One current-thread runtime: bench/run.sh pins every server to one core.

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port = tether_bench_peers::port_from_args();
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    tether_bench_peers::announce(listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream));
            }
            // Out of file descriptors and the like: keep serving the connections we have.
            Err(error) => {
                eprintln!("accept: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let (write, read) = ws.split();
    // A peer that goes away mid-run ends this connection with an error: nothing to report.
    let _ = read.try_filter(|msg| future::ready(msg.is_text() || msg.is_binary())).forward(write).await;
}
