//! Errors of the protocol core, as types.
//!
//! Every way a peer can break RFC 6455 or RFC 7692 is one [`ProtocolError`] variant, and
//! [`ProtocolError::close_code`] is the one place that decides which close code answers it.

use std::fmt;

use crate::close::{CloseCode, InvalidClosePayload};

/// A violation of the protocol by the peer, or a limit it exceeded. The connection fails with
/// [`ProtocolError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// RSV2 or RSV3 set, or RSV1 set without a negotiated extension, on a control frame or on a
    /// continuation frame.
    ReservedBitsSet,
    /// An opcode RFC 6455 does not define (3-7, 11-15).
    UnknownOpcode(u8),
    /// A client sent a frame without a mask.
    UnmaskedFrame,
    /// A server sent a masked frame.
    MaskedFrame,
    /// A payload length that could have been encoded in fewer bytes.
    NonMinimalLength,
    /// A 64-bit payload length with its most significant bit set.
    LengthOutOfRange,
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLarge(u64),
    /// A control frame without the FIN bit.
    FragmentedControlFrame,
    /// A continuation frame with no message in progress.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message was still in progress.
    ExpectedContinuation,
    /// A Close frame with a one-byte payload.
    InvalidCloseFrameLength,
    /// A Close frame with a status code that may not appear on the wire.
    InvalidCloseCode(u16),
    /// A text message or close reason that is not valid UTF-8.
    InvalidUtf8,
    /// A compressed message that does not inflate.
    InvalidCompressedData,
    /// A frame whose payload exceeds the configured maximum frame size.
    FrameTooLarge {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// A message (after decompression) that exceeds the configured maximum message size.
    MessageTooLarge {
        /// The configured limit, in bytes.
        limit: usize,
    },
}

impl ProtocolError {
    /// The close code that answers this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl From<InvalidClosePayload> for ProtocolError {
    fn from(error: InvalidClosePayload) -> Self {
        match error {
            InvalidClosePayload::Length => Self::InvalidCloseFrameLength,
            InvalidClosePayload::Code(code) => Self::InvalidCloseCode(code),
            InvalidClosePayload::Utf8 => Self::InvalidUtf8,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedBitsSet => f.write_str("reserved bits set without a negotiated extension"),
            Self::UnknownOpcode(op) => write!(f, "unknown opcode {op:#x}"),
            Self::UnmaskedFrame => f.write_str("client frame is not masked"),
            Self::MaskedFrame => f.write_str("server frame is masked"),
            Self::NonMinimalLength => f.write_str("payload length not minimally encoded"),
            Self::LengthOutOfRange => f.write_str("64-bit payload length has its top bit set"),
            Self::ControlFrameTooLarge(len) => write!(f, "control frame of {len} bytes (max 125)"),
            Self::FragmentedControlFrame => f.write_str("fragmented control frame"),
            Self::UnexpectedContinuation => f.write_str("continuation frame without a message in progress"),
            Self::ExpectedContinuation => f.write_str("new message before the previous one finished"),
            Self::InvalidCloseFrameLength => f.write_str("close frame with a one-byte payload"),
            Self::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            Self::InvalidUtf8 => f.write_str("invalid UTF-8 in a text message or close reason"),
            Self::InvalidCompressedData => f.write_str("compressed message does not inflate"),
            Self::FrameTooLarge { limit } => write!(f, "frame exceeds the limit of {limit} bytes"),
            Self::MessageTooLarge { limit } => write!(f, "message exceeds the limit of {limit} bytes"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Why a message or control frame could not be queued for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// A Close frame was already sent (or the connection failed): RFC 6455 allows no data after it.
    Closed,
    /// A control frame payload over 125 bytes.
    ControlFrameTooLarge,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("the connection is closing or closed"),
            Self::ControlFrameTooLarge => f.write_str("control frame payload over 125 bytes"),
        }
    }
}

impl std::error::Error for SendError {}
