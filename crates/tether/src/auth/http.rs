//! The HTTP client of the connect and publish proxies: one per process, connection-pooled
//! (hyper-util's client), so that a busy server keeps a few warm connections to its backend
//! instead of a TCP handshake per upgrade or per publish.
//!
//! Each call has one deadline for everything (connecting, sending, the answer's head and body),
//! and reads at most a given number of bytes of the answer: a slow or chatty backend costs a
//! bounded time and memory per call. Plain `http://` only (the backend is expected on a private
//! network or the same host); `tether serve` refuses an `https://` proxy URL at startup.
//!
//! At most [`MAX_PROXY_CALLS`] calls are in flight at once per client (`tether serve` gives the
//! connect proxy and the publish proxy a client each, so that a flood of upgrades against a slow
//! backend cannot starve signed-in users' publishes, nor the reverse): each call holds a TCP
//! connection to the backend that `max_connections` does not count, so without a bound N
//! publishing clients would open N connections to it. A call beyond the bound fails at once
//! ([`Failure::Busy`]) rather than waiting: a backend that slow is unavailable. Those refusals
//! cost nothing, so their log lines are thinned to one a second ([`Failure::to_log`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

use crate::log_throttle::LogThrottle;

/// Idle connections kept per backend host: enough for bursts of upgrades or publishes, few enough
/// that an idle server holds almost nothing.
const MAX_IDLE_PER_HOST: usize = 32;

/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Calls to the backend in flight at once, per proxy (docs/limits.md).
pub const MAX_PROXY_CALLS: usize = 256;

/// The pooled client; cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct ProxyClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// One permit per call in flight.
    in_flight: Arc<Semaphore>,
}

/// A backend's answer, its body cut to the limit the caller gave.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub www_authenticate: Option<HeaderValue>,
    pub retry_after: Option<HeaderValue>,
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
    /// [`MAX_PROXY_CALLS`] calls were already in flight.
    Busy,
}

impl Failure {
    /// Whether to log this failure now: `Some(n)` to log it, `n` being the [`Failure::Busy`]
    /// refusals left unlogged before it (Busy is logged once a second at most: a saturated backend
    /// would otherwise write a line per refused call); `None` to only count it.
    pub fn to_log(&self) -> Option<u64> {
        static BUSY: LogThrottle = LogThrottle::new();
        if *self == Self::Busy {
            BUSY.event(std::time::Instant::now())
        } else {
            Some(0)
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("no answer in time"),
            Self::Transport(error) => write!(f, "request failed: {error}"),
            Self::TooLarge => f.write_str("answer too large"),
            Self::Busy => f.write_str("too many calls in flight"),
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
        Self::with_max_calls(MAX_PROXY_CALLS)
    }

    /// A client with at most `max_calls` calls in flight (tests use a small bound).
    pub fn with_max_calls(max_calls: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(connector);
        Self { client, in_flight: Arc::new(Semaphore::new(max_calls)) }
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
        // Held until the answer is read (or the deadline passes), never waited for.
        let _permit = self.in_flight.try_acquire().map_err(|_| Failure::Busy)?;
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
                retry_after: head.headers.get(hyper::header::RETRY_AFTER).cloned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend that answers `{}` after `delay`.
    async fn slow_backend(delay: Duration) -> Uri {
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move || async move {
                tokio::time::sleep(delay).await;
                "{}"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/").parse().unwrap()
    }

    #[tokio::test]
    async fn calls_beyond_the_bound_fail_at_once_and_a_finished_call_frees_its_place() {
        let url = slow_backend(Duration::from_millis(500)).await;
        let client = ProxyClient::with_max_calls(2);
        let call = || {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { client.post_json(&url, b"{}".to_vec(), Duration::from_secs(5), 1024).await })
        };
        let (first, second) = (call(), call());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        assert_eq!(call().await.unwrap().unwrap_err(), Failure::Busy);
        assert!(started.elapsed() < Duration::from_millis(100), "refused without waiting");
        assert_eq!(first.await.unwrap().unwrap().status, StatusCode::OK);
        assert_eq!(second.await.unwrap().unwrap().status, StatusCode::OK);
        assert_eq!(call().await.unwrap().unwrap().status, StatusCode::OK, "the permits came back");
        assert_eq!(ProxyClient::new().in_flight.available_permits(), MAX_PROXY_CALLS);
    }

    #[test]
    fn failures_other_than_busy_are_logged_every_time() {
        // Busy goes through a `LogThrottle` (tested in `log_throttle.rs`), shared by every test
        // of the process, so only the others are asserted here.
        assert_eq!((Failure::Timeout.to_log(), Failure::Timeout.to_log()), (Some(0), Some(0)));
        assert_eq!(Failure::TooLarge.to_log(), Some(0));
    }
}
