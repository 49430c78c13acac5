//! The HTTP client of the connect and publish proxies: one per process, connection-pooled
//! (hyper-util's client), so that a busy server keeps a few warm connections to its backend
//! instead of a TCP handshake per upgrade or per publish.
//!
//! Each call has one deadline for everything (connecting, sending, the answer's head and body),
//! and reads at most a given number of bytes of the answer: a slow or chatty backend costs a
//! bounded time and memory per call. Plain `http://` only (the backend is expected on a private
//! network or the same host); `tether serve` refuses an `https://` proxy URL at startup.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Idle connections kept per backend host: enough for bursts of upgrades or publishes, few enough
/// that an idle server holds almost nothing.
const MAX_IDLE_PER_HOST: usize = 32;

/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The pooled client; cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct ProxyClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A backend's answer, its body cut to the limit the caller gave.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub www_authenticate: Option<HeaderValue>,
    pub body: Bytes,
}

/// Why there is no answer: each is the backend being unavailable, as far as the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    /// Could not connect or send, or the answer broke off.
    Transport(String),
    /// The answer's body was larger than the limit.
    TooLarge,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("no answer in time"),
            Self::Transport(error) => write!(f, "request failed: {error}"),
            Self::TooLarge => f.write_str("answer too large"),
        }
    }
}

impl Default for ProxyClient {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyClient {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(connector);
        Self { client }
    }

    /// POSTs `body` as JSON to `url`; the whole exchange within `timeout`, the answer's body read
    /// up to `max_body` bytes.
    pub async fn post_json(
        &self,
        url: &Uri,
        body: Vec<u8>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Answer, Failure> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| Failure::Transport(error_chain(&e)))?;
            let (head, body) = response.into_parts();
            let body = Limited::new(body, max_body).collect().await.map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    Failure::TooLarge
                } else {
                    Failure::Transport(e.to_string())
                }
            })?;
            Ok(Answer {
                status: head.status,
                content_type: head.headers.get(CONTENT_TYPE).cloned(),
                www_authenticate: head.headers.get(hyper::header::WWW_AUTHENTICATE).cloned(),
                body: body.to_bytes(),
            })
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| Failure::Timeout)?
    }
}

/// An error with its sources: hyper-util's own text is only "client error (Connect)".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
