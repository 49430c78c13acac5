//! `--connect-proxy URL`: before the upgrade, the application's backend is asked who the client
//! is (as Centrifugo's connect proxy and AWS API Gateway's authorizers do).
//!
//! The request is a POST of JSON:
//! `{"connectionId":"…","remoteAddr":"ip:port","headers":{"name":"value",…},"query":"a=1&b=2","protocol":"tether.json"}`.
//! `connectionId` is an id made for this upgrade attempt (32 hex digits): the hub numbers a
//! connection only once it is open, so this is not the id later calls (publish proxy, server
//! API) see. `headers` has every request header by lower-case name (repeated ones joined with
//! `, `), cookies and `Authorization` included: the backend decides with them. `query` is the raw
//! query without `?` (`""` without one). `protocol` is the sub-protocol the server will pick, or
//! `null`.
//!
//! The answer decides: 200 with `{"user":"…","info":{…},"channels":[…]}` lets the client in (no
//! `user`, or `""`, is an anonymous connection; a `user` longer than 256 characters or with
//! control characters is a bad answer, 503); any 4xx is the client's handshake answer (status,
//! body, `Content-Type`, `WWW-Authenticate` and a valid `Retry-After` passed on; a body over 1 KiB
//! is replaced by `refused by the application` as text, never cut mid-JSON or mid-character);
//! a timeout (`--proxy-timeout`), a connection error, a 5xx or any other answer is 503 for the
//! client.

use std::time::Duration;

use hyper::Uri;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tether_proto::handshake::response::Response;
use tether_proto::handshake::server::select_protocol;
use tether_tokio::server::AuthRequest;

use super::http::ProxyClient;
use super::jwt::{is_valid_user, MAX_USER_CHARS};

/// The largest answer read from the backend (info and channels of one connection).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The largest refusal body passed on to the client; a larger one is replaced by
/// [`REPLACED_BODY`].
pub const MAX_FORWARDED_BODY: usize = 1024;

/// What the client gets instead of a refusal body over [`MAX_FORWARDED_BODY`].
pub const REPLACED_BODY: &str = "refused by the application\n";

/// The connect proxy: where, how long to wait, and the route's sub-protocols (to say which one the
/// client will get).
#[derive(Clone)]
pub struct ConnectProxy {
    client: ProxyClient,
    url: Uri,
    timeout: Duration,
    protocols: Vec<String>,
}

/// What the backend said about a client it lets in.
#[derive(Debug, Default, Deserialize)]
pub struct Admission {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub info: Option<Box<RawValue>>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConnectRequest<'a> {
    connection_id: String,
    remote_addr: String,
    headers: Map<String, Value>,
    query: &'a str,
    protocol: Option<String>,
}

impl ConnectProxy {
    pub fn new(client: ProxyClient, url: Uri, timeout: Duration, protocols: &[&str]) -> Self {
        Self { client, url, timeout, protocols: protocols.iter().map(|p| (*p).to_owned()).collect() }
    }

    /// Asks the backend about `request`: its admission, or the response the client gets instead.
    pub async fn ask(&self, request: &AuthRequest) -> Result<Admission, Response> {
        let body = serde_json::to_vec(&self.body(request)).expect("JSON of strings");
        let answer = match self.client.post_json(&self.url, body, self.timeout, MAX_ANSWER_BYTES).await {
            Ok(answer) => answer,
            Err(failure) => {
                if let Some(suppressed) = failure.to_log() {
                    tracing::warn!(url = %self.url, %failure, suppressed, "connect proxy unavailable: 503");
                }
                return Err(unavailable());
            }
        };
        let status = answer.status.as_u16();
        match status {
            200 => {
                let admission = serde_json::from_slice::<Admission>(&answer.body).map_err(|error| {
                    tracing::warn!(url = %self.url, %error, "connect proxy answered 200 with bad JSON: 503");
                    unavailable()
                })?;
                if admission.user.as_deref().is_some_and(|user| !user.is_empty() && !is_valid_user(user)) {
                    tracing::warn!(
                        url = %self.url,
                        "connect proxy answered a user that is not 1..={MAX_USER_CHARS} characters without control characters: 503"
                    );
                    return Err(unavailable());
                }
                Ok(admission)
            }
            400..=499 => {
                let mut response = Response::new(status);
                if let Some(value) = answer.www_authenticate.as_ref().and_then(|v| v.to_str().ok()) {
                    response = response.header("WWW-Authenticate", value);
                }
                if let Some(value) =
                    answer.retry_after.as_ref().and_then(|v| v.to_str().ok()).filter(|v| is_retry_after(v))
                {
                    response = response.header("Retry-After", value.trim());
                }
                if answer.body.len() > MAX_FORWARDED_BODY {
                    return Err(response.text(REPLACED_BODY));
                }
                let content_type = answer.content_type.as_ref().and_then(|v| v.to_str().ok());
                response = response.header("Content-Type", content_type.unwrap_or("text/plain; charset=utf-8"));
                response.body = answer.body.to_vec();
                Err(response)
            }
            _ => {
                tracing::warn!(url = %self.url, status, "connect proxy answered neither 200 nor 4xx: 503");
                Err(unavailable())
            }
        }
    }

    fn body<'a>(&self, request: &'a AuthRequest) -> ConnectRequest<'a> {
        let mut headers = Map::new();
        for header in &request.request.headers.0 {
            let value = String::from_utf8_lossy(&header.value);
            match headers.entry(header.name.to_ascii_lowercase()) {
                serde_json::map::Entry::Occupied(mut seen) => {
                    if let Value::String(text) = seen.get_mut() {
                        text.push_str(", ");
                        text.push_str(&value);
                    }
                }
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(Value::String(value.into_owned()));
                }
            }
        }
        ConnectRequest {
            connection_id: request_id(),
            remote_addr: request.remote_addr.to_string(),
            headers,
            query: request.query().unwrap_or(""),
            protocol: select_protocol(&self.protocols, &request.request.protocols),
        }
    }
}

fn unavailable() -> Response {
    Response::new(503).text("authorization backend unavailable\n")
}

/// Whether a backend's `Retry-After` may be passed on (RFC 9110 §10.2.3): delay seconds (digits)
/// or an HTTP date (IMF-fixdate as RFC 9110 requires senders to write it; chrono's parser also
/// takes full day and month names, which is harmless). Anything else is dropped rather than
/// handed to a client that may misread it.
fn is_retry_after(value: &str) -> bool {
    let value = value.trim();
    if !value.is_empty() && value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    chrono::NaiveDateTime::parse_from_str(value, "%a, %d %b %Y %H:%M:%S GMT").is_ok()
}

/// A fresh id for one upgrade attempt: 128 random bits in hex.
fn request_id() -> String {
    super::random_hex(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (request_id(), request_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn retry_after_is_delay_seconds_or_an_http_date() {
        for good in ["0", "120", " 30 ", "Sun, 06 Nov 1994 08:49:37 GMT"] {
            assert!(is_retry_after(good), "{good:?}");
        }
        for bad in ["", "-1", "1.5", "soon", "12345678901", "Sunday, 06-Nov-94 08:49:37 GMT", "120\r\nX: y"] {
            assert!(!is_retry_after(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_admission_may_omit_everything() {
        let admission: Admission = serde_json::from_str("{}").unwrap();
        assert!(admission.user.is_none() && admission.info.is_none() && admission.channels.is_none());
        let full: Admission = serde_json::from_str(r#"{"user":"ada","info":{"a":1},"channels":["x"]}"#).unwrap();
        assert_eq!((full.user.as_deref(), full.info.unwrap().get()), (Some("ada"), r#"{"a":1}"#));
    }
}
