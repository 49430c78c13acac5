//! # tether-proto: the WebSocket protocol, without I/O
//!
//! This crate is Tether's protocol core: RFC 6455 (The WebSocket Protocol) and RFC 7692
//! (permessage-deflate) as plain state machines. Nothing here touches a socket, a timer or a task:
//! bytes go in, events and bytes to send come out. The tokio runtime (`tether-tokio`) only moves bytes
//! between sockets and these types, so every rule of the protocol can be tested with a byte slice.
//!
//! ## Map of the crate
//! - [`handshake`]: the HTTP/1.1 opening handshake, server side ([`handshake::server`]) and client side
//!   ([`handshake::client`]), including sub-protocol and extension negotiation.
//! - [`frame`]: the frame codec: an incremental [`frame::FrameDecoder`] that reports a frame's header
//!   before its payload has arrived, the encoder, and fast unmasking ([`frame::mask`]).
//! - [`deflate`]: permessage-deflate parameters, negotiation and the (de)compressor with a bound on
//!   the inflated size.
//! - [`connection`]: the protocol state machine for one connection: message reassembly, UTF-8
//!   validation, control frames and the closing handshake. This is where a protocol error becomes a
//!   close code.
//! - [`close`]: close codes and close frame payloads.
//!
//! ## Using it
//! A server reads the request head with [`handshake::head::HeadReader`], checks it with
//! [`handshake::server::validate`], answers it with
//! [`handshake::server::accept`] (or a rejection response), then creates a [`Connection`] with
//! [`Role::Server`] and the negotiated [`deflate::DeflateParams`]. From then on it feeds received bytes
//! to [`Connection::receive`] until it returns `Ok(None)`, and writes whatever
//! [`Connection::take_output`] hands back. A broadcast is encoded once as a [`PreparedFrame`] and
//! handed to each connection's [`Connection::send_prepared`]: a server gets the shared bytes back to
//! write after its output, a client masks a copy.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod close;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use connection::{Config, Connection, Event, Message, PreparedFrame, PreparedOutput, Role, State};
pub use error::{ProtocolError, SendError};
pub use utf8::{Utf8Bytes, Utf8Validator};
