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
//! ## Design overview
//!
//! ```text
//!                 ┌─────────────── tether-tokio ────────────────┐
//!                 │                                             │
//!  socket ─head─▶ │ server/: validate → route → Origin →        │
//!                 │ sub-protocol → 101, or a refusal            │
//!                 │ (one Response, rendered once)               │
//!                 │        │ socket + Connection + leftover     │
//!                 │        ▼                                    │   Listener callbacks
//!  socket ◀bytes▶ │ driver: one task per connection ────────────│──▶ opened, message,   app
//!                 │ (socket, one timer, mailbox)   ◀── mailbox ◀│─── Conn: send, ping,
//!                 │        │           ▲                        │    close (any task)
//!                 │ Registry: open Conns by id                  │
//!                 └────────┼───────────┼────────────────────────┘
//!        receive(&mut BytesMut)      Events, take_output() bytes
//!                          ▼           │
//!                 ┌─────────────────────────────────────────────┐
//!                 │ tether-proto: Connection (sans-IO)          │
//!                 └─────────────────────────────────────────────┘
//! ```
//!
//! What crosses each line:
//! - **socket → server**: the request head, read under the handshake timeout and the head limits;
//!   the core judges it (400, 426, 431), the server adds its own refusals ([`server::Refusal`]:
//!   403, 404, 408, 503). Every answer, the 101 included, is one core `Response` rendered once,
//!   as bytes on the direct path or as a hyper response after plain HTTP.
//! - **server → driver**: the socket, the negotiated [`tether_proto::Connection`] and the bytes
//!   read past the head; the route's [`Listener`] gets a [`Conn`], registered in the server's
//!   [`Registry`] while open.
//! - **driver ⇄ core**: bytes in through `Connection::receive`, events and bytes to write out.
//!   Timers (ping, idle, close timeout) and backpressure (`max_queue_bytes`, 1008 for slow
//!   consumers) are the driver's.
//! - **app → driver**: commands through a [`Conn`] handle, pushed to the connection's mailbox and
//!   applied by its task; they never wait on the socket.
//!
//! Memory per idle connection is a design constraint throughout: see
//! `docs/memory-per-connection.md` before adding a field, a buffer or a future to a connection.
//!
//! ## Modules
//! - [`server`]: [`Server`] (routes, Origin policy, limits, TLS, plain HTTP on the same port,
//!   graceful shutdown), [`ServerHandle`] and the [`Registry`] of open connections; one job per
//!   file under `server/`.
//! - [`listener`]: the [`Listener`] trait. `conn`: the [`Conn`] handle and what it knows of its
//!   connection. `mailbox`: the commands a handle queues for the connection's task. `driver`: that
//!   task. `deadline`: timer arithmetic that cannot overflow.
//! - [`websocket`]: the [`WebSocket`] type. `error`: [`Closed`] and [`Error`], the results of both
//!   APIs.
//! - [`client`]: [`ClientBuilder`] and [`connect`] for `ws://` and `wss://`, with the same two APIs,
//!   and [`client::WsUrl`], the one parse of a WebSocket URL.
//! - [`origin`]: [`OriginPolicy`]. [`tls`]: loading certificates. [`transport`]: TCP, TLS or upgraded
//!   streams behind one type.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod conn;
mod counts;
mod deadline;
mod driver;
mod error;
mod identity;
mod info;
pub mod listener;
mod mailbox;
pub mod origin;
pub mod server;
pub mod tls;
pub mod transport;
pub mod websocket;

pub use client::{connect, ClientBuilder, ClientError, ClientResponse};
pub use conn::{Conn, PreparedMessage};
pub use counts::ConnCounts;
pub use error::{Closed, Error};
pub use identity::Identity;
pub use listener::Listener;
pub use origin::OriginPolicy;
pub use server::{
    BoundServer, CountedConnection, Registry, RouteOptions, RouteStats, Server, ServerConfig, ServerHandle,
    ServerStats, StatsSnapshot,
};
pub use tether_proto::{CloseCode, CloseFrame, Message, Utf8Bytes};
pub use transport::Transport;
pub use websocket::{KeepAlive, WebSocket};
