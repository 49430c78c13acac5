//! How a connection ended ([`Closed`]) and why an operation on it failed ([`Error`]).
//!
//! Both faces of a connection report these: the listener API ([`crate::Listener::closed`],
//! [`crate::Listener::error`], every [`crate::Conn`] send) and the lower-level
//! [`crate::WebSocket`]. They live here, apart from either, so the connection handle and the
//! listener trait need not import the `WebSocket` type just to name its results.

use std::fmt;

use tether_proto::{CloseCode, ProtocolError, SendError};

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close code: the peer's, ours when we failed the connection, 1005 for a Close frame
    /// without a code, or 1006 when the transport ended without a closing handshake.
    pub code: CloseCode,
    /// The reason the peer gave, if any.
    pub reason: String,
    /// Whether the closing handshake completed.
    pub clean: bool,
}

/// Why an operation on a connection (a [`crate::WebSocket`] or a [`crate::Conn`]) failed.
#[derive(Debug)]
pub enum Error {
    /// The peer broke the protocol; the connection was failed with the matching close code.
    Protocol(ProtocolError),
    /// The transport failed.
    Io(std::io::Error),
    /// The connection is closing or closed: no more messages may be sent.
    Closed,
    /// The connection's outbound queue is over its limit (a slow consumer); it is being closed.
    QueueFull,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Closed => f.write_str("connection closed"),
            Self::QueueFull => f.write_str("outbound queue full: slow consumer"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<SendError> for Error {
    fn from(_: SendError) -> Self {
        Self::Closed
    }
}
