//! # tether-tokio: Tether's runtime
//!
//! A thin adapter between tokio sockets and the sans-IO protocol core in `tether-proto`. All protocol
//! decisions live in the core; this crate moves bytes, owns timers and tasks, and applies
//! backpressure.
//!
//! Two ways to handle connections:
//! - the listener API ([`Listener`], [`Conn`]): callbacks for opened, message, closed and error,
//!   with a handle that can send from any task (the tutorial's processOpened / processPacket /
//!   processClosed);
//! - the lower-level [`WebSocket`]: own the connection and call `recv` / `feed` / `send` / `close`.
//!
//! Modules:
//! - [`server`]: [`Server`] (routes, Origin policy, limits, TLS, plain HTTP on the same port,
//!   graceful shutdown) and [`ServerHandle`] (connections by id).
//! - [`listener`]: the [`Listener`] trait and the [`Conn`] handle; `driver` runs each listener
//!   connection's task.
//! - [`websocket`]: the [`WebSocket`] type.
//! - [`client`]: [`ClientBuilder`] and [`connect`] for `ws://` and `wss://`, with the same two APIs.
//! - [`origin`]: [`OriginPolicy`]. [`tls`]: loading certificates. [`transport`]: TCP, TLS or upgraded
//!   streams behind one type.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod conn;
mod deadline;
mod driver;
mod error;
pub mod listener;
mod mailbox;
pub mod origin;
pub mod server;
pub mod tls;
pub mod transport;
pub mod websocket;

pub use client::{connect, ClientBuilder, ClientError, ClientResponse};
pub use conn::{Conn, PreparedMessage};
pub use error::{Closed, Error};
pub use listener::Listener;
pub use origin::OriginPolicy;
pub use server::{BoundServer, CountedConnection, Registry, RouteOptions, Server, ServerConfig, ServerHandle};
pub use tether_proto::{CloseCode, CloseFrame, Message, Utf8Bytes};
pub use transport::Transport;
pub use websocket::{KeepAlive, WebSocket};
