//! The server HTTP API (docs/server-api.md): `POST /api/{method}` with a JSON body and the
//! `X-API-Key` header, for the application's backend to publish, message and disconnect clients,
//! subscribe them server-side, and read presence, history, channels and counts.
//!
//! Without a key configured [`router`] is never mounted, so every `/api` path is the HTTP side's
//! plain 404. With `--internal-port` it is mounted only on that second listener. A request is
//! checked in this order, so that a caller without the key learns nothing (not even which methods
//! exist) and the body is read only for an authenticated call of a real method:
//! 401 key → 405 method → 404 API method → 413 body size → 400 arguments → the method's own.
//!
//! Every answer is counted in `tether_api_requests_total{method,status}` when metrics are on
//! ([`ApiState::with_calls`]), the method labelled as it is logged: a known one, or `(unknown)`.
//!
//! A refused key (401) is logged at warn with the peer's address, at most one line a second
//! (each line counting the refusals it stood for), so that key guessing shows in the log without
//! letting a guesser flood it. Neither the presented key nor the real one is ever logged.
//!
//! - the constant-time key check is `crate::auth::secret_check` (the key is a settings `Secret`,
//!   never printed).
//! - `methods.rs`: one function per method; `wire.rs`: the request and answer shapes;
//!   `error.rs`: every refusal and its status.

mod error;
mod methods;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use tether_hub::Hub;

use crate::auth::secret_check::SecretCheck;
use crate::log_throttle::LogThrottle;
use crate::metrics::ApiCalls;
use error::ApiError;

/// Room in a request body for what surrounds `data` (the method's other fields, a broadcast's
/// channel list), as on `/tether`.
pub const BODY_ROOM: usize = 64 * 1024;

/// The header that carries the key.
pub const KEY_HEADER: &str = "x-api-key";

/// What the API's handler holds: the hub, the key's digest, the start time and the body cap.
#[derive(Clone)]
pub struct ApiState {
    context: methods::Context,
    key: SecretCheck,
    body_limit: usize,
    /// The warn lines about refused keys: one a second at most.
    refusals: Arc<LogThrottle>,
    /// `tether_api_requests_total`, with `--metrics`.
    calls: Option<ApiCalls>,
}

impl ApiState {
    /// The API over `hub`, open to callers with `key`. `started` is when the server started
    /// (`info`'s uptime). Bodies may be the hub's `max_data_bytes` plus [`BODY_ROOM`].
    pub fn new(hub: Hub, key: &str, started: Instant) -> Self {
        let body_limit = hub.config().max_data_bytes.saturating_add(BODY_ROOM);
        Self {
            context: methods::Context { hub, started },
            key: SecretCheck::new(key),
            body_limit,
            refusals: Arc::default(),
            calls: None,
        }
    }

    /// Counts every answer in `calls` (the metrics page's `tether_api_requests_total`).
    pub fn with_calls(self, calls: ApiCalls) -> Self {
        Self { calls: Some(calls), ..self }
    }
}

/// The routes `/api/{method}`, to merge into the HTTP router of a listener.
pub fn router(state: ApiState) -> Router {
    let body_limit = state.body_limit;
    Router::new()
        .route("/api/{*method}", any(handle))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(Arc::new(state))
}

async fn handle(State(api): State<Arc<ApiState>>, request: Request) -> Response {
    let method = request.uri().path().strip_prefix("/api/").unwrap_or_default().to_owned();
    // The listener's address of the caller, when it gives one (`ConnectInfo`).
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let answer = answer(&api, &method, request).await;
    // Logged: the method when it is one (a caller's own text is not, whatever it holds: a key
    // pasted into the wrong place, line breaks), the status and the code. Never the headers.
    let logged = methods::METHODS.iter().find(|known| **known == method).copied().unwrap_or("(unknown)");
    if let Some(calls) = &api.calls {
        let status = answer.as_ref().map_or_else(|error| error.status.as_u16(), |_| 200);
        calls.record(logged, status);
    }
    match answer {
        Ok(json) => {
            tracing::debug!(method = logged, status = 200, "server API call");
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        Err(error) if error.status == StatusCode::UNAUTHORIZED => {
            if let Some(suppressed) = api.refusals.event(Instant::now()) {
                let peer = peer.map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
                tracing::warn!(%peer, method = logged, suppressed, "server API call refused: a missing or wrong X-API-Key");
            }
            error.into_response()
        }
        Err(error) => {
            tracing::debug!(method = logged, status = error.status.as_u16(), code = %error.code, "server API call refused");
            error.into_response()
        }
    }
}

async fn answer(api: &ApiState, method: &str, request: Request) -> Result<String, ApiError> {
    let presented = request.headers().get(KEY_HEADER);
    if !presented.is_some_and(|key| api.key.matches(key.as_bytes())) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a missing or wrong X-API-Key"));
    }
    if request.method() != Method::POST {
        let message = format!("{} /api/{method}: the API takes POST", request.method());
        return Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message));
    }
    if !methods::METHODS.contains(&method) {
        let shown: String = method.chars().take(64).collect();
        return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_method", format!("no method {shown:?}")));
    }
    let body = Bytes::from_request(request, &()).await.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "too_large", format!("the body is larger than {} bytes", api.body_limit))
        } else {
            ApiError::new(status, "bad_request", rejection.body_text())
        }
    })?;
    methods::call(&api.context, method, &body).await
}
