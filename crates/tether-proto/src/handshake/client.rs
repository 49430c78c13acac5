//! The client side of the opening handshake (RFC 6455 §4.1).
//!
//! [`ClientHandshake::new`] writes a request with a fresh random key; [`ClientHandshake::receive`]
//! reads the server's answer and checks everything §4.1 says a client must check: status 101,
//! `Upgrade` and `Connection`, the accept value, and that the chosen sub-protocol and extensions are
//! ones the client offered.

use std::fmt;

use base64::Engine as _;

use super::extensions::parse_extensions;
use super::head::{HeadError, HeadLimits, HeadReader, ResponseHead};
use super::{accept_key, has_token};
use crate::deflate::{negotiation, DeflateConfig, DeflateParams};

/// What the client asks for.
#[derive(Debug, Clone, Default)]
pub struct ClientRequest {
    /// The `Host` header: host, and port when not the default for the scheme.
    pub host: String,
    /// The request target: path and query. Empty means `/`.
    pub target: String,
    /// Sub-protocols to offer, in order of preference.
    pub protocols: Vec<String>,
    /// permessage-deflate to offer, or `None` for no compression.
    pub deflate: Option<DeflateConfig>,
    /// Extra headers such as `Origin`, `Authorization` or `Cookie`.
    pub headers: Vec<(String, String)>,
    /// Bounds on the response head.
    pub limits: HeadLimits,
}

/// The server accepted the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccepted {
    /// The response head.
    pub response: ResponseHead,
    /// The sub-protocol the server chose.
    pub protocol: Option<String>,
    /// The agreed compression parameters.
    pub deflate: Option<DeflateParams>,
}

/// Why the handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHandshakeError {
    /// The server answered with another status than 101 (its body may follow the head).
    Rejected(ResponseHead),
    /// The server said 101 but broke the handshake rules.
    InvalidResponse(String),
    /// The response head could not be read.
    Head(HeadError),
}

impl fmt::Display for ClientHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(head) => write!(f, "server refused the handshake: {} {}", head.status, head.reason),
            Self::InvalidResponse(why) => write!(f, "invalid handshake response: {why}"),
            Self::Head(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for ClientHandshakeError {}

/// A handshake in progress.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    expected_accept: String,
    protocols: Vec<String>,
    deflate: Option<DeflateConfig>,
    reader: HeadReader,
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64.
pub fn generate_key() -> String {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("the operating system's random source works");
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

impl ClientHandshake {
    /// Starts a handshake, returning it and the request bytes to send.
    pub fn new(request: &ClientRequest) -> (Self, Vec<u8>) {
        Self::with_key(request, generate_key())
    }

    /// Starts a handshake with a given key (tests use a fixed one).
    pub fn with_key(request: &ClientRequest, key: String) -> (Self, Vec<u8>) {
        let target = if request.target.is_empty() { "/" } else { &request.target };
        let mut text = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            request.host
        );
        if !request.protocols.is_empty() {
            text.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", request.protocols.join(", ")));
        }
        if let Some(config) = &request.deflate {
            text.push_str(&format!("Sec-WebSocket-Extensions: {}\r\n", negotiation::client_offer(config)));
        }
        for (name, value) in &request.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        let handshake = Self {
            expected_accept: accept_key(&key),
            protocols: request.protocols.clone(),
            deflate: request.deflate.clone(),
            reader: HeadReader::new(request.limits),
        };
        (handshake, text.into_bytes())
    }

    /// Reads the response from the start of `buf`. `Ok(None)` means more bytes are needed; on
    /// success the number of bytes the head took is returned too (frames may follow it).
    pub fn receive(&mut self, buf: &[u8]) -> Result<Option<(ClientAccepted, usize)>, ClientHandshakeError> {
        let Some((head, len)) = self.reader.read_response(buf).map_err(ClientHandshakeError::Head)? else {
            return Ok(None);
        };
        self.check(head).map(|accepted| Some((accepted, len)))
    }

    fn check(&self, head: ResponseHead) -> Result<ClientAccepted, ClientHandshakeError> {
        let invalid = |why: &str| Err(ClientHandshakeError::InvalidResponse(why.to_owned()));
        if head.status != 101 {
            return Err(ClientHandshakeError::Rejected(head));
        }
        if !head.headers.get_all("upgrade").any(|v| has_token(v, "websocket")) {
            return invalid("Upgrade: websocket is missing");
        }
        if !head.headers.get_all("connection").any(|v| has_token(v, "upgrade")) {
            return invalid("Connection: upgrade is missing");
        }
        if head.headers.get_one("sec-websocket-accept") != Some(self.expected_accept.as_str()) {
            return invalid("Sec-WebSocket-Accept does not match the key");
        }
        let protocol = match head.headers.count("sec-websocket-protocol") {
            0 => None,
            1 => {
                let chosen = head.headers.get_one("sec-websocket-protocol").unwrap_or_default();
                if !self.protocols.iter().any(|p| p == chosen) {
                    return invalid("the server chose a sub-protocol that was not offered");
                }
                Some(chosen.to_owned())
            }
            _ => return invalid("more than one Sec-WebSocket-Protocol"),
        };
        let Ok(extensions) = parse_extensions(head.headers.get_all("sec-websocket-extensions")) else {
            return invalid("Sec-WebSocket-Extensions is malformed");
        };
        let mut deflate = None;
        for extension in &extensions {
            let offered = self.deflate.as_ref().filter(|_| extension.name == negotiation::EXTENSION_NAME);
            let Some(config) = offered else {
                return invalid("the server accepted an extension that was not offered");
            };
            if deflate.is_some() {
                return invalid("permessage-deflate accepted twice");
            }
            deflate = Some(
                negotiation::accept_response(config, extension)
                    .map_err(|why| ClientHandshakeError::InvalidResponse(why.to_owned()))?,
            );
        }
        Ok(ClientAccepted { response: head, protocol, deflate })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::server::{accept, validate, AcceptOptions};

    fn request() -> ClientRequest {
        ClientRequest {
            host: "localhost:8787".into(),
            target: "/chat".into(),
            protocols: vec!["soap".into(), "json".into()],
            deflate: Some(DeflateConfig::default()),
            headers: vec![("Origin".into(), "http://localhost:8787".into())],
            ..ClientRequest::default()
        }
    }

    #[test]
    fn talks_to_our_own_server_side() {
        let (mut client, bytes) = ClientHandshake::new(&request());
        let (head, _) = HeadReader::default().read_request(&bytes).unwrap().unwrap();
        let upgrade = validate(head).unwrap();
        assert_eq!(upgrade.origin.as_deref(), Some("http://localhost:8787"));
        let protocols = ["json".to_owned()];
        let config = DeflateConfig::default();
        let accepted = accept(&upgrade, &AcceptOptions { protocols: &protocols, deflate: Some(&config) });
        let mut response = accepted.response.to_bytes();
        let head_len = response.len();
        response.extend_from_slice(b"\x81\x00");
        let (result, len) = client.receive(&response).unwrap().unwrap();
        assert_eq!(len, head_len);
        assert_eq!(result.protocol.as_deref(), Some("json"));
        assert_eq!(result.deflate, accepted.deflate);
    }

    #[test]
    fn keys_are_fresh_and_well_formed() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(a).unwrap().len(), 16);
    }

    fn answer(client_key: &str, extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(client_key)
        )
        .into_bytes()
    }

    #[test]
    fn rejects_what_was_not_offered_or_does_not_match() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==".to_owned();
        let bad = [
            answer("AAAAAAAAAAAAAAAAAAAAAA==", ""),
            answer(&key, "Sec-WebSocket-Protocol: mqtt\r\n"),
            answer(&key, "Sec-WebSocket-Extensions: x-foo\r\n"),
            answer(&key, "Sec-WebSocket-Extensions: permessage-deflate; bogus\r\n"),
            answer(&key, "").replace_upgrade(),
        ];
        for response in bad {
            let (mut client, _) = ClientHandshake::with_key(&request(), key.clone());
            assert!(
                matches!(client.receive(&response), Err(ClientHandshakeError::InvalidResponse(_))),
                "{}",
                String::from_utf8_lossy(&response)
            );
        }
    }

    trait ReplaceUpgrade {
        fn replace_upgrade(self) -> Vec<u8>;
    }
    impl ReplaceUpgrade for Vec<u8> {
        fn replace_upgrade(self) -> Vec<u8> {
            String::from_utf8(self).unwrap().replace("Upgrade: websocket\r\n", "").into_bytes()
        }
    }

    #[test]
    fn a_refusal_reports_the_status() {
        let (mut client, _) = ClientHandshake::new(&request());
        let error = client.receive(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").unwrap_err();
        assert!(matches!(&error, ClientHandshakeError::Rejected(head) if head.status == 403));
        assert!(error.to_string().contains("403"));
    }
}
