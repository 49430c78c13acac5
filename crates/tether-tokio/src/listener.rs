//! The listener API: the [`Listener`] trait, callbacks for opened, message, pong, closed and error.
//!
//! This is the tutorial's model (processOpened / processPacket / processClosed) made async. A
//! [`Listener`] is registered for a path; for each connection the runtime calls
//! [`Listener::opened`], then [`Listener::message`] for every message in order, then
//! [`Listener::closed`] exactly once. The [`Conn`] handle given to each callback (`conn.rs`) is
//! cheap to clone and can be kept and used from any task: sending through it queues the message
//! for the connection's own task, which writes it.

use std::future::Future;

use bytes::Bytes;
use tether_proto::Message;

// The handle and the broadcast message are defined in `conn.rs`; re-exported so that
// `tether_tokio::listener::{Conn, PreparedMessage}` keep working.
pub use crate::conn::{Conn, PreparedMessage};
use crate::error::{Closed, Error};

/// Callbacks for the connections on one route. Every method but [`Listener::message`] has a default
/// that does nothing.
pub trait Listener: Send + Sync + 'static {
    /// The handshake completed; `conn` may be used to send at once (a welcome message, say).
    fn opened(&self, conn: &Conn) -> impl Future<Output = ()> + Send {
        let _ = conn;
        async {}
    }

    /// A message arrived. Messages of one connection are delivered one at a time, in order.
    fn message(&self, conn: &Conn, message: Message) -> impl Future<Output = ()> + Send;

    /// A Pong arrived: usually the answer to a [`Conn::ping`] (whose payload it carries back) or
    /// to the server's keepalive ping. Pings from the peer are answered by the runtime itself.
    fn pong(&self, conn: &Conn, payload: Bytes) -> impl Future<Output = ()> + Send {
        let _ = (conn, payload);
        async {}
    }

    /// The connection ended: `closed` tells how, with the close code and whether the closing
    /// handshake completed. Called once per connection, also after an error.
    fn closed(&self, conn: &Conn, closed: &Closed) -> impl Future<Output = ()> + Send {
        let _ = (conn, closed);
        async {}
    }

    /// The connection failed: a protocol error by the peer (already answered with its close code) or
    /// a transport error. [`Listener::closed`] follows. A slow consumer is not an error here: the
    /// send that overflowed its queue returns [`Error::QueueFull`], and `closed` reports the 1008.
    fn error(&self, conn: &Conn, error: &Error) -> impl Future<Output = ()> + Send {
        let _ = (conn, error);
        async {}
    }
}
