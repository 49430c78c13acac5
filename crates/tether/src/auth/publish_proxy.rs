//! `--publish-proxy URL`: each client publish is first shown to the application's backend, which
//! may accept it, replace its data, or refuse it (to validate, moderate or persist).
//!
//! The request is a POST of JSON `{"connectionId":"…","user":"…"|null,"channel":"…","data":…}`.
//! The answer: 200 `{}` accepts; 200 `{"data":…}` accepts with that data instead; 200
//! `{"error":…}` or any 4xx refuses with `forbidden` and the backend's message (`{"error":"text"}`
//! or `{"error":{"message":"text"}}`, else a generic one); a timeout, a connection error, a 5xx or
//! any other answer refuses with `unavailable` (the publish is not made: an unavailable moderator
//! lets nothing through).

use std::time::Duration;

use hyper::Uri;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::http::ProxyClient;

/// The largest answer read from the backend: the largest `data` a hub accepts (16 MiB, the top of
/// `max_data_bytes`) plus room for the envelope. Whether a replacement fits the configured
/// `max_data_bytes` is the caller's check.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024 + 64 * 1024;

/// The backend's decision on a publish it allows.
#[derive(Debug)]
pub enum PublishOutcome {
    /// Publish the data as the client sent it.
    Accept,
    /// Publish this data instead.
    Replace(Box<RawValue>),
}

/// Why a publish is refused, as the token protocol's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The backend refused it (`forbidden`).
    Forbidden(String),
    /// The backend could not be asked, or answered nonsense (`unavailable`).
    Unavailable(String),
}

impl ProxyError {
    /// The token protocol's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Forbidden(_) => "forbidden",
            Self::Unavailable(_) => "unavailable",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Forbidden(message) | Self::Unavailable(message) => message,
        }
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for ProxyError {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PublishRequest<'a> {
    connection_id: &'a str,
    user: Option<&'a str>,
    channel: &'a str,
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct PublishAnswer {
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<Box<RawValue>>,
}

/// Asks the backend at `url` about a publish of `data` to `channel` by connection `connection_id`
/// (`user` `None` for an anonymous one), within `timeout`.
pub async fn publish_proxy(
    client: &ProxyClient,
    url: &Uri,
    timeout: Duration,
    connection_id: &str,
    user: Option<&str>,
    channel: &str,
    data: &RawValue,
) -> Result<PublishOutcome, ProxyError> {
    let body = serde_json::to_vec(&PublishRequest { connection_id, user, channel, data }).expect("JSON");
    let answer = client.post_json(url, body, timeout, MAX_ANSWER_BYTES).await.map_err(|failure| {
        tracing::warn!(%url, %failure, "publish proxy unavailable");
        ProxyError::Unavailable(format!("publish backend unavailable ({failure})"))
    })?;
    match answer.status.as_u16() {
        200 => {
            let parsed: PublishAnswer = serde_json::from_slice(&answer.body).map_err(|error| {
                tracing::warn!(%url, %error, "publish proxy answered 200 with bad JSON");
                ProxyError::Unavailable("publish backend gave a bad answer".into())
            })?;
            if let Some(error) = parsed.error.filter(|error| error.get() != "null") {
                return Err(ProxyError::Forbidden(message_of(&error)));
            }
            Ok(parsed.data.filter(|data| data.get() != "null").map_or(PublishOutcome::Accept, PublishOutcome::Replace))
        }
        400..=499 => {
            let error = serde_json::from_slice::<PublishAnswer>(&answer.body).ok().and_then(|answer| answer.error);
            Err(ProxyError::Forbidden(
                error.map_or_else(|| "refused by the publish backend".into(), |e| message_of(&e)),
            ))
        }
        status => {
            tracing::warn!(%url, status, "publish proxy answered neither 200 nor 4xx");
            Err(ProxyError::Unavailable(format!("publish backend answered {status}")))
        }
    }
}

/// The backend's message: `"text"`, `{"message":"text"}`, or a generic one.
fn message_of(error: &RawValue) -> String {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Error {
        Text(String),
        Object { message: String },
    }
    match serde_json::from_str::<Error>(error.get()) {
        Ok(Error::Text(text) | Error::Object { message: text }) if !text.is_empty() => text,
        _ => "refused by the publish backend".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.into()).unwrap()
    }

    #[test]
    fn the_backends_message_is_taken_from_a_string_or_an_object() {
        assert_eq!(message_of(&raw(r#""no swearing""#)), "no swearing");
        assert_eq!(message_of(&raw(r#"{"code":"x","message":"too long"}"#)), "too long");
        assert_eq!(message_of(&raw("42")), "refused by the publish backend");
        assert_eq!(message_of(&raw(r#""""#)), "refused by the publish backend");
    }

    #[test]
    fn errors_carry_the_token_protocol_codes() {
        assert_eq!(ProxyError::Forbidden("x".into()).code(), "forbidden");
        assert_eq!(ProxyError::Unavailable("y".into()).to_string(), "unavailable: y");
    }
}
