//! Plain HTTP on the WebSocket port, served by hyper with the application's axum router.
//!
//! A connection lands here when its first request is not a WebSocket upgrade. hyper then owns it,
//! with keep-alive; a later request on it that asks for an upgrade goes through the same checks as
//! the direct path ([`super::accept`]) and, once hyper has sent our 101, becomes a WebSocket
//! connection over hyper's upgraded stream. Every answer of the handshake is the core's
//! [`Response`], copied into a hyper response header by header ([`to_hyper`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use bytes::BytesMut;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tether_proto::handshake::head::{Header, Headers, RequestHead};
use tether_proto::handshake::response::Response;
use tether_proto::handshake::server::{is_upgrade_request, Rejection};
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt as _;

use super::accept::{approve, upgrade, Refusal};
use super::registry::Active;
use super::shared::Shared;
use crate::deadline::deadline_after;
use crate::transport::Transport;

/// Serves HTTP/1.1 on `io` until the client or hyper closes it.
pub(crate) async fn serve<S>(shared: Arc<Shared>, io: S, peer: SocketAddr, tls: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_connection(shared, io, peer, tls, true).await;
}

/// Serves one plain HTTP request on `io` and closes it: the answer to a client that arrived while
/// the server was at its connection limit (a health check must still be answered). A WebSocket
/// upgrade never gets here.
pub(crate) async fn serve_one<S>(shared: Arc<Shared>, io: S, peer: SocketAddr, tls: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_connection(shared, io, peer, tls, false).await;
}

async fn serve_connection<S>(shared: Arc<Shared>, io: S, peer: SocketAddr, tls: bool, keep_alive: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = shared_config(&shared);
    let mut stop = shared.subscribe_shutdown();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        // Only the one-request answers past the limit run without keep-alive, and only they are
        // not counted.
        async move { Ok::<_, Infallible>(handle(shared, request, peer, tls, keep_alive).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // hyper adds this to `Instant::now()` unchecked: capped, a huge handshake timeout cannot
        // panic the connection's task.
        .header_read_timeout(config.0.min(crate::deadline::FAR_FUTURE))
        .max_buf_size(config.1.max(8192))
        .keep_alive(keep_alive)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    // On shutdown, finish the request in flight (if any) and close instead of keeping alive.
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "HTTP connection ended with an error");
    }
}

fn shared_config(shared: &Shared) -> (std::time::Duration, usize) {
    let config = shared.config();
    (config.handshake_timeout, config.head_limits.max_bytes)
}

/// In the extensions of every plain HTTP request handed to the application's router (with axum's
/// `ConnectInfo<SocketAddr>`, the peer's address): whether the
/// socket it came on counts against `max_connections`. It does on a normal connection; it does
/// not when the server answered it past the limit. A readiness probe needs it so as not to count
/// itself: see [`crate::ServerHandle::is_accepting_besides`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedConnection(pub bool);

async fn handle(
    shared: Arc<Shared>,
    mut request: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
    counted: bool,
) -> hyper::Response<Body> {
    let head = request_head(&request);
    if !is_upgrade_request(&head) {
        let router = shared.http.as_ref().expect("the HTTP path is only taken with a router").clone();
        let websocket_route = shared.has_route(request.uri().path());
        request.extensions_mut().insert(CountedConnection(counted));
        // axum's `ConnectInfo<SocketAddr>` extractor then gives handlers the peer's address, as
        // `axum::serve(...).into_make_service_with_connect_info()` would.
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let request = request.map(|body| Body::new(body.map_err(axum::Error::new)));
        let response = router.oneshot(request).await.unwrap_or_else(|never| match never {});
        // A WebSocket-only path answers plain HTTP with 426, not 404.
        if websocket_route && response.status() == StatusCode::NOT_FOUND {
            return to_hyper(Rejection::UpgradeRequired.response(), false);
        }
        return response;
    }
    match decide_for_hyper(&shared, head, tls, peer).await {
        Ok((response, start)) => {
            let on_upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(upgraded) => start(Transport::Upgraded(Box::new(TokioIo::new(upgraded))), peer),
                    Err(error) => tracing::debug!(%peer, %error, "upgrade failed"),
                }
            });
            to_hyper(response, false)
        }
        Err(refusal) => {
            shared.refused(peer, &refusal);
            to_hyper(refusal.response(), refusal.ends_connection())
        }
    }
}

/// The checks of [`approve`] for an upgrade hyper parsed (the authorize hook within the handshake
/// timeout, counted from this request): the 101 for hyper to send, and what starts the
/// connection once hyper hands over the upgraded stream.
async fn decide_for_hyper(
    shared: &Arc<Shared>,
    head: RequestHead,
    tls: bool,
    peer: SocketAddr,
) -> Result<(Response, impl FnOnce(Transport, SocketAddr)), Refusal> {
    let deadline = deadline_after(tokio::time::Instant::now(), shared.config().handshake_timeout);
    let (route, mut approved) = approve(shared, head, tls, peer, deadline).await?;
    let response = std::mem::replace(&mut approved.accepted.response, Response::new(101));
    let shared = Arc::clone(shared);
    let start = move |transport: Transport, peer: SocketAddr| {
        let active = Active::new(&shared.lifecycle);
        let upgrade = upgrade(&shared, &route, transport, BytesMut::new(), approved, peer);
        route.start(upgrade, active);
    };
    Ok((response, start))
}

/// The core's answer as a hyper response, header by header in the same order. One exception,
/// unless `ends_connection`: `close` in `Connection` is left out. On this path hyper owns the
/// connection and keeps it alive after a refused upgrade (the client may go on with plain HTTP);
/// the token means "the server closes after this", which is true of the direct path, and here
/// only of the refusals that must end the connection ([`Refusal::ends_connection`]), which hyper
/// then closes. hyper adds `Content-Length` itself.
fn to_hyper(response: Response, ends_connection: bool) -> hyper::Response<Body> {
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        if name.eq_ignore_ascii_case("connection") && !ends_connection {
            let kept: Vec<&str> =
                value.split(',').map(str::trim).filter(|token| !token.eq_ignore_ascii_case("close")).collect();
            if !kept.is_empty() {
                builder = builder.header(*name, kept.join(", "));
            }
        } else {
            builder = builder.header(*name, value.as_str());
        }
    }
    let body = if response.body.is_empty() { Body::empty() } else { Body::from(response.body) };
    builder.body(body).unwrap_or_else(|error| {
        // Only an application's answer could get here (ours are valid, and a hook's is checked):
        // a broken answer is a 500, never a panic.
        tracing::error!(%error, "a handshake answer hyper cannot send: 500 instead");
        let mut internal = hyper::Response::new(Body::from("internal error\n"));
        *internal.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        internal
    })
}

/// Our handshake validator works on [`RequestHead`]; build one from hyper's parsed request.
fn request_head<B>(request: &Request<B>) -> RequestHead {
    RequestHead {
        method: request.method().as_str().to_owned(),
        target: request.uri().path_and_query().map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned()),
        minor_version: if request.version() == hyper::Version::HTTP_11 { 1 } else { 0 },
        headers: Headers(
            request
                .headers()
                .iter()
                .map(|(name, value)| Header { name: name.as_str().to_owned(), value: value.as_bytes().to_vec() })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(response: &hyper::Response<Body>) -> Vec<(String, String)> {
        let headers = response.headers().iter();
        headers.map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned())).collect()
    }

    #[test]
    fn a_refusal_keeps_its_headers_but_not_its_close() {
        let response = to_hyper(Rejection::UpgradeRequired.response(), false);
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        let expected =
            [("upgrade", "websocket"), ("connection", "Upgrade"), ("content-type", "text/plain; charset=utf-8")];
        let expected: Vec<_> = expected.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(headers(&response), expected);

        let response = to_hyper(Refusal::NotFound("/x".into()).response(), false);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(headers(&response), [("content-type".to_owned(), "text/plain; charset=utf-8".to_owned())]);
    }

    #[test]
    fn a_switch_has_an_empty_body() {
        let response = to_hyper(Response::new(101).header("Upgrade", "websocket"), false);
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert!(hyper::body::Body::is_end_stream(response.body()));
    }
}
