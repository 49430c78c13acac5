//! Opcodes and the frame header.

use bytes::BufMut;

use crate::error::ProtocolError;

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: a later fragment of a message.
    Continuation,
    /// 0x1: the first (or only) frame of a text message.
    Text,
    /// 0x2: the first (or only) frame of a binary message.
    Binary,
    /// 0x8: the closing handshake.
    Close,
    /// 0x9: a ping.
    Ping,
    /// 0xA: a pong.
    Pong,
}

impl OpCode {
    /// Decodes the low four bits of a frame's first byte.
    pub fn from_bits(bits: u8) -> Result<Self, ProtocolError> {
        Ok(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(ProtocolError::UnknownOpcode(other)),
        })
    }

    /// The opcode's four bits.
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong are control frames: at most 125 bytes and never fragmented.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// Everything in a frame before its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The final fragment of a message.
    pub fin: bool,
    /// RSV1: in permessage-deflate, "this message is compressed" on a message's first frame.
    pub rsv1: bool,
    /// RSV2: no extension we implement uses it.
    pub rsv2: bool,
    /// RSV3: no extension we implement uses it.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key (client-to-server frames only).
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// The longest header: 2 bytes, a 64-bit length and a mask.
    pub const MAX_LEN: usize = 14;

    /// A header for an unmasked, unfragmented frame without reserved bits.
    pub fn new(opcode: OpCode, payload_len: u64) -> Self {
        Self { fin: true, rsv1: false, rsv2: false, rsv3: false, opcode, mask: None, payload_len }
    }

    /// How many bytes the header takes on the wire.
    pub fn encoded_len(&self) -> usize {
        let length_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + length_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header.
    pub fn encode(&self, dst: &mut impl BufMut) {
        let mut first = self.opcode.bits();
        if self.fin {
            first |= 0x80;
        }
        if self.rsv1 {
            first |= 0x40;
        }
        if self.rsv2 {
            first |= 0x20;
        }
        if self.rsv3 {
            first |= 0x10;
        }
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        dst.put_u8(first);
        match self.payload_len {
            len @ 0..=125 => dst.put_u8(mask_bit | len as u8),
            len @ 126..=0xFFFF => {
                dst.put_u8(mask_bit | 126);
                dst.put_u16(len as u16);
            }
            len => {
                dst.put_u8(mask_bit | 127);
                dst.put_u64(len);
            }
        }
        if let Some(key) = self.mask {
            dst.put_slice(&key);
        }
    }

    /// Parses a header from the start of `src`.
    ///
    /// Returns `Ok(None)` when `src` does not hold the whole header yet, and the header with its
    /// length in bytes otherwise. Rejects what cannot be represented: unknown opcodes, lengths that
    /// are not minimally encoded, and 64-bit lengths with the top bit set.
    pub fn parse(src: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [first, second, ..] = *src else {
            return Ok(None);
        };
        let opcode = OpCode::from_bits(first & 0x0F)?;
        let masked = second & 0x80 != 0;
        let (payload_len, mut pos) = match second & 0x7F {
            126 => {
                let Some(bytes) = src.get(2..4) else { return Ok(None) };
                let len = u64::from(u16::from_be_bytes([bytes[0], bytes[1]]));
                if len < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (len, 4)
            }
            127 => {
                let Some(bytes) = src.get(2..10) else { return Ok(None) };
                let len = u64::from_be_bytes(bytes.try_into().expect("eight bytes"));
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthOutOfRange);
                }
                if len <= 0xFFFF {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (len, 10)
            }
            len => (u64::from(len), 2),
        };
        let mask = if masked {
            let Some(key) = src.get(pos..pos + 4) else { return Ok(None) };
            pos += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        let header = Self {
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            rsv2: first & 0x20 != 0,
            rsv3: first & 0x10 != 0,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, pos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_form() {
        for len in [0u64, 1, 125, 126, 127, 0xFFFF, 0x1_0000, u64::MAX >> 1] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let header = FrameHeader { mask, ..FrameHeader::new(OpCode::Binary, len) };
                let mut buf = Vec::new();
                header.encode(&mut buf);
                assert_eq!(buf.len(), header.encoded_len());
                assert_eq!(FrameHeader::parse(&buf), Ok(Some((header, buf.len()))));
                for short in 0..buf.len() {
                    assert_eq!(FrameHeader::parse(&buf[..short]), Ok(None));
                }
            }
        }
    }

    #[test]
    fn rejects_unknown_opcodes() {
        for op in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(FrameHeader::parse(&[0x80 | op, 0]), Err(ProtocolError::UnknownOpcode(op)));
        }
    }

    #[test]
    fn rejects_non_minimal_and_oversized_lengths() {
        assert_eq!(FrameHeader::parse(&[0x82, 126, 0, 125]), Err(ProtocolError::NonMinimalLength));
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]),
            Err(ProtocolError::NonMinimalLength)
        );
        assert_eq!(FrameHeader::parse(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]), Err(ProtocolError::LengthOutOfRange));
    }

    #[test]
    fn reads_flag_bits() {
        let (header, _) = FrameHeader::parse(&[0x71, 0]).unwrap().unwrap();
        assert!(!header.fin && header.rsv1 && header.rsv2 && header.rsv3);
        assert_eq!(header.opcode, OpCode::Text);
    }
}
