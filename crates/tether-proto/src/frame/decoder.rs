//! The incremental frame decoder.

use bytes::{Buf, BytesMut};

use super::header::FrameHeader;
use super::mask::apply_mask;
use crate::error::ProtocolError;

/// What the decoder found next in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent {
    /// A frame header. One or more [`FrameEvent::Payload`] events follow, the last with `last: true`,
    /// even when the payload is empty.
    Header(FrameHeader),
    /// The next piece of the current frame's payload, already unmasked.
    Payload {
        /// The bytes, split off the input without copying.
        data: BytesMut,
        /// Whether this piece ends the frame's payload.
        last: bool,
    },
}

/// Decodes frames from a byte stream, one event at a time.
///
/// The decoder never buffers: headers are parsed in place and payload pieces are split off the
/// caller's buffer. Whatever it leaves in the buffer is an incomplete header, to be completed by the
/// next read.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    state: DecodeState,
}

#[derive(Debug, Default)]
enum DecodeState {
    #[default]
    Header,
    Payload {
        remaining: u64,
        mask: Option<[u8; 4]>,
        /// How far into the payload we are, for the mask's phase.
        offset: usize,
    },
}

impl FrameDecoder {
    /// A decoder waiting for a frame header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the decoder is between frames.
    pub fn is_between_frames(&self) -> bool {
        matches!(self.state, DecodeState::Header)
    }

    /// Payload bytes of the current frame still to come (0 between frames): a hint for how much a
    /// reader can usefully ask the socket for.
    pub fn remaining_payload(&self) -> u64 {
        match self.state {
            DecodeState::Header => 0,
            DecodeState::Payload { remaining, .. } => remaining,
        }
    }

    /// Decodes the next event from `src`, consuming the bytes it uses.
    ///
    /// Returns `Ok(None)` when `src` holds too little for the next event.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<FrameEvent>, ProtocolError> {
        match &mut self.state {
            DecodeState::Header => {
                let Some((header, header_len)) = FrameHeader::parse(src)? else {
                    return Ok(None);
                };
                src.advance(header_len);
                self.state = DecodeState::Payload { remaining: header.payload_len, mask: header.mask, offset: 0 };
                Ok(Some(FrameEvent::Header(header)))
            }
            DecodeState::Payload { remaining, mask, offset } => {
                if src.is_empty() && *remaining > 0 {
                    return Ok(None);
                }
                let take = usize::try_from(*remaining).unwrap_or(usize::MAX).min(src.len());
                let mut data = src.split_to(take);
                if let Some(key) = *mask {
                    apply_mask(&mut data, key, *offset);
                }
                *remaining -= take as u64;
                *offset += take;
                let last = *remaining == 0;
                if last {
                    self.state = DecodeState::Header;
                }
                Ok(Some(FrameEvent::Payload { data, last }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_frame, OpCode};

    #[test]
    fn reports_header_before_payload_arrives() {
        let mut decoder = FrameDecoder::new();
        let mut src = BytesMut::from(&[0x82, 0x7E, 0x01, 0x00][..]);
        let Some(FrameEvent::Header(header)) = decoder.decode(&mut src).unwrap() else { panic!() };
        assert_eq!(header.payload_len, 256);
        assert_eq!(decoder.decode(&mut src).unwrap(), None);
    }

    #[test]
    fn unmasks_payload_delivered_byte_by_byte() {
        let mut wire = BytesMut::new();
        encode_frame(&mut wire, OpCode::Text, true, false, b"Hello, world", Some([1, 2, 3, 4]));
        let mut decoder = FrameDecoder::new();
        let mut src = BytesMut::new();
        let mut payload = Vec::new();
        let mut done = false;
        for byte in wire.iter() {
            src.extend_from_slice(&[*byte]);
            while let Some(event) = decoder.decode(&mut src).unwrap() {
                if let FrameEvent::Payload { data, last } = event {
                    payload.extend_from_slice(&data);
                    done = last;
                }
            }
        }
        assert!(done);
        assert_eq!(payload, b"Hello, world");
    }

    #[test]
    fn empty_payload_still_ends_the_frame() {
        let mut decoder = FrameDecoder::new();
        let mut src = BytesMut::from(&[0x89, 0x00][..]);
        assert!(matches!(decoder.decode(&mut src).unwrap(), Some(FrameEvent::Header(_))));
        assert_eq!(decoder.decode(&mut src).unwrap(), Some(FrameEvent::Payload { data: BytesMut::new(), last: true }));
        assert!(decoder.is_between_frames());
    }
}
