//! # tether-tokio: Tether's runtime
//!
//! A thin adapter between tokio sockets and the sans-IO protocol core in `tether-proto`. All protocol
//! decisions live in the core; this crate moves bytes, owns timers and tasks, and decides when to
//! write (it batches the frames produced while handling one read into a single write).
//!
//! - [`websocket`]: [`WebSocket`], one upgraded connection as an async `recv`/`send` API, with
//!   the closing handshake and TCP shutdown done right.
//! - [`server`]: accepting TCP connections, the opening handshake with its timeout and limits, and
//!   routing by path to handlers.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod server;
pub mod websocket;

pub use server::{Handler, Server, ServerConfig};
pub use tether_proto::{CloseCode, CloseFrame, Message, Utf8Bytes};
pub use websocket::{Closed, Error, WebSocket};
