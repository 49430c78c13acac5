//! Reading an HTTP/1.1 head (request or response line plus headers) from a growing buffer.
//!
//! Bytes arrive a few at a time, possibly one by one from a slow or hostile client. Re-parsing the
//! whole buffer on every read would be quadratic, so [`HeadReader`] remembers how far it has looked
//! for the blank line that ends the head and hands the head to `httparse` only once it is complete.
//! Both the byte count and the header count are bounded.

use std::fmt;

/// Bounds on an HTTP head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// The most bytes the head (request line, headers and blank line) may take. Default 16 KiB;
    /// a longer head is answered with 431.
    pub max_bytes: usize,
    /// The most header lines. Default 64; more is answered with 431.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self { max_bytes: 16 * 1024, max_headers: 64 }
    }
}

/// One header: its name as sent and its raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name, as the peer spelled it.
    pub name: String,
    /// The value, without surrounding whitespace. HTTP allows non-UTF-8 bytes here.
    pub value: Vec<u8>,
}

/// Headers in the order received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// All values of the header `name` (case-insensitive).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_slice())
    }

    /// The value of the header `name` if it occurs exactly once and is UTF-8.
    pub fn get_one<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        let mut values = self.get_all(name);
        let first = values.next()?;
        if values.next().is_some() {
            return None;
        }
        std::str::from_utf8(first).ok()
    }

    /// How many times `name` occurs.
    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    fn from_httparse(headers: &[httparse::Header<'_>]) -> Self {
        Self(headers.iter().map(|h| Header { name: h.name.to_owned(), value: h.value.trim_ascii().to_vec() }).collect())
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, such as `GET`.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    /// The headers.
    pub headers: Headers,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The headers.
    pub headers: Headers,
}

/// Why a head could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// Over [`HeadLimits::max_bytes`] or [`HeadLimits::max_headers`].
    TooLarge,
    /// Not HTTP/1.x syntax.
    Malformed(String),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => f.write_str("HTTP head too large"),
            Self::Malformed(why) => write!(f, "malformed HTTP head: {why}"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Finds and parses one HTTP head in a buffer that grows between calls.
#[derive(Debug, Clone, Default)]
pub struct HeadReader {
    limits: HeadLimits,
    /// Bytes already searched for the end of the head.
    scanned: usize,
}

impl HeadReader {
    /// A reader with the given limits.
    pub fn new(limits: HeadLimits) -> Self {
        Self { limits, scanned: 0 }
    }

    /// The length of the head (including the blank line) if `buf` holds all of it.
    fn head_len(&mut self, buf: &[u8]) -> Result<Option<usize>, HeadError> {
        // Resume two bytes back: the terminator may straddle the previous end of the buffer.
        let start = self.scanned.saturating_sub(3);
        let end = buf.len().min(self.limits.max_bytes);
        let found = buf[start..end].iter().enumerate().filter(|(_, &b)| b == b'\n').find_map(|(i, _)| {
            let at = start + i;
            match buf.get(at + 1..end) {
                Some([b'\n', ..]) => Some(at + 2),
                Some([b'\r', b'\n', ..]) => Some(at + 3),
                _ => None,
            }
        });
        self.scanned = end;
        match found {
            Some(len) => Ok(Some(len)),
            None if buf.len() >= self.limits.max_bytes => Err(HeadError::TooLarge),
            None => Ok(None),
        }
    }

    /// Parses a request head from the start of `buf`, returning it with its length in bytes, or
    /// `Ok(None)` if more bytes are needed.
    pub fn read_request(&mut self, buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
        reject_early(buf)?;
        let Some(len) = self.head_len(buf)? else { return Ok(None) };
        let mut storage = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut request = httparse::Request::new(&mut storage);
        match request.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => Ok(Some((
                RequestHead {
                    method: request.method.unwrap_or_default().to_owned(),
                    target: request.path.unwrap_or_default().to_owned(),
                    minor_version: request.version.unwrap_or_default(),
                    headers: Headers::from_httparse(request.headers),
                },
                len,
            ))),
            Ok(httparse::Status::Partial) => Err(HeadError::Malformed("incomplete request head".into())),
            Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
            Err(e) => Err(HeadError::Malformed(e.to_string())),
        }
    }

    /// Parses a response head from the start of `buf`, like [`HeadReader::read_request`].
    pub fn read_response(&mut self, buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, HeadError> {
        let Some(len) = self.head_len(buf)? else { return Ok(None) };
        let mut storage = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut response = httparse::Response::new(&mut storage);
        match response.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => Ok(Some((
                ResponseHead {
                    status: response.code.unwrap_or_default(),
                    reason: response.reason.unwrap_or_default().to_owned(),
                    headers: Headers::from_httparse(response.headers),
                },
                len,
            ))),
            Ok(httparse::Status::Partial) => Err(HeadError::Malformed("incomplete response head".into())),
            Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
            Err(e) => Err(HeadError::Malformed(e.to_string())),
        }
    }
}

/// Refuses, from its first byte, input that cannot become a request head, instead of waiting for
/// a blank line that never comes: a TLS ClientHello (a `wss://` client on a plain port starts with
/// byte 0x16) would otherwise hold the socket until the handshake timeout and then get 408. A
/// request line starts with a method, a token; RFC 9112 §2.2 lets empty lines come before it, so
/// a head that starts with CR or LF is left to the full parse.
///
/// Only the first byte is judged: it is the same however the input is split into reads, so the
/// answer does not depend on how the bytes arrived.
fn reject_early(buf: &[u8]) -> Result<(), HeadError> {
    let Some(&first) = buf.first() else { return Ok(()) };
    let token = first.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&first);
    match first {
        _ if token || first == b'\r' || first == b'\n' => Ok(()),
        0x16 => Err(HeadError::Malformed("a TLS handshake on a plain (ws://, http://) port".into())),
        _ => Err(HeadError::Malformed(format!("a request line cannot start with byte 0x{first:02x}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] = b"GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nX-Two: 1\r\nx-two: 2\r\n\r\nrest";

    #[test]
    fn reads_a_request_fed_byte_by_byte() {
        let mut reader = HeadReader::default();
        for end in 0..REQUEST.len() - 4 {
            assert_eq!(reader.read_request(&REQUEST[..end]), Ok(None), "{end}");
        }
        let (head, len) = reader.read_request(REQUEST).unwrap().unwrap();
        assert_eq!(&REQUEST[len..], b"rest");
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/chat?x=1");
        assert_eq!(head.minor_version, 1);
        assert_eq!(head.headers.get_one("host"), Some("a"));
        assert_eq!(head.headers.count("X-TWO"), 2);
        assert_eq!(head.headers.get_one("x-two"), None);
    }

    #[test]
    fn bounds_bytes_and_headers() {
        let limits = HeadLimits { max_bytes: 64, max_headers: 2 };
        let long = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(HeadReader::new(limits).read_request(&long), Err(HeadError::TooLarge));
        let many = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(HeadReader::new(limits).read_request(many), Err(HeadError::TooLarge));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(HeadReader::default().read_request(b"\x00\x01\x02\r\n\r\n"), Err(HeadError::Malformed(_))));
    }

    #[test]
    fn refuses_a_tls_client_hello_from_its_first_byte() {
        let error = HeadReader::default().read_request(&[0x16, 0x03, 0x01]).unwrap_err();
        assert!(matches!(&error, HeadError::Malformed(why) if why.contains("TLS")), "{error}");
        assert!(HeadReader::default().read_request(b"\x01").is_err());
        // Empty lines before the request line are allowed, and a method is a token.
        assert_eq!(HeadReader::default().read_request(b"\r\nGE"), Ok(None));
        assert_eq!(HeadReader::default().read_request(b""), Ok(None));
        // However the bytes arrive, the answer is the same (found by the handshake fuzz target:
        // an empty head followed by a bad byte).
        let input = b"\r\n\r\n\x04";
        let mut piecewise = HeadReader::default();
        let first = piecewise.read_request(&input[..4]);
        assert_eq!(first, HeadReader::default().read_request(input));
    }

    #[test]
    fn reads_a_response() {
        let (head, _) = HeadReader::default()
            .read_response(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.status, 101);
        assert_eq!(head.headers.get_one("upgrade"), Some("websocket"));
    }
}
