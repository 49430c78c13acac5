//! A route's authorize hook ([`RouteOptions::authorize`](super::RouteOptions::authorize)): the
//! application's decision on an upgrade, after the protocol's and the server's own checks
//! (handshake rules, route, Origin, sub-protocol) and before the 101. It sees the request and the
//! peer, and answers with an [`Identity`] the connection then carries, or with the HTTP response
//! the client gets instead (401 with `WWW-Authenticate`, 403, 429 with `Retry-After`, ...): a
//! refused client never gets a WebSocket.
//!
//! The hook runs under the handshake timeout (on the direct path, what is left of it after TLS and
//! the request head); one that takes longer is answered with 503 for it. Each pending hook holds
//! its socket, counted against `max_connections`, so a slow backend behind a hook slows admission
//! but cannot grow memory past that bound.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tether_proto::handshake::response::Response;
use tether_proto::handshake::server::UpgradeRequest;

use crate::identity::Identity;

/// What an authorize hook sees of an upgrade: the validated request and the peer. Its `Debug`
/// names the headers but shows no values (they carry credentials).
#[derive(Clone)]
#[non_exhaustive]
pub struct AuthRequest {
    /// The request (always a `GET`): target, `Host`, `Origin`, offered sub-protocols, every header.
    pub request: UpgradeRequest,
    /// The peer's address (the proxy's, behind a reverse proxy: see its forwarding headers).
    pub remote_addr: SocketAddr,
}

impl AuthRequest {
    /// The request path, without the query.
    pub fn path(&self) -> &str {
        self.request.path()
    }

    /// The query, without `?` (browsers cannot set headers on a WebSocket, so tokens come here).
    pub fn query(&self) -> Option<&str> {
        self.request.query()
    }

    /// The value of query parameter `name`, percent-decoded; the first one if repeated.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query()?;
        url::form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
    }

    /// The first value of header `name` (compared case-insensitively), if it is UTF-8.
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.request.headers.get_one(name)
    }
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.request.headers.0.iter().map(|header| header.name.as_str()).collect();
        f.debug_struct("AuthRequest")
            .field("path", &self.path())
            .field("remote_addr", &self.remote_addr)
            .field("headers", &names)
            .finish_non_exhaustive()
    }
}

type HookFuture = Pin<Box<dyn Future<Output = Result<Identity, Response>> + Send>>;

/// The hook, shareable by every handshake of its route.
#[derive(Clone)]
pub(crate) struct Authorizer(Arc<dyn Fn(AuthRequest) -> HookFuture + Send + Sync>);

impl Authorizer {
    pub(crate) fn new<F, Fut>(hook: F) -> Self
    where
        F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Identity, Response>> + Send + 'static,
    {
        Self(Arc::new(move |request| Box::pin(hook(request))))
    }

    pub(crate) fn call(&self, request: AuthRequest) -> HookFuture {
        (self.0)(request)
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorizer")
    }
}
