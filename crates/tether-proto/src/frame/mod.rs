//! The frame codec (RFC 6455 §5.2): what a frame looks like on the wire, not what it means.
//!
//! - [`header`]: opcodes and the frame header, with its encoding.
//! - [`decoder`]: an incremental decoder that reports a header as soon as its bytes are in, then the
//!   payload in whatever pieces arrive, unmasked. It never waits for a whole frame, so a frame can be
//!   rejected (too big, wrong opcode) before its payload is read, and text can be validated while it
//!   streams in.
//! - [`encoder`]: writes frames into an output buffer.
//! - [`mask`]: the XOR masking of client frames, a word at a time.
//!
//! Which frames are allowed when (masking by role, reserved bits, fragmentation) is decided by
//! [`crate::connection`], not here.

pub mod decoder;
pub mod encoder;
pub mod header;
pub mod mask;

pub use decoder::{FrameDecoder, FrameEvent};
pub use encoder::{encode_frame, MAX_HEADER_LEN};
pub use header::{FrameHeader, OpCode};
