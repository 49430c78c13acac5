//! The decision pipeline of an upgrade request, shared by the direct path and the hyper path:
//! validate (the core's RFC 6455 checks) → route → Origin → sub-protocol → accept, then the
//! route's authorize hook (the application's decision, asynchronous) before the 101 goes out.
//!
//! The core decides only what the protocol decides (400, 426, 431, as a
//! [`tether_proto::handshake::server::Rejection`]); the server's own policy — who may connect,
//! what is served where, how long a client may take, how many may be open — is a [`Refusal`]
//! here. Both render through the core's one [`Response`] type.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tether_proto::handshake::head::RequestHead;
use tether_proto::handshake::is_token;
use tether_proto::handshake::response::Response;
use tether_proto::handshake::server::{
    accept, select_protocol, validate, AcceptOptions, Accepted, Rejection, UpgradeRequest,
};
use tether_proto::{Connection, Role};

use super::authorize::AuthRequest;
use super::routes::{Route, Upgrade};
use super::shared::Shared;
use crate::identity::Identity;
use crate::transport::Transport;

/// Why the server refused an upgrade, with the HTTP answer for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The request fails the WebSocket handshake itself (400, 426, 431, decided by the core).
    Protocol(Rejection),
    /// 400: the route requires a sub-protocol and the client offered none of these.
    NoCommonProtocol(Vec<String>),
    /// 403: the Origin policy does not allow this origin.
    Forbidden(String),
    /// 404: nothing is served at this path.
    NotFound(String),
    /// 408: the client did not complete TLS and its request head in time.
    Timeout,
    /// 503: the server is at its connection limit.
    Unavailable,
    /// The route's authorize hook refused, with this answer (checked: a 4xx or 5xx, no control
    /// characters in headers, no framing or upgrade headers; else 500). The connection is closed
    /// after it on either path, so one socket cannot go on trying.
    Refused(Response),
    /// 503: the route's authorize hook did not decide within the handshake timeout.
    AuthorizeTimeout,
}

impl Refusal {
    /// Whether the connection must end after this answer even when an HTTP library keeps
    /// connections alive (the upgrade after plain HTTP): after the application's refusals, so a
    /// client cannot try credentials again and again on one socket.
    pub(crate) fn ends_connection(&self) -> bool {
        matches!(self, Self::Refused(_) | Self::AuthorizeTimeout)
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::Protocol(rejection) => rejection.status(),
            Self::NoCommonProtocol(_) => 400,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Timeout => 408,
            Self::Unavailable | Self::AuthorizeTimeout => 503,
            Self::Refused(response) => response.status,
        }
    }

    /// The answer: the status, `Retry-After` when waiting helps, `Connection: close`, and the
    /// reason as a plain-text body (the same shape as the core's rejections).
    pub fn response(&self) -> Response {
        match self {
            Self::Protocol(rejection) => return rejection.response(),
            // The application's answer, checked by `authorize`, with `Connection: close` added.
            Self::Refused(response) => return response.clone().header("Connection", "close"),
            _ => {}
        }
        let response = Response::new(self.status());
        let retry = matches!(self, Self::Unavailable | Self::AuthorizeTimeout);
        let response = if retry { response.header("Retry-After", "1") } else { response };
        response.header("Connection", "close").text(format!("{self}\n"))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(rejection) => rejection.fmt(f),
            Self::NoCommonProtocol(protocols) => {
                write!(f, "bad WebSocket handshake: this endpoint requires one of the sub-protocols {protocols:?}")
            }
            Self::Forbidden(why) => write!(f, "forbidden: {why}"),
            Self::NotFound(path) => write!(f, "no WebSocket endpoint at {path}"),
            Self::Timeout => f.write_str("handshake timed out"),
            Self::Unavailable => f.write_str("server at capacity, try again"),
            Self::Refused(response) => write!(f, "refused by the route: {} {}", response.status, response.reason),
            Self::AuthorizeTimeout => f.write_str("authorization timed out, try again"),
        }
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protocol(rejection) => Some(rejection),
            _ => None,
        }
    }
}

/// Logs and counts an upgrade refused before the 101.
pub(crate) fn refused(shared: &Shared, peer: SocketAddr, refusal: &Refusal) {
    tracing::info!(%peer, status = refusal.status(), %refusal, "handshake refused");
    shared.lifecycle.stats.rejected(refusal.status());
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Self::Protocol(rejection)
    }
}

/// Runs the checks on a request head; on success, the request, its route and the 101 to send.
fn decide(shared: &Shared, head: RequestHead, tls: bool) -> Result<(UpgradeRequest, Arc<Route>, Accepted), Refusal> {
    let config = shared.config();
    let request = validate(head)?;
    let route = shared.routes.get(request.path()).ok_or_else(|| Refusal::NotFound(request.path().to_owned()))?;
    config.origins.check(request.origin.as_deref(), &request.host, tls).map_err(Refusal::Forbidden)?;
    let options = &route.options;
    if options.require_protocol && select_protocol(&options.protocols, &request.protocols).is_none() {
        return Err(Refusal::NoCommonProtocol(options.protocols.clone()));
    }
    let deflate = config.compression.then_some(&config.connection.deflate);
    let accepted = accept(&request, &AcceptOptions { protocols: &options.protocols, deflate });
    Ok((request, Arc::clone(route), accepted))
}

/// The route's authorize hook on an accepted request, by `deadline`: the identity the connection
/// will carry (anonymous on a route without a hook), or the refusal to answer with.
async fn authorize(
    route: &Route,
    request: &UpgradeRequest,
    remote_addr: SocketAddr,
    deadline: tokio::time::Instant,
) -> Result<Identity, Refusal> {
    let Some(hook) = &route.options.authorize else { return Ok(Identity::anonymous()) };
    let asked = AuthRequest { request: request.clone(), remote_addr };
    match tokio::time::timeout_at(deadline, hook.call(asked)).await {
        Ok(Ok(identity)) => Ok(identity),
        Ok(Err(response)) => Err(Refusal::Refused(checked_refusal(response, request.path()))),
        Err(_) => Err(Refusal::AuthorizeTimeout),
    }
}

/// The headers a hook may not set on a refusal: the server frames the answer and closes the
/// connection itself, and nothing in a refusal may look like an upgrade.
const RESERVED_HEADERS: [&str; 4] = ["connection", "content-length", "transfer-encoding", "upgrade"];

/// A hook's refusal as it may go on the wire: a 4xx or 5xx status, header names that are tokens
/// and values without control characters (CR or LF in a value would let whoever chose it write
/// headers of their own: response splitting), none of [`RESERVED_HEADERS`] or `Sec-WebSocket-*`.
/// Anything else is the hook's bug: logged, and the client gets 500.
fn checked_refusal(response: Response, path: &str) -> Response {
    let problem = if !(400..=599).contains(&response.status) {
        Some(format!("status {} is not a refusal (400..=599)", response.status))
    } else {
        response.headers.iter().find_map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            if !is_token(name) {
                Some(format!("header name {name:?} is not an HTTP token"))
            } else if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("sec-websocket-") {
                Some(format!("header {name} is the server's to set"))
            } else if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                Some(format!("header {name} holds a control character"))
            } else {
                None
            }
        })
    };
    match problem {
        None => response,
        Some(problem) => {
            tracing::error!(path, %problem, "authorize hook answered with an invalid refusal: 500 instead");
            Response::new(500).text("internal error\n")
        }
    }
}

/// An upgrade every check passed, hook included: what the route gets once the 101 is sent.
pub(crate) struct Approved {
    pub(crate) request: UpgradeRequest,
    pub(crate) accepted: Accepted,
    pub(crate) identity: Identity,
}

/// [`decide`], then the route's [`authorize`] hook by `deadline`: the route and what it gets, or
/// the refusal to answer with.
pub(crate) async fn approve(
    shared: &Shared,
    head: RequestHead,
    tls: bool,
    remote_addr: SocketAddr,
    deadline: tokio::time::Instant,
) -> Result<(Arc<Route>, Approved), Refusal> {
    let (request, route, accepted) = decide(shared, head, tls)?;
    let identity = authorize(&route, &request, remote_addr, deadline).await?;
    Ok((route, Approved { request, accepted, identity }))
}

/// The accepted connection as its route receives it, once the 101 is sent.
pub(crate) fn upgrade(
    shared: &Shared,
    route: &Route,
    transport: Transport,
    leftover: BytesMut,
    approved: Approved,
    remote_addr: SocketAddr,
) -> Box<Upgrade> {
    let Approved { request, accepted, identity } = approved;
    let config = route.connection_config(&shared.config().connection);
    let protocol = Connection::new(Role::Server, config, accepted.deflate);
    let subprotocol = accepted.protocol;
    Box::new(Upgrade { transport, protocol, leftover, request, subprotocol, remote_addr, identity })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes on a raw socket, pinned: the same as before the core and the server shared one
    /// `Response` (checked against the old binary when the split was made).
    #[test]
    fn each_refusal_has_its_exact_bytes() {
        let cases = [
            (
                Refusal::NoCommonProtocol(vec!["json".into()]),
                "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: 82\r\n\r\nbad WebSocket handshake: this endpoint requires one of the sub-protocols \
                 [\"json\"]\n",
            ),
            (
                Refusal::Forbidden("origin https://evil.test is not allowed".into()),
                "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: 51\r\n\r\nforbidden: origin https://evil.test is not allowed\n",
            ),
            (
                Refusal::NotFound("/nope".into()),
                "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: 31\r\n\r\nno WebSocket endpoint at /nope\n",
            ),
            (
                Refusal::Timeout,
                "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: 20\r\n\r\nhandshake timed out\n",
            ),
            (
                Refusal::Unavailable,
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Length: 30\r\n\r\nserver at capacity, try again\n",
            ),
        ];
        for (refusal, expected) in cases {
            assert_eq!(String::from_utf8(refusal.response().to_bytes()).unwrap(), expected, "{refusal:?}");
        }
    }
}
