//! The demos `tether serve` hosts out of the box, and the plain-HTTP side that serves their pages.
//!
//! - `/` (WebSocket, sub-protocols `json` and `soap`): the tutorial's question server
//!   ([`question`]); `GET /` serves its page.
//! - `/echo` (WebSocket): echoes every message ([`echo`]).
//! - `/tether` (WebSocket, sub-protocols `tether.json` and `json`): the token protocol of
//!   `docs/protocol.md`, with the chat (`/chat.html`), live stream (`/live.html`) and game
//!   (`/game.html`) demos built on the browser library `/tether.js`.
//! - `GET /healthz`: `ok`, for load balancers.
//!
//! The pages are embedded in the binary, so `tether serve` needs no files. With `--static DIR`,
//! files in DIR are served first and the embedded pages are the fallback.

pub mod echo;
pub mod question;

use std::path::PathBuf;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use tower_http::services::ServeDir;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const CHAT_HTML: &str = include_str!("../../assets/chat.html");
const LIVE_HTML: &str = include_str!("../../assets/live.html");
const GAME_HTML: &str = include_str!("../../assets/game.html");
const TETHER_JS: &str = include_str!("../../assets/tether.js");
const DEMO_CSS: &str = include_str!("../../assets/demo.css");

/// The router for plain HTTP requests.
pub fn http_router(static_dir: Option<PathBuf>) -> Router {
    let embedded = Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/index.html", get(|| async { Html(INDEX_HTML) }))
        .route("/chat.html", get(|| async { Html(CHAT_HTML) }))
        .route("/live.html", get(|| async { Html(LIVE_HTML) }))
        .route("/game.html", get(|| async { Html(GAME_HTML) }))
        .route("/demo.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], DEMO_CSS) }))
        .route("/tether.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], TETHER_JS) }))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not found\n") });
    let pages = match static_dir {
        Some(dir) => Router::new().fallback_service(ServeDir::new(dir).fallback(embedded)),
        None => embedded,
    };
    Router::new()
        .route("/healthz", get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "ok\n").into_response() }))
        .merge(pages)
}
