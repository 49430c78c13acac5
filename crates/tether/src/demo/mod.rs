//! The demos `tether serve` hosts out of the box, and the plain-HTTP side that serves their pages.
//!
//! - `/` (WebSocket, sub-protocols `json` and `soap`): the tutorial's question server
//!   ([`question`]); `GET /` serves its page.
//! - `/echo` (WebSocket): echoes every message ([`echo`]).
//! - `/tether` (WebSocket, sub-protocols `tether.json` and `json`): the token protocol of
//!   `docs/protocol.md`, with the chat (`/chat.html`), live stream (`/live.html`) and game
//!   (`/game.html`) demos built on the browser library `/tether.js`.
//! - `GET /demo/config`: `{"tokens":true}` with `--demo-tokens` (then `GET /demo/token?user=NICK`
//!   signs a short-lived token, [`crate::auth::demo_tokens`]), `{"tokens":false}` otherwise.
//! - `GET /healthz`: `ok` while the process serves HTTP at all (liveness).
//! - `GET /readyz`: `ready` (200) while the server accepts new connections, `not ready` (503) when
//!   it is full or shutting down (readiness: a load balancer stops sending clients).
//!
//! The pages are embedded in the binary, so `tether serve` needs no files. With `--static DIR`,
//! files in DIR are served first and the embedded pages are the fallback. With `--no-demos` the
//! embedded pages are not served (the token protocol's `/tether.js` neither: an application that
//! uses it serves its own copy with `--static`).

pub mod echo;
pub mod question;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use tether_tokio::{CountedConnection, ServerHandle};
use tower_http::services::ServeDir;

use crate::auth::DemoTokens;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const CHAT_HTML: &str = include_str!("../../assets/chat.html");
const LIVE_HTML: &str = include_str!("../../assets/live.html");
const GAME_HTML: &str = include_str!("../../assets/game.html");
const TETHER_JS: &str = include_str!("../../assets/tether.js");
const DEMO_CSS: &str = include_str!("../../assets/demo.css");

/// The router for plain HTTP requests: the health endpoints and `/demo/config` (with
/// `demo_tokens`, `/demo/token` too), then `static_dir`, then (with `demos`) the embedded pages.
/// `server` is set once the server is bound; until then `/readyz` says not ready.
pub fn http_router(
    static_dir: Option<PathBuf>,
    demos: bool,
    demo_tokens: Option<DemoTokens>,
    server: Arc<OnceLock<ServerHandle>>,
) -> Router {
    let not_found = || async { (StatusCode::NOT_FOUND, "not found\n") };
    let embedded = if demos {
        Router::new()
            .route("/", get(|| async { Html(INDEX_HTML) }))
            .route("/index.html", get(|| async { Html(INDEX_HTML) }))
            .route("/chat.html", get(|| async { Html(CHAT_HTML) }))
            .route("/live.html", get(|| async { Html(LIVE_HTML) }))
            .route("/game.html", get(|| async { Html(GAME_HTML) }))
            .route("/demo.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], DEMO_CSS) }))
            .route(
                "/tether.js",
                get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], TETHER_JS) }),
            )
            .fallback(not_found)
    } else {
        Router::new().fallback(not_found)
    };
    let pages = match static_dir {
        Some(dir) => Router::new().fallback_service(ServeDir::new(dir).fallback(embedded)),
        None => embedded,
    };
    let text = |status: StatusCode, body: &'static str| (status, [(header::CONTENT_TYPE, "text/plain")], body);
    Router::new()
        .route("/healthz", get(move || async move { text(StatusCode::OK, "ok\n").into_response() }))
        .route(
            "/readyz",
            get(move |counted: Option<Extension<CountedConnection>>| async move {
                // The probe's own connection does not make the server look full (it counts
                // against max_connections unless the server answered it past the limit).
                let own = usize::from(counted.is_some_and(|Extension(CountedConnection(counted))| counted));
                let ready = server.get().is_some_and(|server| server.is_accepting_besides(own));
                if ready {
                    text(StatusCode::OK, "ready\n").into_response()
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
                }
            }),
        )
        .merge(DemoTokens::router(demo_tokens))
        .merge(pages)
}
