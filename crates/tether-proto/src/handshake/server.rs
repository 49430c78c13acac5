//! The server side of the opening handshake (RFC 6455 §4.2).
//!
//! [`validate`] checks a request head against §4.2.1 and returns an [`UpgradeRequest`] or a
//! [`Rejection`] that knows its HTTP status; [`accept`] negotiates the sub-protocol and
//! permessage-deflate and answers with the 101. Both answers are a [`Response`], which a runtime
//! writes as bytes or hands to its HTTP library.

use std::fmt;

use base64::Engine as _;

use super::extensions::{parse_extensions, ExtensionOffer};
use super::head::{HeadError, Headers, RequestHead};
use super::response::Response;
use super::{accept_key, has_token, is_token};
use crate::deflate::{negotiation, DeflateConfig, DeflateParams};

/// A valid WebSocket upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The request target: path and query, as sent.
    pub target: String,
    /// The `Host` header.
    pub host: String,
    /// The `Origin` header, which browsers always send and other clients usually don't.
    pub origin: Option<String>,
    /// `Sec-WebSocket-Key`.
    pub key: String,
    /// The sub-protocols the client offered, in its order.
    pub protocols: Vec<String>,
    /// The extensions the client offered, in its order.
    pub extensions: Vec<ExtensionOffer>,
    /// All request headers.
    pub headers: Headers,
}

impl UpgradeRequest {
    /// The path part of the target, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The query part of the target, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }
}

/// Why an upgrade request fails RFC 6455's handshake, and how to answer it. Only what the protocol
/// decides is here (400, 426, 431); a server's own policy (Origin, routes, capacity, timeouts) is the
/// runtime's, which answers with a [`Response`] of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 400: the request is not a well-formed WebSocket handshake.
    BadRequest(String),
    /// 426 with `Upgrade: websocket`: a plain HTTP request where only WebSocket is served.
    UpgradeRequired,
    /// 426 with `Sec-WebSocket-Version: 13`: a WebSocket version we don't speak.
    UnsupportedVersion(String),
    /// 431: the head is over the configured size or header count.
    HeadersTooLarge,
}

impl Rejection {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::UpgradeRequired | Self::UnsupportedVersion(_) => 426,
            Self::HeadersTooLarge => 431,
        }
    }

    /// The answer: the status, what the client needs to retry (the upgrade or version we speak),
    /// `Connection: close`, and the reason as a plain-text body.
    pub fn response(&self) -> Response {
        let response = Response::new(self.status());
        let response = match self {
            Self::UpgradeRequired => response.header("Upgrade", "websocket").header("Connection", "Upgrade, close"),
            Self::UnsupportedVersion(_) => response.header("Sec-WebSocket-Version", "13").header("Connection", "close"),
            Self::BadRequest(_) | Self::HeadersTooLarge => response.header("Connection", "close"),
        };
        response.text(format!("{self}\n"))
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRequest(why) => write!(f, "bad WebSocket handshake: {why}"),
            Self::UpgradeRequired => f.write_str("this endpoint speaks WebSocket only"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported WebSocket version {v:?}; this server speaks 13"),
            Self::HeadersTooLarge => f.write_str("request head too large"),
        }
    }
}

impl std::error::Error for Rejection {}

impl From<HeadError> for Rejection {
    fn from(error: HeadError) -> Self {
        match error {
            HeadError::TooLarge => Self::HeadersTooLarge,
            HeadError::Malformed(why) => Self::BadRequest(why),
        }
    }
}

/// Whether a request asks for a WebSocket upgrade at all (as opposed to being plain HTTP that a
/// server may answer some other way).
pub fn is_upgrade_request(head: &RequestHead) -> bool {
    head.headers.get_all("upgrade").any(|v| has_token(v, "websocket"))
}

/// Validates an upgrade request against RFC 6455 §4.2.1.
pub fn validate(head: RequestHead) -> Result<UpgradeRequest, Rejection> {
    let bad = |why: &str| Err(Rejection::BadRequest(why.to_owned()));
    if !is_upgrade_request(&head) {
        return Err(Rejection::UpgradeRequired);
    }
    if head.method != "GET" {
        return bad("the method must be GET");
    }
    if head.minor_version != 1 {
        return bad("HTTP/1.1 is required");
    }
    let Some(host) = head.headers.get_one("host").filter(|h| !h.is_empty()) else {
        return bad("exactly one Host header is required");
    };
    if !head.headers.get_all("connection").any(|v| has_token(v, "upgrade")) {
        return bad("Connection must include upgrade");
    }
    match head.headers.count("sec-websocket-version") {
        0 => return bad("Sec-WebSocket-Version is missing"),
        1 => {}
        _ => return bad("Sec-WebSocket-Version is repeated"),
    }
    let version = head.headers.get_one("sec-websocket-version").unwrap_or_default();
    if version != "13" {
        return Err(Rejection::UnsupportedVersion(version.to_owned()));
    }
    let Some(key) = head.headers.get_one("sec-websocket-key") else {
        return bad("exactly one Sec-WebSocket-Key is required");
    };
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return bad("Sec-WebSocket-Key must be 16 bytes in base64"),
    }
    let mut protocols = Vec::new();
    for value in head.headers.get_all("sec-websocket-protocol") {
        let Ok(value) = std::str::from_utf8(value) else { return bad("Sec-WebSocket-Protocol is not text") };
        for protocol in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if !is_token(protocol) {
                return bad("Sec-WebSocket-Protocol holds an invalid name");
            }
            protocols.push(protocol.to_owned());
        }
    }
    let Ok(extensions) = parse_extensions(head.headers.get_all("sec-websocket-extensions")) else {
        return bad("Sec-WebSocket-Extensions is malformed");
    };
    let origin = match head.headers.count("origin") {
        0 => None,
        1 => head.headers.get_one("origin").map(str::to_owned),
        _ => return bad("Origin is repeated"),
    };
    Ok(UpgradeRequest {
        target: head.target,
        host: host.to_owned(),
        origin,
        key: key.to_owned(),
        protocols,
        extensions,
        headers: head.headers,
    })
}

/// The server's choices for one connection.
#[derive(Debug, Clone, Default)]
pub struct AcceptOptions<'a> {
    /// Supported sub-protocols in the server's order of preference.
    pub protocols: &'a [String],
    /// permessage-deflate settings, or `None` to never negotiate compression.
    pub deflate: Option<&'a DeflateConfig>,
}

/// The outcome of a successful handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The 101 response to send (`Sec-WebSocket-Accept`, and the chosen sub-protocol and extension).
    pub response: Response,
    /// The chosen sub-protocol, if any.
    pub protocol: Option<String>,
    /// The negotiated permessage-deflate parameters, if any.
    pub deflate: Option<DeflateParams>,
}

/// The first of the server's protocols that the client offered (exact match, as RFC 6455 requires).
pub fn select_protocol(server_preference: &[String], offered: &[String]) -> Option<String> {
    server_preference.iter().find(|p| offered.contains(p)).cloned()
}

/// Accepts a validated request: picks the sub-protocol and compression and writes the 101 response.
pub fn accept(request: &UpgradeRequest, options: &AcceptOptions<'_>) -> Accepted {
    let protocol = select_protocol(options.protocols, &request.protocols);
    let deflate = options.deflate.and_then(|config| negotiation::accept_offer(config, &request.extensions));
    let mut response = Response::new(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", accept_key(&request.key));
    if let Some(protocol) = &protocol {
        response = response.header("Sec-WebSocket-Protocol", protocol.as_str());
    }
    let deflate = deflate.map(|(params, extension)| {
        response.headers.push(("Sec-WebSocket-Extensions", extension));
        params
    });
    Accepted { response, protocol, deflate }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::head::HeadReader;

    const GOOD: &str = "GET /echo?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: soap, json\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nOrigin: http://example.com\r\n\r\n";

    fn parse(request: &str) -> Result<UpgradeRequest, Rejection> {
        let (head, _) = HeadReader::default().read_request(request.as_bytes())?.expect("complete head");
        validate(head)
    }

    fn without(header: &str) -> String {
        GOOD.lines().filter(|l| !l.starts_with(header)).map(|l| format!("{l}\r\n")).collect::<String>()
    }

    #[test]
    fn accepts_the_rfc_example_and_negotiates() {
        let request = parse(GOOD).unwrap();
        assert_eq!(request.path(), "/echo");
        assert_eq!(request.query(), Some("room=1"));
        assert_eq!(request.protocols, ["soap", "json"]);
        assert_eq!(request.origin.as_deref(), Some("http://example.com"));
        let protocols = ["json".to_owned(), "soap".to_owned()];
        let config = DeflateConfig::default();
        let accepted = accept(&request, &AcceptOptions { protocols: &protocols, deflate: Some(&config) });
        assert_eq!(accepted.protocol.as_deref(), Some("json"));
        assert!(accepted.deflate.is_some());
        let response = String::from_utf8(accepted.response.to_bytes()).unwrap();
        assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(response.contains("Sec-WebSocket-Protocol: json\r\n"));
        assert!(response.contains("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n"));
        assert!(response.ends_with("\r\n\r\n"));
    }

    #[test]
    fn no_common_protocol_means_no_protocol_header() {
        let request = parse(GOOD).unwrap();
        let accepted = accept(&request, &AcceptOptions { protocols: &["mqtt".to_owned()], deflate: None });
        assert_eq!(accepted.protocol, None);
        assert!(!String::from_utf8(accepted.response.to_bytes()).unwrap().contains("Sec-WebSocket-Protocol"));
    }

    #[test]
    fn header_names_and_tokens_are_case_insensitive() {
        let shouting =
            GOOD.replace("Upgrade: websocket", "UPGRADE: WebSocket").replace("keep-alive, Upgrade", "UPGRADE");
        assert!(parse(&shouting).is_ok());
    }

    #[test]
    fn each_missing_or_bad_part_is_a_400() {
        let cases = [
            GOOD.replace("GET ", "POST "),
            GOOD.replace("HTTP/1.1\r\n", "HTTP/1.0\r\n"),
            without("Host"),
            without("Connection"),
            without("Sec-WebSocket-Key"),
            without("Sec-WebSocket-Version"),
            GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="),
            GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "not base64!"),
            GOOD.replace("Version: 13\r\n", "Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"),
            GOOD.replace("Version: 13\r\n", "Version: 13\r\nSec-WebSocket-Version: 13\r\n"),
            GOOD.replace("soap, json", "so ap"),
            GOOD.replace("permessage-deflate; client_max_window_bits", "permessage-deflate; ="),
        ];
        for request in cases {
            let rejection = parse(&request).unwrap_err();
            assert_eq!(rejection.status(), 400, "{request}: {rejection}");
        }
    }

    #[test]
    fn wrong_version_is_426_with_the_version_we_speak() {
        let rejection = parse(&GOOD.replace("Version: 13", "Version: 8")).unwrap_err();
        assert_eq!(rejection.status(), 426);
        let response = String::from_utf8(rejection.response().to_bytes()).unwrap();
        assert!(response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(response.contains("Sec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn plain_http_is_426_upgrade_required() {
        let rejection = parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap_err();
        assert_eq!(rejection, Rejection::UpgradeRequired);
        assert!(String::from_utf8(rejection.response().to_bytes()).unwrap().contains("Upgrade: websocket\r\n"));
    }

    #[test]
    fn oversized_head_is_431() {
        let huge = GOOD.replace("Origin:", &format!("X-Big: {}\r\nOrigin:", "a".repeat(20_000)));
        let rejection = parse(&huge).unwrap_err();
        assert_eq!(rejection.status(), 431);
        assert!(String::from_utf8(rejection.response().to_bytes()).unwrap().starts_with("HTTP/1.1 431 "));
    }

    /// The bytes on the wire, exactly as every earlier release wrote them (clients and tests
    /// compare them).
    #[test]
    fn rejection_bytes_are_unchanged() {
        let text = "Content-Type: text/plain; charset=utf-8\r\n";
        let cases = [
            (
                Rejection::BadRequest("the method must be GET".into()),
                format!("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n{text}Content-Length: 48\r\n\r\nbad WebSocket handshake: the method must be GET\n"),
            ),
            (
                Rejection::UpgradeRequired,
                format!("HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n{text}Content-Length: 36\r\n\r\nthis endpoint speaks WebSocket only\n"),
            ),
            (
                Rejection::UnsupportedVersion("8".into()),
                format!("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n{text}Content-Length: 57\r\n\r\nunsupported WebSocket version \"8\"; this server speaks 13\n"),
            ),
            (
                Rejection::HeadersTooLarge,
                format!("HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n{text}Content-Length: 23\r\n\r\nrequest head too large\n"),
            ),
        ];
        for (rejection, bytes) in cases {
            assert_eq!(String::from_utf8(rejection.response().to_bytes()).unwrap(), bytes);
        }
    }

    #[test]
    fn the_switch_bytes_are_unchanged() {
        let request = parse(GOOD).unwrap();
        let protocols = ["json".to_owned()];
        let config = DeflateConfig::default();
        let accepted = accept(&request, &AcceptOptions { protocols: &protocols, deflate: Some(&config) });
        assert_eq!(
            String::from_utf8(accepted.response.to_bytes()).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: json\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n\r\n"
        );
    }
}
