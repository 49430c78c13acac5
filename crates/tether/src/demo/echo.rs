//! `/echo`: every message comes back with its type (text as text, binary as binary). It is the
//! endpoint the Autobahn suite runs against.
//!
//! It is a [`Listener`], so it gets the server's slow-consumer policy: a client that sends but does
//! not read makes its outbound queue grow past `max_queue_bytes` and is closed with 1008, while
//! everyone else keeps being served.

use tether_proto::Message;
use tether_tokio::{Conn, Listener};

/// Echoes every message.
#[derive(Debug, Default)]
pub struct Echo;

impl Listener for Echo {
    async fn message(&self, conn: &Conn, message: Message) {
        // Fails only when the connection is closing or over its queue limit (then being closed).
        let _ = conn.send(message);
    }
}
