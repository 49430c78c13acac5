//! Why a client could not connect: one error for every step of opening a connection (URL, TCP,
//! TLS, the handshake), so callers such as `tether connect` can turn each into one sentence.

use std::fmt;

/// Why a client could not connect.
#[derive(Debug)]
pub enum ClientError {
    /// The URL is not a `ws://` or `wss://` URL.
    Url(String),
    /// Connecting or reading failed.
    Io(std::io::Error),
    /// Connecting, TLS or the handshake took longer than allowed.
    Timeout(&'static str),
    /// TLS failed (certificate not trusted, wrong name, ...).
    Tls(String),
    /// The server answered with an HTTP status other than 101 (redirects included).
    Rejected {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// `Location`, for redirects.
        location: Option<String>,
        /// The start of the body, for the error message.
        body: String,
    },
    /// The server said 101 but broke the handshake rules.
    InvalidResponse(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(why) => write!(f, "invalid URL: {why}"),
            Self::Io(error) => write!(f, "{error}"),
            Self::Timeout(what) => write!(f, "{what} timed out"),
            Self::Tls(why) => write!(f, "TLS: {why}"),
            Self::Rejected { status, reason, location, body } => {
                write!(f, "server refused the handshake: HTTP {status} {reason}")?;
                if let Some(location) = location {
                    write!(f, " (redirect to {location}, not followed)")?;
                }
                let body = body.trim();
                if !body.is_empty() {
                    write!(f, ": {body}")?;
                }
                Ok(())
            }
            Self::InvalidResponse(why) => write!(f, "invalid handshake response: {why}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<std::io::Error> for ClientError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}
