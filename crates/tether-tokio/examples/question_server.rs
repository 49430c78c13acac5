//! The tutorial's question server on the listener API: a welcome first, then answers to 1, 2, 3.
//! Run: `cargo run -p tether-tokio --example question_server`, then connect to ws://127.0.0.1:9000/.
use tether_tokio::{Conn, Listener, Message, RouteOptions, Server, ServerConfig};

struct Questions;

impl Listener for Questions {
    async fn opened(&self, conn: &Conn) {
        let _ = conn.send_text(format!("welcome {}, you speak {:?}", conn.id(), conn.protocol()));
    }

    async fn message(&self, conn: &Conn, message: Message) {
        let answer = match &message {
            Message::Text(text) if text.as_str() == "1" => "tether".to_owned(),
            Message::Text(text) if text.as_str() == "2" => std::env::consts::OS.to_owned(),
            Message::Text(text) if text.as_str() == "3" => format!("{:?}", std::time::SystemTime::now()),
            Message::Text(text) => format!("unknown question {text:?}"),
            Message::Binary(data) => format!("received {} bytes", data.len()),
        };
        let _ = conn.send_text(answer);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let server = Server::new(ServerConfig::default())
        .route_with("/", RouteOptions::protocols(["json", "soap"]), Questions)
        .bind("127.0.0.1:9000")
        .await?;
    println!("listening on ws://{}", server.local_addr()?);
    server.run().await
}
