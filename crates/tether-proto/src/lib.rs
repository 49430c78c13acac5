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
//! ## Design overview
//!
//! Three layers, and what crosses each line:
//!
//! ```text
//!  socket ──bytes──▶ ┌──────────────┐  &mut BytesMut  ┌──────────────────┐ Event::{Message,Ping,
//!                    │   runtime    │ ──────────────▶ │  core: this crate│   Pong,Close} ──▶ ┌─────┐
//!                    │ (tether-tokio│  receive()      │  HeadReader,     │ ────────────────▶ │ app │
//!  socket ◀──bytes── │  tasks,      │ ◀────────────── │  validate/accept,│                   │     │
//!                    │  timers)     │  take_output()  │  Connection      │ ◀──────────────── │     │
//!                    └──────────────┘  BytesMut       └──────────────────┘  send/ping/close  └─────┘
//! ```
//!
//! - **Runtime → core**: the bytes read from the socket, as `&mut BytesMut` handed to
//!   [`Connection::receive`] (which consumes what it uses), and before that the request head to
//!   [`handshake::head::HeadReader`].
//! - **Core → app**: [`Event`]s — whole messages, pings (already answered), pongs, the peer's
//!   Close — returned one per `receive` call; a broken rule is a [`ProtocolError`] with its close
//!   code.
//! - **App → core**: commands — [`Connection::send`], [`Connection::send_prepared`],
//!   [`Connection::ping`], [`Connection::close`] — which only queue bytes.
//! - **Core → runtime**: [`Connection::take_output`], the bytes to write in order, and
//!   [`Connection::state`], which says when to close the socket. For the handshake, a
//!   [`handshake::response::Response`] to write as bytes (or hand to an HTTP library).
//!
//! The core never waits, never reads a clock and never owns a socket; the runtime never judges a
//! frame. The calling contract of each method is on [`connection`].
//!
//! ## Using it
//! A server reads the request head with [`handshake::head::HeadReader::read_request`], checks it
//! with [`handshake::server::validate`], answers it with [`handshake::server::accept`] (or a
//! rejection's [`handshake::server::Rejection::response`]), then creates a [`Connection`] with
//! [`Role::Server`] and the negotiated [`deflate::DeflateParams`]. From then on it feeds received
//! bytes to [`Connection::receive`] until it returns `Ok(None)`, and writes whatever
//! [`Connection::take_output`] hands back. A broadcast is encoded once as a [`PreparedFrame`] and
//! handed to each connection's [`Connection::send_prepared`]: a server gets the shared bytes back to
//! write after its output, a client masks a copy.
//!
//! Both ends in memory, no socket (the client's side of this crate plays the browser):
//!
//! ```
//! use bytes::BytesMut;
//! use tether_proto::handshake::client::{ClientHandshake, ClientRequest};
//! use tether_proto::handshake::head::HeadReader;
//! use tether_proto::handshake::server::{accept, validate, AcceptOptions};
//! use tether_proto::{Config, Connection, Event, Message, Role};
//!
//! // The client's upgrade request, as it would arrive on the server's socket.
//! let request = ClientRequest { host: "example.com".into(), target: "/chat".into(), ..ClientRequest::default() };
//! let (mut client_handshake, request_bytes) = ClientHandshake::new(&request);
//!
//! // Server: read the head, validate it, accept it; write the 101.
//! let (head, head_len) = HeadReader::default().read_request(&request_bytes)?.expect("a whole head");
//! assert_eq!(head_len, request_bytes.len());
//! let upgrade = validate(head)?;
//! let accepted = accept(&upgrade, &AcceptOptions::default());
//! let response_bytes = accepted.response.to_bytes();
//! let mut server = Connection::new(Role::Server, Config::default(), accepted.deflate);
//!
//! // Client: check the 101, then send a message.
//! let (answer, _) = client_handshake.receive(&response_bytes)?.expect("a whole head");
//! let mut client = Connection::new(Role::Client, Config::default(), answer.deflate);
//! client.send_text("hello")?;
//!
//! // Server: feed what arrived until it needs more bytes; answer through the output.
//! let mut input = BytesMut::from(&client.take_output()[..]);
//! while let Some(event) = server.receive(&mut input)? {
//!     if let Event::Message(Message::Text(text)) = event {
//!         assert_eq!(text.as_str(), "hello");
//!         server.send_text(&format!("echo: {}", text.as_str()))?;
//!     }
//! }
//! let mut input = server.take_output();
//! assert_eq!(client.receive(&mut input)?, Some(Event::Message(Message::Text("echo: hello".into()))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
