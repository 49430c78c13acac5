//! How things are shown: received messages (scripted lines, interactive blocks, previews of
//! binary data), the handshake's bytes, close codes, and errors as one-line sentences.
//!
//! Pure functions from values to text, so every rule of the output (one line per message,
//! escaped control characters, at most 32 bytes previewed) is a unit test.

use tether_tokio::client::HandshakeBytes;
use tether_tokio::{Closed, Message};

/// How received messages are shown.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Format {
    pub json: bool,
    pub timestamps: bool,
}

impl Format {
    /// The timestamp prefix, or nothing.
    pub(super) fn stamp(&self) -> String {
        if self.timestamps {
            format!("{} ", chrono::Local::now().format("%H:%M:%S%.3f"))
        } else {
            String::new()
        }
    }

    /// The text to show for a text message: pretty JSON when asked for and possible.
    fn text(&self, text: &str) -> String {
        if self.json {
            if let Some(pretty) = pretty_json(text) {
                return pretty;
            }
        }
        text.to_owned()
    }
}

/// Scripted output: one line per message, text as is, binary as `<binary N bytes: HEX>` in full
/// (a script may need every byte).
pub(super) fn scripted_line(message: &Message, format: &Format) -> String {
    let body = match message {
        Message::Text(text) => format.text(text),
        Message::Binary(bytes) => format!("<binary {} bytes: {}>", bytes.len(), hex(bytes)),
    };
    format!("{}{body}", format.stamp())
}

/// Interactive output: `< ` before the first line and the same width of spaces before the others,
/// so a multi-line message stays one visible block; binary as a preview. Control characters are
/// escaped so that a server cannot drive the user's terminal with escape sequences.
pub(super) fn interactive_lines(message: &Message, format: &Format) -> String {
    let prefix = format!("{}< ", format.stamp());
    let body = match message {
        Message::Text(text) => sanitize(&format.text(text)),
        Message::Binary(bytes) => binary_preview(bytes),
    };
    let indent = " ".repeat(prefix.chars().count());
    let mut out = String::new();
    for (i, line) in body.split('\n').enumerate() {
        out.push_str(if i == 0 { &prefix } else { &indent });
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// How many bytes of a binary message the interactive mode shows.
const PREVIEW_BYTES: usize = 32;

/// `binary 40 bytes: 00 01 02 ... 1f ...`: the length and the first [`PREVIEW_BYTES`] bytes.
pub(super) fn binary_preview(bytes: &[u8]) -> String {
    format!("binary {}", byte_preview(bytes))
}

/// `40 bytes: 00 01 02 ... 1f ...`: the length and the first [`PREVIEW_BYTES`] bytes.
fn byte_preview(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(PREVIEW_BYTES)];
    let mut out = format!("{} byte{}", bytes.len(), if bytes.len() == 1 { "" } else { "s" });
    if !shown.is_empty() {
        out.push_str(": ");
        out.push_str(&shown.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "));
    }
    if bytes.len() > PREVIEW_BYTES {
        out.push_str(" ...");
    }
    out
}

/// `pong`, `pong "text"` (a UTF-8 payload, as `/ping text` sends) or `pong 3 bytes: 00 01 02`.
pub(super) fn pong_line(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        _ if payload.is_empty() => "pong".to_owned(),
        Ok(text) => format!("pong {:?}", sanitize(text)),
        Err(_) => format!("pong {}", byte_preview(payload)),
    }
}

/// Lowercase hex without separators.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Escapes control characters other than line breaks and tabs (`\r` too, which would let a line
/// overwrite itself).
fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Pretty JSON for objects and arrays; scalars are left alone (re-printing `1e2` as `100.0` would
/// change what the server sent without making it any clearer).
fn pretty_json(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if !(value.is_object() || value.is_array()) {
        return None;
    }
    serde_json::to_string_pretty(&value).ok()
}

/// `1000 (normal closure): reason`, or `1006 (abnormal closure, no closing handshake)`.
pub(super) fn describe_close(closed: &Closed) -> String {
    let mut out = closed.code.to_string();
    if let Some(name) = closed.code.name() {
        out.push_str(&format!(" ({name})"));
    }
    if !closed.reason.is_empty() {
        out.push_str(&format!(": {}", closed.reason));
    }
    out
}

/// The handshake as `--show-handshake` prints it: each line of the bytes marked `> ` (sent) or
/// `< ` (received), then the marker alone for the blank line that ends a head. Control characters
/// are escaped: a server's headers must not drive the terminal either.
pub(super) fn handshake_lines(bytes: HandshakeBytes<'_>) -> String {
    let (marker, bytes) = match bytes {
        HandshakeBytes::Request(bytes) => (">", bytes),
        HandshakeBytes::Response(bytes) => ("<", bytes),
    };
    let text = String::from_utf8_lossy(bytes);
    let head = text.strip_suffix("\r\n\r\n").unwrap_or(&text);
    let mut out = String::new();
    for line in head.split("\r\n") {
        out.push_str(&format!("{marker} {}\n", sanitize(line)));
    }
    out.push_str(&format!("{marker}\n"));
    out
}

/// Whether a TLS error means the server answered our ClientHello with something that is not TLS
/// (an HTTP error page, typically) or hung up on it.
pub(super) fn is_plain_answer(why: &str) -> bool {
    why.contains("InvalidContentType") || why.contains("corrupt message") || why.contains("tls handshake eof")
}

/// The common rustls errors as sentences; rustls' Display names enum variants
/// (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`). `None` for the others.
pub(crate) fn tls_sentence(why: &str) -> Option<String> {
    const SENTENCES: &[(&str, &str)] = &[
        ("CaUsedAsEndEntity", "the server presents a CA certificate as its own; it needs a server certificate issued by that CA"),
        ("EndEntityUsedAsCa", "the server's certificate chain uses a server certificate as a CA"),
        ("UnknownIssuer", "the server's certificate is not signed by a trusted CA (for a private CA pass it with --ca FILE; --insecure skips the check, for testing only)"),
        ("NotValidForName", "the server's certificate is not valid for this host name"),
        ("certificate not valid for name", "the server's certificate is not valid for this host name"),
        ("ExpiredRevocationList", "the certificate revocation list has expired"),
        ("Expired", "the server's certificate has expired"),
        ("certificate expired", "the server's certificate has expired"),
        ("NotValidYet", "the server's certificate is not valid yet (check the clock)"),
        ("certificate not valid yet", "the server's certificate is not valid yet (check the clock)"),
        ("Revoked", "the server's certificate has been revoked"),
        ("BadSignature", "the server's certificate has an invalid signature"),
        ("BadEncoding", "the certificate is not valid DER"),
        ("UnsupportedSignatureAlgorithm", "the certificate is signed with an algorithm that is not supported"),
        ("InvalidPurpose", "the certificate is not meant for TLS servers (its extended key usage)"),
        ("does not allow extended key usage", "the certificate is not meant for TLS servers (its extended key usage)"),
        ("UnhandledCriticalExtension", "the certificate has a critical extension that is not supported"),
        ("KeyMismatch", "the private key does not belong to the certificate"),
        ("inconsistent keys", "the private key does not belong to the certificate"),
        ("received fatal alert: HandshakeFailure", "the server refused the TLS handshake (no TLS version or cipher in common)"),
        ("received fatal alert: ProtocolVersion", "the server refused the TLS handshake (no TLS version in common)"),
        ("received fatal alert: UnrecognisedName", "the server does not serve this host name"),
        ("received fatal alert: CertificateRequired", "the server requires a client certificate"),
        ("received fatal alert", "the server ended the TLS handshake with an alert"),
        ("peer sent no certificates", "the server sent no certificate"),
    ];
    SENTENCES.iter().find(|(pattern, _)| why.contains(pattern)).map(|(_, sentence)| (*sentence).to_owned())
}

/// Error messages go on one line of stderr, even when a server's error page has several.
pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_become_sentences() {
        let cases = [
            ("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))", "presents a CA certificate as its own"),
            ("invalid peer certificate: UnknownIssuer", "not signed by a trusted CA"),
            ("invalid peer certificate: certificate expired: verification time 2 (UNIX), but", "has expired"),
            ("keys may not be consistent: KeyMismatch", "private key does not belong to the certificate"),
            ("received fatal alert: HandshakeFailure", "refused the TLS handshake"),
        ];
        for (rustls, sentence) in cases {
            let got = tls_sentence(rustls).unwrap_or_default();
            assert!(got.contains(sentence), "{rustls} -> {got}");
            assert!(!got.contains("Error") && !got.contains("UNIX"), "{got}");
        }
        assert_eq!(tls_sentence("something new"), None, "unknown errors are shown as rustls words them");
        assert!(is_plain_answer("received corrupt message of type InvalidContentType"));
    }

    #[test]
    fn hex_preview_shows_the_length_and_at_most_32_bytes() {
        assert_eq!(binary_preview(&[]), "binary 0 bytes");
        assert_eq!(binary_preview(&[0xab]), "binary 1 byte: ab");
        assert_eq!(binary_preview(&[0, 1, 0xff]), "binary 3 bytes: 00 01 ff");
        let long: Vec<u8> = (0..40).collect();
        let preview = binary_preview(&long);
        assert!(preview.starts_with("binary 40 bytes: 00 01 02"), "{preview}");
        assert!(preview.ends_with("1e 1f ..."), "{preview}");
        assert!(!preview.contains(" 20"), "byte 32 is not shown: {preview}");
    }

    #[test]
    fn scripted_lines_are_text_as_is_and_binary_in_full_hex() {
        let format = Format::default();
        assert_eq!(scripted_line(&Message::Text("héllo".into()), &format), "héllo");
        let binary = Message::Binary(vec![0xde, 0xad, 0xbe, 0xef].into());
        assert_eq!(scripted_line(&binary, &format), "<binary 4 bytes: deadbeef>");
        let json = Format { json: true, timestamps: false };
        assert_eq!(scripted_line(&Message::Text(r#"{"a":1}"#.into()), &json), "{\n  \"a\": 1\n}");
        assert_eq!(scripted_line(&Message::Text("1e2".into()), &json), "1e2", "scalars stay as sent");
    }

    #[test]
    fn interactive_lines_mark_indent_and_escape() {
        let format = Format::default();
        assert_eq!(interactive_lines(&Message::Text("hi".into()), &format), "< hi\n");
        assert_eq!(interactive_lines(&Message::Text("a\nb".into()), &format), "< a\n  b\n");
        assert_eq!(interactive_lines(&Message::Text("\x1b[2Jx\r".into()), &format), "< \\u{1b}[2Jx\\r\n");
        assert_eq!(interactive_lines(&Message::Binary(vec![7].into()), &format), "< binary 1 byte: 07\n");
    }

    #[test]
    fn pongs_show_text_as_text_and_bytes_as_hex() {
        assert_eq!(pong_line(b""), "pong");
        assert_eq!(pong_line(b"are you there"), "pong \"are you there\"");
        assert_eq!(pong_line(&[0xff, 0x00]), "pong 2 bytes: ff 00");
    }

    #[test]
    fn the_handshake_is_shown_line_by_line_as_it_went() {
        let request = HandshakeBytes::Request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(handshake_lines(request), "> GET / HTTP/1.1\n> Host: a\n>\n");
        let response = HandshakeBytes::Response(b"HTTP/1.1 403 Forbidden\r\nX: \x1b[2J\r\n\r\n");
        assert_eq!(handshake_lines(response), "< HTTP/1.1 403 Forbidden\n< X: \\u{1b}[2J\n<\n", "escaped");
    }

    #[test]
    fn errors_fit_on_one_line() {
        assert_eq!(one_line("HTTP 403 Forbidden: <h1>\nno\n</h1>\n"), "HTTP 403 Forbidden: <h1> no </h1>");
    }
}
