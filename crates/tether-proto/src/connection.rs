//! The protocol state machine of one open WebSocket connection.
//!
//! [`Connection`] sits between the frame codec and the application. It enforces what frames may
//! appear when (masking by role, reserved bits, fragmentation, control frame rules), reassembles and
//! inflates messages within their size limits, validates text as it streams in, answers pings, and
//! runs the closing handshake. It does no I/O: the caller feeds it received bytes and writes out what
//! it produces.
//!
//! When the peer breaks the protocol, [`Connection::receive`] returns the [`ProtocolError`] and has
//! already queued a Close frame with the matching code; the caller writes the output and closes the
//! transport. After a Close frame has been received nothing more is read.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use crate::close::{encode_close_payload, parse_close_payload, CloseCode, CloseFrame};
use crate::deflate::context::{self, ReceiveContext, SendContext};
use crate::deflate::{CompressorSettings, DeflateConfig, DeflateParams};
use crate::error::{ProtocolError, SendError};
use crate::frame::{encode_frame, FrameDecoder, FrameEvent, FrameHeader, OpCode};
use crate::utf8::{Utf8Bytes, Utf8Validator};

/// The output buffer's first allocation after it was taken: a batch of small frames fits.
const OUTPUT_CHUNK: usize = 512;
/// The longest frame header: 2 bytes, an 8-byte length and a 4-byte mask key.
const MAX_HEADER_LEN: usize = 14;

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

/// A data message encoded once as an unmasked final frame, to be sent on many connections without
/// encoding it again: a clone shares the bytes (reference counts, no copy).
///
/// It is only made by [`PreparedFrame::text`] and [`PreparedFrame::binary`], so it always holds
/// exactly one well-formed frame, and it only reaches the wire through
/// [`Connection::send_prepared`], which applies the same rules as [`Connection::send`]: nothing
/// after our Close frame, and every client frame masked.
///
/// Connections with permessage-deflate get it compressed, and compressed once for all of them: the
/// first such connection compresses it, with the server's own settings, as a stream of its own
/// (referring to no earlier message), which is a valid message on every connection whose agreed
/// window is at least as large, with or without context takeover (each then adds the message to
/// its window, as the peer does).
#[derive(Debug, Clone)]
pub struct PreparedFrame {
    frame: Bytes,
    compressed: Arc<OnceLock<CompressedFrame>>,
}

/// A prepared frame's compressed form.
#[derive(Debug)]
struct CompressedFrame {
    /// The window it was compressed with: it suits connections whose window is at least this.
    window_bits: u8,
    frame: Bytes,
}

impl PartialEq for PreparedFrame {
    fn eq(&self, other: &Self) -> bool {
        self.frame == other.frame
    }
}

impl Eq for PreparedFrame {}

impl PreparedFrame {
    /// A text message.
    pub fn text(text: &str) -> Self {
        Self::encode(OpCode::Text, text.as_bytes())
    }

    /// A binary message.
    pub fn binary(data: &[u8]) -> Self {
        Self::encode(OpCode::Binary, data)
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> Self {
        let mut frame = BytesMut::new();
        encode_frame(&mut frame, opcode, true, false, payload, None);
        Self { frame: frame.freeze(), compressed: Arc::default() }
    }

    /// The compressed frame, made by the first caller with `settings` (the server's own, so that
    /// a peer that asked for a small window does not make everyone's copy worse); `None` when it
    /// was made with a larger window than `own` (this connection's agreed settings) allows.
    fn compressed(&self, settings: CompressorSettings, own: CompressorSettings) -> Option<Bytes> {
        let compressed = self.compressed.get_or_init(|| {
            let (opcode, payload) = self.opcode_and_payload();
            let mut scratch = context::take_scratch();
            context::compress_standalone(settings, payload, &mut scratch);
            let mut frame = BytesMut::with_capacity(scratch.len() + MAX_HEADER_LEN);
            encode_frame(&mut frame, opcode, true, true, &scratch, None);
            context::return_scratch(scratch);
            CompressedFrame { window_bits: settings.window_bits, frame: frame.freeze() }
        });
        (compressed.window_bits <= own.window_bits).then(|| compressed.frame.clone())
    }

    /// The encoded frame's size in bytes, as a server sends it (a client's adds a 4-byte mask key).
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Whether the frame is empty (never: a frame has at least a header).
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// The frame's bytes as a server sends them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.frame
    }

    /// The message's opcode and its payload, read back with the frame codec's own header parser.
    fn opcode_and_payload(&self) -> (OpCode, &[u8]) {
        let (header, header_len) = FrameHeader::parse(&self.frame)
            .ok()
            .flatten()
            .expect("a prepared frame holds one whole frame its encoder wrote");
        (header.opcode, &self.frame[header_len..])
    }
}

/// What [`Connection::send_prepared`] did with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a shared frame must be written after the output"]
pub enum PreparedOutput {
    /// We are the server: write everything [`Connection::take_output`] holds now, then these
    /// bytes as they are (shared with every other connection the frame goes to, not copied).
    Shared(Bytes),
    /// The frame was encoded into the output (a copy), as [`Connection::send`] would: a client's
    /// frames each need a mask key of their own, and a server compresses a frame again for a
    /// connection whose agreed window is smaller than the one the shared copy was made with.
    /// Write the output as usual.
    Queued,
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
    /// Boxed: most connections never negotiate compression, and an idle connection should be small.
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

    /// Processes received bytes, consuming what it uses, and returns the next event.
    ///
    /// Call it again until it returns `Ok(None)` (more bytes needed). On `Err` the connection has
    /// failed: a Close frame with [`ProtocolError::close_code`] is queued; write it and close.
    pub fn receive(&mut self, input: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        if self.received_close || self.failed {
            // RFC 6455 §5.5.1: nothing the peer sends after its Close frame is read.
            input.clear();
            return Ok(None);
        }
        loop {
            let event = match self.decoder.decode(input) {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(None),
                Err(error) => return Err(self.fail(error)),
            };
            let step = match event {
                FrameEvent::Header(header) => self.on_header(&header).map(|()| None),
                FrameEvent::Payload { data, last } => self.on_payload(data, last),
            };
            match step {
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) => {}
                Err(error) => return Err(self.fail(error)),
            }
        }
    }

    fn fail(&mut self, error: ProtocolError) -> ProtocolError {
        if !self.sent_close {
            self.write_close(error.close_code(), "");
        }
        self.failed = true;
        self.incoming = None;
        error
    }

    fn on_header(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.rsv2 || header.rsv3 {
            return Err(ProtocolError::ReservedBitsSet);
        }
        if header.opcode.is_control() {
            if header.rsv1 {
                return Err(ProtocolError::ReservedBitsSet);
            }
            if !header.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if header.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLarge(header.payload_len));
            }
            self.control.clear();
            self.frame = CurrentFrame::Control(header.opcode);
            return Ok(());
        }
        let compressed = header.rsv1;
        if compressed && (self.deflate.is_none() || header.opcode == OpCode::Continuation) {
            return Err(ProtocolError::ReservedBitsSet);
        }
        let max_message = self.config.max_message_size;
        if header.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge { limit: self.config.max_frame_size });
        }
        match header.opcode {
            OpCode::Continuation => {
                let incoming = self.incoming.as_ref().ok_or(ProtocolError::UnexpectedContinuation)?;
                if !incoming.compressed && incoming.plain.len() as u64 + header.payload_len > max_message as u64 {
                    return Err(ProtocolError::MessageTooLarge { limit: max_message });
                }
            }
            _ => {
                if self.incoming.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                if !compressed && header.payload_len > max_message as u64 {
                    return Err(ProtocolError::MessageTooLarge { limit: max_message });
                }
                self.incoming = Some(Incoming {
                    text: header.opcode == OpCode::Text,
                    compressed,
                    plain: BytesMut::new(),
                    inflated: Vec::new(),
                    utf8: Utf8Validator::default(),
                });
            }
        }
        self.frame = CurrentFrame::Data { fin: header.fin };
        Ok(())
    }

    fn on_payload(&mut self, data: BytesMut, last: bool) -> Result<Option<Event>, ProtocolError> {
        match self.frame {
            CurrentFrame::Control(opcode) => {
                self.control.extend_from_slice(&data);
                if last {
                    self.on_control(opcode)
                } else {
                    Ok(None)
                }
            }
            CurrentFrame::Data { fin } => {
                self.on_data(data, last)?;
                if last && fin {
                    self.finish_message().map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }

    fn on_data(&mut self, data: BytesMut, last: bool) -> Result<(), ProtocolError> {
        let limit = self.config.max_message_size;
        let incoming = self.incoming.as_mut().expect("a data frame belongs to a message");
        if incoming.compressed {
            let deflate = self.deflate.as_mut().expect("compressed frames need deflate");
            let start = incoming.inflated.len();
            deflate.receive.decompress(&data, &mut incoming.inflated, limit)?;
            if incoming.text {
                incoming.utf8.feed(&incoming.inflated[start..]).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        } else {
            if incoming.text {
                incoming.utf8.feed(&data).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            // Zero-copy when the payload arrives in one piece: the first piece becomes the buffer.
            // Otherwise the rest of the frame is known (and already checked against the limits):
            // make room for all of it at once rather than growing by doubling.
            if incoming.plain.is_empty() && (last || self.decoder.remaining_payload() == 0) {
                incoming.plain = data;
            } else {
                if incoming.plain.is_empty() {
                    let rest = usize::try_from(self.decoder.remaining_payload()).unwrap_or(usize::MAX);
                    incoming.plain.reserve(data.len().saturating_add(rest).min(self.config.max_message_size));
                }
                incoming.plain.unsplit(data);
            }
        }
        Ok(())
    }

    fn finish_message(&mut self) -> Result<Event, ProtocolError> {
        let limit = self.config.max_message_size;
        let mut incoming = self.incoming.take().expect("a final frame ends a message");
        let payload = if incoming.compressed {
            let deflate = self.deflate.as_mut().expect("compressed frames need deflate");
            let start = incoming.inflated.len();
            deflate.receive.finish_message(&mut incoming.inflated, limit)?;
            if incoming.text {
                incoming.utf8.feed(&incoming.inflated[start..]).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            Bytes::from(incoming.inflated)
        } else {
            incoming.plain.freeze()
        };
        let message = if incoming.text {
            incoming.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            Message::Text(Utf8Bytes::from_validated(payload))
        } else {
            Message::Binary(payload)
        };
        Ok(Event::Message(message))
    }

    fn on_control(&mut self, opcode: OpCode) -> Result<Option<Event>, ProtocolError> {
        let payload = Bytes::copy_from_slice(&self.control);
        match opcode {
            OpCode::Ping => {
                if !self.sent_close {
                    self.write_frame(OpCode::Pong, false, &payload);
                }
                Ok(Some(Event::Ping(payload)))
            }
            OpCode::Pong => Ok(Some(Event::Pong(payload))),
            OpCode::Close => {
                let frame = parse_close_payload(&payload)?;
                self.received_close = true;
                self.incoming = None;
                if !self.sent_close {
                    // Echo the status code (RFC 6455 §5.5.1); an empty Close is answered empty.
                    match &frame {
                        Some(frame) => self.write_close(frame.code, ""),
                        None => {
                            self.write_frame(OpCode::Close, false, &[]);
                            self.sent_close = true;
                        }
                    }
                }
                Ok(Some(Event::Close(frame)))
            }
            _ => unreachable!("only control opcodes reach on_control"),
        }
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_data(OpCode::Text, text.as_bytes())
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_data(OpCode::Binary, data)
    }

    /// Queues a message.
    pub fn send(&mut self, message: &Message) -> Result<(), SendError> {
        match message {
            Message::Text(text) => self.send_text(text),
            Message::Binary(data) => self.send_binary(data),
        }
    }

    fn send_data(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if self.sent_close {
            return Err(SendError::Closed);
        }
        if let Some(send) = self.compressing(payload) {
            let mut scratch = context::take_scratch();
            send.compress(payload, &mut scratch);
            self.write_frame(opcode, true, &scratch);
            context::return_scratch(scratch);
            return Ok(());
        }
        self.write_frame(opcode, false, payload);
        Ok(())
    }

    /// Sends a frame prepared once for many connections, under the rules of [`Connection::send`]:
    /// refused once our Close frame is queued. A server gets the shared bytes back to write after
    /// its current output, without a copy; a client masks them into its output.
    pub fn send_prepared(&mut self, frame: PreparedFrame) -> Result<PreparedOutput, SendError> {
        if self.sent_close {
            return Err(SendError::Closed);
        }
        let (opcode, payload) = frame.opcode_and_payload();
        let shared_settings = self.config.deflate.shared_settings();
        match (self.role, self.compressing(payload)) {
            (Role::Server, None) => Ok(PreparedOutput::Shared(frame.frame)),
            (Role::Server, Some(send)) => {
                match frame.compressed(shared_settings, send.settings()) {
                    Some(shared) => {
                        send.sent_standalone(payload);
                        Ok(PreparedOutput::Shared(shared))
                    }
                    None => {
                        // The shared copy uses a larger window than this peer agreed to: compress it
                        // again for this one.
                        self.send_data(opcode, payload)?;
                        Ok(PreparedOutput::Queued)
                    }
                }
            }
            (Role::Client, _) => {
                self.send_data(opcode, payload)?;
                Ok(PreparedOutput::Queued)
            }
        }
    }

    /// Our compressing side, if `payload` is to go compressed: permessage-deflate is in use, we
    /// can compress for this peer, and the payload is not shorter than `min_message_size`.
    fn compressing(&mut self, payload: &[u8]) -> Option<&mut SendContext> {
        let min_size = self.config.deflate.min_message_size;
        self.deflate.as_mut()?.send.as_mut().filter(|_| payload.len() >= min_size)
    }

    /// Queues a ping.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited pong (a heartbeat that expects no answer).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if self.sent_close {
            return Err(SendError::Closed);
        }
        if payload.len() > 125 {
            return Err(SendError::ControlFrameTooLarge);
        }
        self.write_frame(opcode, false, payload);
        Ok(())
    }

    /// Starts the closing handshake. The reason is cut to fit a control frame.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if self.sent_close {
            return Err(SendError::Closed);
        }
        self.write_close(code, reason);
        Ok(())
    }

    fn write_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = Vec::with_capacity(2 + reason.len());
        encode_close_payload(code, reason, &mut payload);
        self.write_frame(OpCode::Close, false, &payload);
        self.sent_close = true;
    }

    fn write_frame(&mut self, opcode: OpCode, rsv1: bool, payload: &[u8]) {
        let mask = self.masks.as_mut().map(|masks| masks.next_key());
        if self.out.capacity() == 0 {
            // The first frame since the output was taken: room for a batch of small frames at once,
            // rather than growing by doubling from the size of one (five reallocations for 16).
            self.out.reserve(OUTPUT_CHUNK.max(payload.len() + MAX_HEADER_LEN));
        }
        encode_frame(&mut self.out, opcode, true, rsv1, payload, mask);
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
