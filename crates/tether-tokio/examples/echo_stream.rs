//! An echo server on the lower-level API: the handler owns each connection and loops over `recv`.
//! Run: `cargo run -p tether-tokio --example echo_stream`, then connect to ws://127.0.0.1:9001/echo.
use tether_tokio::{RouteOptions, Server, ServerConfig};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let server = Server::new(ServerConfig::default())
        .route_stream("/echo", RouteOptions::default(), |mut ws, request| async move {
            println!("connection to {}", request.target);
            // `feed` queues; everything answered from one read is written together.
            while let Some(Ok(message)) = ws.recv().await {
                if ws.feed(&message).await.is_err() {
                    break;
                }
            }
            println!("closed: {:?}", ws.closed());
        })
        .bind("127.0.0.1:9001")
        .await?;
    println!("listening on ws://{}", server.local_addr()?);
    server.run().await
}
