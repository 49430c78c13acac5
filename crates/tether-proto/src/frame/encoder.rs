//! Writing frames.

use bytes::BytesMut;

use super::header::{FrameHeader, OpCode};
use super::mask::apply_mask;

/// The longest frame header: 2 bytes, an 8-byte length and a 4-byte mask key (room to reserve
/// before encoding a frame of known payload length).
pub const MAX_HEADER_LEN: usize = 14;

/// Appends one frame to `dst`: the header, then the payload, masked in place when `mask` is given.
pub fn encode_frame(dst: &mut BytesMut, opcode: OpCode, fin: bool, rsv1: bool, payload: &[u8], mask: Option<[u8; 4]>) {
    let header = FrameHeader { fin, rsv1, mask, ..FrameHeader::new(opcode, payload.len() as u64) };
    dst.reserve(header.encoded_len() + payload.len());
    header.encode(dst);
    let start = dst.len();
    dst.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut dst[start..], key, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        // RFC 6455 §5.7.
        let mut dst = BytesMut::new();
        encode_frame(&mut dst, OpCode::Text, true, false, b"Hello", None);
        assert_eq!(&dst[..], &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        dst.clear();
        encode_frame(&mut dst, OpCode::Text, true, false, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(&dst[..], &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        dst.clear();
        encode_frame(&mut dst, OpCode::Binary, true, false, &[0u8; 256], None);
        assert_eq!(&dst[..4], &[0x82, 0x7E, 0x01, 0x00]);
    }
}
