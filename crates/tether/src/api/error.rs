//! [`ApiError`]: every refusal of the server API, as an HTTP status and the
//! `{"error":{"code":"...","message":"..."}}` body, and the one place a hub error becomes a status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tether_hub::HubError;

/// A refused API request: the status, the machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self { status, code: code.to_owned(), message: message.into() }
    }

    /// 400 `bad_request`: arguments that are missing, of the wrong type or out of range.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The body did not parse: 400 `bad_json` when it is not JSON at all, 400 `bad_request` when
    /// it is JSON of the wrong shape (an unknown field, a missing one, a wrong type).
    pub fn from_json(error: &serde_json::Error) -> Self {
        match error.classify() {
            serde_json::error::Category::Data => Self::bad_request(error.to_string()),
            _ => Self::new(StatusCode::BAD_REQUEST, "bad_json", format!("the body is not JSON: {error}")),
        }
    }

    /// The `error` object of the answer (also one entry of a `broadcast` answer).
    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code.clone(), message: self.message.clone() }
    }
}

/// What a hub refusal means for the caller of the API. The hub's codes are kept; the status says
/// whose fault it is: 400 the arguments, 403 a hook's refusal, 409 the state the request found,
/// 410 a connection that is not open, 413 the size, 503 the channel engine (Redis) or a hook's
/// backend that cannot be reached now (ask again).
impl From<HubError> for ApiError {
    fn from(error: HubError) -> Self {
        let status = match &error {
            HubError::BadRequest(_) | HubError::InvalidToken(_) => StatusCode::BAD_REQUEST,
            // A connection's max_subscriptions or the server's max_channels: retrying will not
            // help until something else changes, which is not what 429 tells a client.
            HubError::LimitExceeded(_) | HubError::TooManyChannels(_) => StatusCode::BAD_REQUEST,
            HubError::NotSubscribed(_) => StatusCode::CONFLICT,
            HubError::NotFound(_) => StatusCode::GONE,
            HubError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HubError::Forbidden(_) | HubError::Refused { .. } => StatusCode::FORBIDDEN,
            HubError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            // A variant added to the hub later: the request, not the server, until it is mapped.
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error.code(), error.to_string())
    }
}

/// The `error` object of an answer.
#[derive(Serialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

#[derive(Serialize)]
struct Envelope {
    error: ErrorBody,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&Envelope { error: self.body() }).expect("serializable");
        let mut response = (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_errors_keep_their_code_and_get_the_documented_status() {
        let cases = [
            (HubError::BadRequest("x".into()), 400, "bad_request"),
            (HubError::LimitExceeded(3), 400, "limit_exceeded"),
            (HubError::TooManyChannels(3), 400, "limit_exceeded"),
            (HubError::NotSubscribed("c".into()), 409, "not_subscribed"),
            (HubError::NotFound("id".into()), 410, "not_found"),
            (HubError::TooLarge(10), 413, "too_large"),
            (HubError::Forbidden("no".into()), 403, "forbidden"),
            (HubError::Refused { code: "banned".into(), message: "no".into() }, 403, "banned"),
            (HubError::Unavailable("redis is down".into()), 503, "unavailable"),
        ];
        for (hub, status, code) in cases {
            let api = ApiError::from(hub);
            assert_eq!((api.status.as_u16(), api.code.as_str()), (status, code));
            assert!(!api.message.is_empty());
        }
    }

    #[test]
    fn syntax_errors_are_bad_json_and_shape_errors_bad_request() {
        let syntax = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert_eq!(ApiError::from_json(&syntax).code, "bad_json");
        let shape = serde_json::from_str::<u16>("\"x\"").unwrap_err();
        assert_eq!(ApiError::from_json(&shape).code, "bad_request");
    }
}
