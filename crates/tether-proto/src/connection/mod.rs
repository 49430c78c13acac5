//! The protocol state machine of one open WebSocket connection.
//!
//! [`Connection`] sits between the frame codec and the application. It enforces what frames may
//! appear when (masking by role, reserved bits, fragmentation, control frame rules), reassembles and
//! inflates messages within their size limits, validates text as it streams in, answers pings, and
//! runs the closing handshake. It does no I/O: the caller feeds it received bytes and writes out what
//! it produces.
//!
//! When the peer breaks the protocol, [`Connection::receive`] returns the [`ProtocolError`](crate::ProtocolError) and has
//! already queued a Close frame with the matching code; the caller writes the output and closes the
//! transport. After a Close frame has been received nothing more is read.
//!
//! ## Calling contract
//!
//! Inputs, commands and outputs, and what to call after each:
//! - **Input**: [`Connection::receive`] with the bytes read from the transport. Call it again
//!   until it returns `Ok(None)` (it needs more bytes), handling each [`Event`]; after any call,
//!   write out [`Connection::take_output`] (a ping's pong, a Close echo or a failure's Close may
//!   be queued). On `Err`, write the output and close the transport.
//! - **Commands** from the application: [`Connection::send`] (and `send_text`, `send_binary`),
//!   [`Connection::send_prepared`] (then write the output, then any shared bytes it returned),
//!   [`Connection::ping`], [`Connection::pong`], [`Connection::close`]. Each only queues bytes:
//!   write [`Connection::take_output`] afterwards.
//! - **Outputs**: [`Connection::take_output`] (all of it, in order), [`Connection::state`] (once
//!   it is [`State::Closed`], write the output and close the transport) and
//!   [`Connection::read_hint`] (how much to read next).
//!
//! The code follows the same seams: `receive` holds the inbound path (frame rules, reassembly,
//! control frames), `send` the outbound one (messages, control frames, the closing handshake's
//! first Close), `prepared` the frames encoded once for many connections; this file the types and
//! the state they share.

mod prepared;
mod receive;
mod send;

use bytes::{Bytes, BytesMut};

use crate::close::CloseFrame;
use crate::deflate::context::{ReceiveContext, SendContext};
use crate::deflate::{CompressorSettings, DeflateConfig, DeflateParams};
use crate::frame::{FrameDecoder, OpCode};
use crate::utf8::{Utf8Bytes, Utf8Validator};

pub use self::prepared::{PreparedFrame, PreparedOutput};

/// Which end of the connection we are. It decides masking: clients mask, servers must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We accepted the connection.
    Server,
    /// We opened the connection.
    Client,
}

/// Limits and settings of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The largest frame payload accepted, in bytes. Default 64 MiB. A larger frame is refused as
    /// soon as its header arrives, with close code 1009.
    pub max_frame_size: usize,
    /// The largest message accepted, in bytes after decompression. Default 64 MiB. A larger message
    /// fails with close code 1009, before more than this much memory is spent on it.
    pub max_message_size: usize,
    /// How we compress when permessage-deflate is negotiated.
    pub deflate: DeflateConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self { max_frame_size: 64 << 20, max_message_size: 64 << 20, deflate: DeflateConfig::default() }
    }
}

/// A complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message: valid UTF-8.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }
}
/// Something the peer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole message arrived.
    Message(Message),
    /// A ping arrived; the pong is already queued.
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
    /// The peer's Close frame arrived (`None`: no status code). If we had not sent a Close yet, the
    /// echo is queued. Either way the closing handshake is complete once the output is written.
    Close(Option<CloseFrame>),
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a Close frame and wait for the peer's.
    Closing,
    /// Both Close frames are exchanged, or the connection failed. Write the output, then close the
    /// transport.
    Closed,
}

/// The frame whose payload is being received.
#[derive(Debug, Clone, Copy)]
enum CurrentFrame {
    Control(OpCode),
    Data { fin: bool },
}

/// A message being reassembled.
#[derive(Debug)]
struct Incoming {
    text: bool,
    compressed: bool,
    /// Received payload so far (wire bytes, or inflated bytes when compressed).
    plain: BytesMut,
    inflated: Vec<u8>,
    utf8: Utf8Validator,
}

/// permessage-deflate state: what the connection must remember between messages, at most 1 KiB of
/// what it sent and one window of what it received (zlib's own state is lent per message by
/// per-thread pools; see [`crate::deflate`]).
#[derive(Debug)]
struct DeflateState {
    /// `None` when the peer asked for a window zlib cannot make (8 bits), in which case we send
    /// everything uncompressed, as RFC 7692 allows.
    send: Option<SendContext>,
    receive: ReceiveContext,
}

/// A source of masking keys for client frames: random bytes fetched from the OS in batches.
#[derive(Debug)]
struct MaskSource {
    pool: [u8; 256],
    used: usize,
}

impl MaskSource {
    fn new() -> Self {
        Self { pool: [0; 256], used: 256 }
    }

    fn next_key(&mut self) -> [u8; 4] {
        if self.used == self.pool.len() {
            getrandom::fill(&mut self.pool).expect("the operating system's random source works");
            self.used = 0;
        }
        let key = [self.pool[self.used], self.pool[self.used + 1], self.pool[self.used + 2], self.pool[self.used + 3]];
        self.used += 4;
        key
    }
}

/// One WebSocket connection's protocol state. See the [module docs](self).
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    decoder: FrameDecoder,
    frame: CurrentFrame,
    control: Vec<u8>,
    incoming: Option<Incoming>,
    /// Boxed: most connections never negotiate compression (`docs/memory-per-connection.md`, rule 4).
    deflate: Option<Box<DeflateState>>,
    sent_close: bool,
    received_close: bool,
    failed: bool,
    out: BytesMut,
    /// Boxed for the same reason: only clients mask.
    masks: Option<Box<MaskSource>>,
}

impl Connection {
    /// A connection after a successful handshake, with the negotiated compression if any.
    pub fn new(role: Role, config: Config, deflate: Option<DeflateParams>) -> Self {
        let deflate = deflate.map(|params| {
            let (own_bits, own_reset, peer_bits, peer_reset) = match role {
                Role::Server => (
                    params.server_max_window_bits,
                    params.server_no_context_takeover,
                    params.client_max_window_bits,
                    params.client_no_context_takeover,
                ),
                Role::Client => (
                    params.client_max_window_bits,
                    params.client_no_context_takeover,
                    params.server_max_window_bits,
                    params.server_no_context_takeover,
                ),
            };
            let own_bits = own_bits.min(config.deflate.max_window_bits);
            let settings = CompressorSettings::new(config.deflate.level, own_bits, config.deflate.mem_level);
            let own_takeover = !(own_reset || config.deflate.no_context_takeover);
            Box::new(DeflateState {
                send: (own_bits >= 9).then(|| SendContext::new(settings, own_takeover)),
                receive: ReceiveContext::new(peer_bits, !peer_reset),
            })
        });
        Self {
            role,
            config,
            decoder: FrameDecoder::new(),
            frame: CurrentFrame::Data { fin: true },
            control: Vec::new(),
            incoming: None,
            deflate,
            sent_close: false,
            received_close: false,
            failed: false,
            out: BytesMut::new(),
            masks: (role == Role::Client).then(|| Box::new(MaskSource::new())),
        }
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether permessage-deflate is in use.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Heap bytes the connection keeps for permessage-deflate between messages: what context
    /// takeover needs of both directions (zlib's state is lent per message, not kept).
    pub fn compression_memory(&self) -> usize {
        self.deflate.as_ref().map_or(0, |deflate| {
            std::mem::size_of::<DeflateState>()
                + deflate.send.as_ref().map_or(0, SendContext::heap_size)
                + deflate.receive.heap_size()
        })
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> State {
        if self.failed || (self.sent_close && self.received_close) {
            State::Closed
        } else if self.sent_close {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Whether there are bytes to write.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// How many more bytes the current frame is known to need: a reader can ask the socket for
    /// that much at once (a large message then arrives in few reads).
    pub fn read_hint(&self) -> usize {
        usize::try_from(self.decoder.remaining_payload()).unwrap_or(usize::MAX)
    }

    /// How many bytes are queued for writing.
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    /// Takes the bytes to write. The caller must write all of them, in order.
    ///
    /// The buffer itself is handed over (not split off), so a connection that has written
    /// everything holds no output buffer at all.
    pub fn take_output(&mut self) -> BytesMut {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests;
