//! The one representation of a handshake answer: the 101 of [`super::server::accept`], a protocol
//! [`super::server::Rejection`], and any refusal a runtime decides on its own (403, 404, 503, …).
//!
//! Why one type: a runtime may answer on a raw socket (it writes [`Response::to_bytes`]) or through
//! an HTTP library that owns the connection (it copies status, headers and body header by header).
//! With a single value both paths send the same headers in the same order, and nobody rebuilds a
//! response from its parts.

/// An HTTP/1.1 response to an upgrade request, before it is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase of the status line (HTTP/1.1 clients ignore it; people reading a trace don't).
    pub reason: &'static str,
    /// Header names and values in the order they are sent. Framing (`Content-Length`) is not in
    /// here: [`Response::to_bytes`] derives it from the body, and an HTTP library derives its own.
    /// Values are written as they are: whoever puts a value from elsewhere here checks it first (a
    /// CR or LF would start a header of its own; tether-tokio checks an application's refusals).
    pub headers: Vec<(&'static str, String)>,
    /// The body, sent after the head (empty for 101).
    pub body: Vec<u8>,
}

impl Response {
    /// A response with this status, its standard reason phrase, no headers and no body.
    pub fn new(status: u16) -> Self {
        Self { status, reason: reason_phrase(status), headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header after those already there.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A plain-text body, with its `Content-Type`.
    pub fn text(self, body: impl Into<String>) -> Self {
        let mut response = self.header("Content-Type", "text/plain; charset=utf-8");
        response.body = body.into().into_bytes();
        response
    }

    /// The first value of a header, by case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The bytes to write on the socket: status line, headers, `Content-Length` (except on a 1xx,
    /// which RFC 9110 §8.6 forbids to carry one), the blank line and the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", self.status, self.reason).as_bytes());
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if self.status >= 200 {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The reason phrases of the statuses a WebSocket handshake answers with; others get none.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_has_no_length_and_no_body() {
        let response = Response::new(101).header("Upgrade", "websocket");
        assert_eq!(response.to_bytes(), b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    }

    #[test]
    fn a_text_answer_says_its_type_and_length() {
        let response = Response::new(403).header("Connection", "close").text("no\n");
        assert_eq!(response.get("connection"), Some("close"));
        assert_eq!(
            String::from_utf8(response.to_bytes()).unwrap(),
            "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\nno\n"
        );
    }
}
