//! The one place a `ws://` or `wss://` URL is taken apart: TLS or not, the address to connect to,
//! the `Host` header and the request target. The client, `tether connect` and `tether bench` all
//! use it, so the three agree on every URL.

use std::fmt;

use super::error::ClientError;

/// A `ws://` or `wss://` URL taken apart into what opening a connection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: TLS before the handshake.
    pub tls: bool,
    /// The host to connect to and to name in TLS: a name or an address, IPv6 without brackets.
    pub host: String,
    /// The port, the scheme's default (80, 443) when the URL names none.
    pub port: u16,
    /// The path, `/` at least.
    pub path: String,
    /// The query, without its `?`.
    pub query: Option<String>,
}

/// Why a string is not a WebSocket URL. Typed, so that each tool can say it in its own words
/// (`tether connect` also takes `http(s)://`, for instance); `Display` gives the reason alone, for
/// callers to frame, and [`ClientError::Url`] carries that text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsUrlError {
    /// Not a URL at all: the URL parser's reason (`relative URL without a base`, `empty host`).
    Invalid(String),
    /// A URL, but its scheme is neither `ws` nor `wss`.
    Scheme(String),
    /// A URL without a host (`ws:/path`).
    NoHost,
}

impl fmt::Display for WsUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(why) => f.write_str(why),
            Self::Scheme(scheme) => write!(f, "scheme {scheme:?}: use ws:// or wss://"),
            Self::NoHost => f.write_str("no host"),
        }
    }
}

impl std::error::Error for WsUrlError {}

impl From<WsUrlError> for ClientError {
    fn from(error: WsUrlError) -> Self {
        Self::Url(error.to_string())
    }
}

impl WsUrl {
    /// Parses `url`: a `ws://` or `wss://` URL with a host, or why not.
    pub fn parse(url: &str) -> Result<Self, WsUrlError> {
        let parsed = url::Url::parse(url).map_err(|e| WsUrlError::Invalid(e.to_string()))?;
        let tls = match parsed.scheme() {
            "ws" => false,
            "wss" => true,
            other => return Err(WsUrlError::Scheme(other.to_owned())),
        };
        let host = parsed.host_str().filter(|host| !host.is_empty()).ok_or(WsUrlError::NoHost)?;
        Ok(Self {
            tls,
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: parsed.port_or_known_default().unwrap_or(if tls { 443 } else { 80 }),
            path: parsed.path().to_owned(),
            query: parsed.query().map(str::to_owned),
        })
    }

    /// `host:port` with the port always shown (IPv6 in brackets): how error messages name the
    /// server, since which port was tried is what one needs to know when it fails.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Host` header: the port only when it is not the scheme's default, as browsers send it
    /// (RFC 9110 §7.2; some servers compare it with their own name).
    pub fn host_header(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The request target of the `GET` line: the path and, if any, `?` and the query.
    pub fn target(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }
}

/// The URL again, normalized: `ws://`, the `Host` header's form of host and port, the target.
impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", if self.tls { "wss" } else { "ws" }, self.host_header(), self.target())
    }
}
