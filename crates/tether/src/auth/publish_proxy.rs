//! `--publish-proxy URL`: each client publish is first shown to the application's backend, which
//! may accept it, replace its data, or refuse it (to validate, moderate or persist).
//!
//! The request is a POST of JSON `{"connectionId":"…","user":"…"|null,"channel":"…","data":…}`.
//! The answer: 200 `{}` accepts; 200 `{"data":…}` accepts with that data instead; 200
//! `{"error":…}` or any 4xx refuses with `forbidden` and the backend's message (`{"error":"text"}`
//! or `{"error":{"message":"text"}}`, else a generic one); a timeout, a connection error, a 5xx or
//! any other answer refuses with `unavailable` (the publish is not made: an unavailable moderator
//! lets nothing through). The client is then told only [`UNAVAILABLE`]: what went wrong (a
//! connection error naming the backend's address, a status) is for the server's log.

use std::time::Duration;

use hyper::Uri;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::http::ProxyClient;

/// Room in the backend's answer for what surrounds a replacement `data` of `max_data_bytes`: the
/// answer is read up to `max_data_bytes` plus this, so a chatty backend costs no more memory than
/// a client's own publish. Whether a replacement fits `max_data_bytes` is the caller's check.
pub const ANSWER_ROOM: usize = 64 * 1024;

/// What a client is told when the backend could not decide (the details go to the log).
pub const UNAVAILABLE: &str = "the application's backend is unavailable";

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

/// Where and how the publish proxy asks: the backend's URL, the deadline of each call, and the
/// hub's `max_data_bytes` (which bounds the answer read).
#[derive(Debug, Clone)]
pub struct PublishBackend {
    pub url: Uri,
    pub timeout: Duration,
    pub max_data_bytes: usize,
}

/// Asks the backend about a publish of `data` to `channel` by connection `connection_id`
/// (`user` `None` for an anonymous one).
pub async fn publish_proxy(
    client: &ProxyClient,
    backend: &PublishBackend,
    connection_id: &str,
    user: Option<&str>,
    channel: &str,
    data: &RawValue,
) -> Result<PublishOutcome, ProxyError> {
    let url = &backend.url;
    let body = serde_json::to_vec(&PublishRequest { connection_id, user, channel, data }).expect("JSON");
    let max_answer = backend.max_data_bytes.saturating_add(ANSWER_ROOM);
    let answer = client.post_json(url, body, backend.timeout, max_answer).await.map_err(|failure| {
        if let Some(suppressed) = failure.to_log() {
            tracing::warn!(%url, %failure, suppressed, "publish proxy unavailable");
        }
        ProxyError::Unavailable(UNAVAILABLE.into())
    })?;
    match answer.status.as_u16() {
        200 => {
            let parsed: PublishAnswer = serde_json::from_slice(&answer.body).map_err(|error| {
                tracing::warn!(%url, %error, "publish proxy answered 200 with bad JSON");
                ProxyError::Unavailable(UNAVAILABLE.into())
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
            Err(ProxyError::Unavailable(UNAVAILABLE.into()))
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

    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::post;

    type Seen = Arc<Mutex<Vec<serde_json::Value>>>;

    /// A backend on 127.0.0.1 whose answer depends on the published `data.text`: `ok` accepts,
    /// `shout` replaces, `bad` is a 403 with a message, `bad200` a 200 with an error, `crash` a
    /// 500, `slow` answers after 5 s, `nonsense` is a 200 that is not JSON. It records each request.
    async fn backend() -> (SocketAddr, Seen) {
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route(
                "/publish",
                post(|State(seen): State<Seen>, body: String| async move {
                    let request: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let text = request["data"]["text"].as_str().unwrap_or("").to_owned();
                    seen.lock().unwrap().push(request);
                    match text.as_str() {
                        "ok" => (StatusCode::OK, "{}").into_response(),
                        "shout" => (StatusCode::OK, r#"{"data":{"text":"OK!"}}"#).into_response(),
                        "bad" => (StatusCode::FORBIDDEN, r#"{"error":"no swearing"}"#).into_response(),
                        "bad200" => (StatusCode::OK, r#"{"error":{"code":"x","message":"too long"}}"#).into_response(),
                        "crash" => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
                        "huge" => {
                            let data = "x".repeat(200 * 1024);
                            (StatusCode::OK, format!(r#"{{"data":"{data}"}}"#)).into_response()
                        }
                        "slow" => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            (StatusCode::OK, "{}").into_response()
                        }
                        _ => (StatusCode::OK, "not json").into_response(),
                    }
                }),
            )
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, seen)
    }

    fn backend_at(addr: SocketAddr, timeout: Duration, max_data_bytes: usize) -> PublishBackend {
        PublishBackend { url: format!("http://{addr}/publish").parse().unwrap(), timeout, max_data_bytes }
    }

    async fn ask_with(
        client: &ProxyClient,
        backend: &PublishBackend,
        text: &str,
    ) -> Result<PublishOutcome, ProxyError> {
        let data = raw(&serde_json::json!({ "text": text }).to_string());
        publish_proxy(client, backend, "c-1", Some("ada"), "chat:room", &data).await
    }

    async fn ask(client: &ProxyClient, addr: SocketAddr, text: &str) -> Result<PublishOutcome, ProxyError> {
        ask_with(client, &backend_at(addr, Duration::from_millis(300), 16 << 20), text).await
    }

    #[tokio::test]
    async fn the_backend_accepts_replaces_or_refuses_and_sees_who_published_what() {
        let (addr, seen) = backend().await;
        let client = ProxyClient::new();
        assert!(matches!(ask(&client, addr, "ok").await, Ok(PublishOutcome::Accept)));
        match ask(&client, addr, "shout").await {
            Ok(PublishOutcome::Replace(data)) => assert_eq!(data.get(), r#"{"text":"OK!"}"#),
            other => panic!("expected a replacement, got {other:?}"),
        }
        assert_eq!(ask(&client, addr, "bad").await.unwrap_err(), ProxyError::Forbidden("no swearing".into()));
        assert_eq!(ask(&client, addr, "bad200").await.unwrap_err(), ProxyError::Forbidden("too long".into()));
        let request = seen.lock().unwrap()[0].clone();
        assert_eq!(
            request,
            serde_json::json!({"connectionId":"c-1","user":"ada","channel":"chat:room","data":{"text":"ok"}})
        );
        let backend = backend_at(addr, Duration::from_secs(1), 1024);
        let anonymous = publish_proxy(&client, &backend, "c-2", None, "c", &raw("1")).await;
        assert!(anonymous.is_err(), "data 1 has no text: the backend answers nonsense");
        assert_eq!(seen.lock().unwrap().last().unwrap()["user"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn a_failing_slow_or_absent_backend_refuses_with_unavailable() {
        let (addr, _) = backend().await;
        let client = ProxyClient::new();
        for text in ["crash", "nonsense"] {
            let error = ask(&client, addr, text).await.unwrap_err();
            assert_eq!(error.code(), "unavailable", "{text}: {error}");
        }
        let started = std::time::Instant::now();
        assert_eq!(ask(&client, addr, "slow").await.unwrap_err().code(), "unavailable");
        assert!(started.elapsed() < Duration::from_secs(2), "the timeout decides, not the backend");
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(ask(&client, nobody, "ok").await.unwrap_err().code(), "unavailable");
    }

    #[tokio::test]
    async fn the_client_is_told_only_that_the_backend_is_unavailable() {
        let (addr, _) = backend().await;
        let client = ProxyClient::new();
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for (addr, text) in [(nobody, "ok"), (addr, "crash"), (addr, "nonsense"), (addr, "slow")] {
            let error = ask(&client, addr, text).await.unwrap_err();
            assert_eq!(error, ProxyError::Unavailable(UNAVAILABLE.into()), "{text}");
        }
    }

    #[tokio::test]
    async fn the_answer_is_read_up_to_max_data_bytes_and_some_room() {
        let (addr, _) = backend().await;
        let client = ProxyClient::new();
        // A 200 KiB replacement: over 64 KiB + 64 KiB of room, within 1 MiB + room.
        let small = backend_at(addr, Duration::from_secs(2), 64 * 1024);
        assert_eq!(ask_with(&client, &small, "huge").await.unwrap_err().code(), "unavailable");
        let large = backend_at(addr, Duration::from_secs(2), 1 << 20);
        assert!(matches!(ask_with(&client, &large, "huge").await, Ok(PublishOutcome::Replace(_))));
    }

    #[tokio::test]
    async fn a_publish_beyond_the_calls_in_flight_is_unavailable_at_once() {
        let (addr, _) = backend().await;
        let client = ProxyClient::with_max_calls(1);
        // The slow call holds the one permit for up to 3 s (the backend takes 5): long enough
        // that a loaded machine cannot see it end before the second call is made.
        let slow = {
            let client = client.clone();
            tokio::spawn(
                async move { ask_with(&client, &backend_at(addr, Duration::from_secs(3), 16 << 20), "slow").await },
            )
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        assert_eq!(ask(&client, addr, "ok").await.unwrap_err(), ProxyError::Unavailable(UNAVAILABLE.into()));
        assert!(started.elapsed() < Duration::from_millis(100), "not queued behind the slow call");
        assert_eq!(slow.await.unwrap().unwrap_err().code(), "unavailable");
    }

    #[test]
    fn errors_carry_the_token_protocol_codes() {
        assert_eq!(ProxyError::Forbidden("x".into()).code(), "forbidden");
        assert_eq!(ProxyError::Unavailable("y".into()).to_string(), "unavailable: y");
    }
}
