//! Close codes and the payload of a Close frame (RFC 6455 §5.5.1 and §7.4).
//!
//! A Close frame's payload is empty, or a two-byte status code followed by a UTF-8 reason. Which codes
//! may appear on the wire is fixed by the RFC and the IANA registry: 1000-1003 and 1007-1014 are
//! defined, 3000-4999 are for libraries and applications, and everything else (including 1004, 1005,
//! 1006 and 1015, which only describe a connection locally) is a protocol error when received.

use std::fmt;

/// A WebSocket close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutting down, page navigated away).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept (for example binary on a text-only endpoint).
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present. Never sent on the wire.
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection closed without a Close frame. Never sent on the wire.
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: message data inconsistent with its type (invalid UTF-8 in a text message).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a frame or message is too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected the server to negotiate an extension.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (for example, the server is overloaded).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway got an invalid response from upstream.
    pub const BAD_GATEWAY: Self = Self(1014);

    /// The registry's name for a defined code, for people reading logs and `tether connect`'s
    /// output; `None` for 3000-4999 (the application's own) and undefined codes. 1006 says why it
    /// matters: no closing handshake happened.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status code",
            1006 => "abnormal closure, no closing handshake",
            1007 => "invalid payload",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            _ => return None,
        })
    }

    /// Whether this code may appear in a Close frame on the wire.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

/// A status code and reason, as carried by a Close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most [`MAX_REASON_BYTES`] bytes of UTF-8.
    pub reason: String,
}

/// A control frame carries at most 125 bytes, two of which are the code.
pub const MAX_REASON_BYTES: usize = 123;

/// Why a received Close frame payload is invalid. Its own small type, so that this module needs
/// nothing of [`crate::error`]: a `ProtocolError` is made from it there (`From`), and which close
/// code answers it is decided there too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidClosePayload {
    /// A one-byte payload: a code needs two.
    Length,
    /// A code that may not be sent on the wire.
    Code(u16),
    /// A reason that is not UTF-8.
    Utf8,
}

/// Parses a received Close frame payload.
///
/// Returns `None` for an empty payload. A one-byte payload or a code that is not valid on the wire is a
/// protocol error (close 1002); a reason that is not UTF-8 is invalid data (close 1007).
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, InvalidClosePayload> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(InvalidClosePayload::Length),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_valid_on_wire() {
                return Err(InvalidClosePayload::Code(code.0));
            }
            let reason = simdutf8::basic::from_utf8(&payload[2..]).map_err(|_| InvalidClosePayload::Utf8)?.to_owned();
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

/// Writes a Close frame payload for `code` and `reason` into `dst`.
///
/// The reason is cut at a character boundary so the payload fits in a control frame.
pub(crate) fn encode_close_payload(code: CloseCode, reason: &str, dst: &mut Vec<u8>) {
    dst.extend_from_slice(&code.0.to_be_bytes());
    dst.extend_from_slice(truncate_reason(reason).as_bytes());
}

fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defined_codes_have_names_and_application_codes_do_not() {
        assert_eq!(CloseCode::NORMAL.name(), Some("normal closure"));
        assert_eq!(CloseCode::ABNORMAL.name(), Some("abnormal closure, no closing handshake"));
        assert_eq!(CloseCode::BAD_GATEWAY.name(), Some("bad gateway"));
        assert_eq!(CloseCode(1004).name(), None);
        assert_eq!(CloseCode(4001).name(), None);
    }

    #[test]
    fn wire_validity_follows_the_registry() {
        for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code}");
        }
    }

    #[test]
    fn parses_empty_code_and_reason() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, b'b', b'y', b'e']),
            Ok(Some(CloseFrame { code: CloseCode::NORMAL, reason: "bye".into() }))
        );
    }

    #[test]
    fn rejects_bad_payloads() {
        assert_eq!(parse_close_payload(&[0x03]), Err(InvalidClosePayload::Length));
        assert_eq!(parse_close_payload(&[0x03, 0xed]), Err(InvalidClosePayload::Code(1005)));
        assert_eq!(parse_close_payload(&[0x03, 0xe8, 0xff]), Err(InvalidClosePayload::Utf8));
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let reason = "é".repeat(100);
        let mut payload = Vec::new();
        encode_close_payload(CloseCode::NORMAL, &reason, &mut payload);
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }
}
