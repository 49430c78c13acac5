//! The tutorial's question server on `/`: a welcome packet first, then answers to `1` (the server's
//! name), `2` (the operating system) and `3` (the local time, `hh:mm:ss`).
//!
//! Answers are JSON on the `json` sub-protocol (and when none was negotiated) and a small SOAP
//! envelope on `soap`. Anything else gets an error message and the connection stays open.

use serde_json::json;
use tether_proto::Message;
use tether_tokio::{Conn, Listener};

/// The server's name as the demo reports it (the answer to `1` is "tether 0.1.0").
pub const SERVER_NAME: &str = "tether";

/// The welcome's `server` field: `name/version`, the same as the token protocol's welcome.
pub const SERVER_FIELD: &str = concat!("tether/", env!("CARGO_PKG_VERSION"));

/// The question server.
#[derive(Debug, Default)]
pub struct QuestionServer;

impl QuestionServer {
    fn reply(&self, conn: &Conn, value: serde_json::Value) {
        let text = if conn.protocol() == Some("soap") { soap_envelope(&value) } else { value.to_string() };
        // A failed send means the connection is closing; there is nobody left to answer.
        let _ = conn.send_text(text);
    }
}

/// The answer to a question, or `None` for an unknown one.
pub fn answer(question: &str) -> Option<String> {
    match question.trim() {
        "1" => Some(format!("{SERVER_NAME} {}", env!("CARGO_PKG_VERSION"))),
        "2" => Some(format!("{} {}", capitalized(std::env::consts::OS), std::env::consts::ARCH)),
        "3" => Some(chrono::Local::now().format("%H:%M:%S").to_string()),
        _ => None,
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

impl Listener for QuestionServer {
    async fn opened(&self, conn: &Conn) {
        self.reply(
            conn,
            json!({
                "type": "welcome",
                "connectionId": conn.id(),
                "subProtocol": conn.protocol(),
                "server": SERVER_FIELD,
                "version": env!("CARGO_PKG_VERSION"),
                "message": "Welcome to Tether! Ask 1, 2 or 3.",
            }),
        );
    }

    async fn message(&self, conn: &Conn, message: Message) {
        match message {
            Message::Text(text) => match answer(&text) {
                Some(answer) => self.reply(conn, json!({"type": "answer", "question": text.trim(), "answer": answer})),
                None => self.reply(
                    conn,
                    json!({"type": "error", "message": format!("unknown question {:?}: send 1 (server name), 2 (operating system) or 3 (time)", text.as_str())}),
                ),
            },
            Message::Binary(data) => self.reply(
                conn,
                json!({"type": "binary", "bytes": data.len(), "answer": format!("received {} bytes", data.len())}),
            ),
        }
    }
}

/// The same fields as a SOAP 1.2 envelope, for clients that chose `soap`.
fn soap_envelope(value: &serde_json::Value) -> String {
    let mut body = String::new();
    if let Some(fields) = value.as_object() {
        for (key, field) in fields {
            let text = match field {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            body.push_str(&format!("<{key}>{}</{key}>", xml_escape(&text)));
        }
    }
    format!(
        "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Body><tether>{body}</tether></soap:Body></soap:Envelope>"
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_the_three_questions() {
        assert_eq!(answer("1").unwrap(), format!("tether {}", env!("CARGO_PKG_VERSION")));
        assert!(answer("2").unwrap().starts_with(&capitalized(std::env::consts::OS)));
        let time = answer(" 3 ").unwrap();
        assert_eq!(time.len(), 8);
        assert!(time.bytes().enumerate().all(|(i, b)| if i == 2 || i == 5 { b == b':' } else { b.is_ascii_digit() }));
        assert_eq!(answer("4"), None);
    }

    #[test]
    fn soap_envelopes_escape_text() {
        let xml = soap_envelope(&json!({"type": "answer", "answer": "<a & b>"}));
        assert!(xml.contains("<answer>&lt;a &amp; b&gt;</answer>"), "{xml}");
    }
}
