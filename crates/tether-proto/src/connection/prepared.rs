//! Frames encoded once for many connections (a broadcast): [`PreparedFrame`], and what
//! [`super::Connection::send_prepared`] says to do with one ([`PreparedOutput`]).

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use crate::deflate::{context, CompressorSettings};
use crate::frame::{encode_frame, FrameHeader, OpCode};

/// A data message encoded once as an unmasked final frame, to be sent on many connections without
/// encoding it again: a clone shares the bytes (reference counts, no copy).
///
/// It is only made by [`PreparedFrame::text`] and [`PreparedFrame::binary`], so it always holds
/// exactly one well-formed frame, and it only reaches the wire through
/// [`Connection::send_prepared`](crate::Connection::send_prepared), which applies the same rules as [`Connection::send`](crate::Connection::send): nothing
/// after our Close frame, and every client frame masked.
///
/// Connections with permessage-deflate get it compressed, and compressed once for all of them: the
/// first such connection compresses it, with the server's own settings, as a stream of its own
/// (referring to no earlier message), which is a valid message on every connection whose agreed
/// window is at least as large, with or without context takeover (each then adds the message to
/// its window, as the peer does).
#[derive(Debug, Clone)]
pub struct PreparedFrame {
    pub(super) frame: Bytes,
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
    pub(super) fn compressed(&self, settings: CompressorSettings, own: CompressorSettings) -> Option<Bytes> {
        let compressed = self.compressed.get_or_init(|| {
            let (opcode, payload) = self.opcode_and_payload();
            let mut scratch = context::take_scratch();
            context::compress_standalone(settings, payload, &mut scratch);
            let mut frame = BytesMut::new(); // encode_frame reserves header and payload at once
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
    pub(super) fn opcode_and_payload(&self) -> (OpCode, &[u8]) {
        let (header, header_len) = FrameHeader::parse(&self.frame)
            .ok()
            .flatten()
            .expect("a prepared frame holds one whole frame its encoder wrote");
        (header.opcode, &self.frame[header_len..])
    }
}

/// What [`Connection::send_prepared`](crate::Connection::send_prepared) did with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a shared frame must be written after the output"]
pub enum PreparedOutput {
    /// We are the server: write everything [`Connection::take_output`](crate::Connection::take_output) holds now, then these
    /// bytes as they are (shared with every other connection the frame goes to, not copied).
    Shared(Bytes),
    /// The frame was encoded into the output (a copy), as [`Connection::send`](crate::Connection::send) would: a client's
    /// frames each need a mask key of their own, and a server compresses a frame again for a
    /// connection whose agreed window is smaller than the one the shared copy was made with.
    /// Write the output as usual.
    Queued,
}
