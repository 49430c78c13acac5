//! The opening handshake (RFC 6455 §4): an HTTP/1.1 Upgrade exchange.
//!
//! - [`head`]: finds the end of an HTTP head in a growing buffer in linear time and parses it with
//!   `httparse`, bounded in bytes and header count.
//! - [`server`]: validates a client's Upgrade request, negotiates sub-protocol and extensions, and
//!   answers with 101 or the protocol's error status (400, 426, 431).
//! - [`response`]: the one [`response::Response`] type every handshake answer is, rendered to bytes
//!   once.
//! - [`client`]: builds a request with a fresh key and checks the server's answer.
//! - [`extensions`]: the `Sec-WebSocket-Extensions` grammar.

pub mod client;
pub mod extensions;
pub mod head;
pub mod response;
pub mod server;

use base64::Engine as _;

/// The GUID RFC 6455 §1.3 appends to the key before hashing.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.digest().bytes())
}

/// Whether a comma-separated header value contains `token`, compared case-insensitively
/// (`Connection: keep-alive, Upgrade`).
pub(crate) fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// RFC 7230 `tchar`: the characters allowed in a token such as a sub-protocol name or a header
/// name. Public so that runtimes and tools checking header names use this one definition.
pub fn is_token(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn tokens_in_lists() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(has_token(b"WebSocket", "websocket"));
        assert!(!has_token(b"upgraded", "upgrade"));
        assert!(is_token("chat.v2"));
        assert!(!is_token("a b") && !is_token(""));
    }
}
