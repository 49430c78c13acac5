//! The live socket `/admin/ws`: a Tether WebSocket route whose authorize hook admits only a
//! signed-in dashboard (an allowed `Host`, the session cookie, and an `Origin` equal to `Host`:
//! another site's page cannot open it, whatever `--allowed-origin` allows elsewhere). On open it gets the samples
//! kept (`{"type":"history","samples":[...]}`), then one `{"type":"sample","sample":{...}}` a
//! second from the sampler. It sends nothing the server listens to. When its session ends it is
//! closed with [`SIGNED_OUT`].

use std::sync::Arc;
use std::time::Instant;

use tether_proto::handshake::response::Response;
use tether_tokio::server::AuthRequest;
use tether_tokio::{CloseCode, Conn, Identity, Listener, Message};

use super::csrf::{host_allowed, same_origin};
use super::sessions::{cookie_value, SessionKey};
use super::state::Shared;

/// Dashboard sockets open at once; one more is closed with 1013 (try again later).
pub const MAX_SOCKETS: usize = 32;
/// The close code of a socket whose session ended (logout, idle, too old).
pub const SIGNED_OUT: u16 = 4001;
/// The largest message the route takes (the page sends none).
pub const MAX_MESSAGE: usize = 1024;

/// Which session a live socket belongs to (the connection's typed data).
pub struct AdminSession(pub SessionKey);

/// The route's listener.
pub struct AdminSocket {
    pub(super) shared: Arc<Shared>,
}

/// The route's authorize hook: 403 for a `Host` the dashboard does not answer (DNS rebinding),
/// 401 without a live session, 403 from another origin (or a plain-http one when https is required).
pub(super) async fn authorize(shared: Arc<Shared>, request: AuthRequest) -> Result<Identity, Response> {
    if !host_allowed(request.header("host"), &shared.hosts) {
        return Err(Response::new(403).text(super::csrf::HOST_REFUSED));
    }
    let session =
        request.header("cookie").and_then(cookie_value).and_then(|id| shared.sessions.find(id, Instant::now()));
    let Some(session) = session else {
        return Err(Response::new(401).text("sign in at /admin first\n"));
    };
    let origin = request.header("origin");
    if origin.is_none() || !same_origin(origin, request.header("host"), shared.secure) {
        return Err(Response::new(403).text("the dashboard's socket is for the dashboard's own page\n"));
    }
    Ok(Identity::anonymous().with_data(AdminSession(session.key)))
}

impl Listener for AdminSocket {
    async fn opened(&self, conn: &Conn) {
        {
            let mut sockets = self.shared.lock_sockets();
            if sockets.len() >= MAX_SOCKETS {
                drop(sockets);
                let _ = conn.close(CloseCode::from(1013), "too many dashboards open");
                return;
            }
            sockets.insert(conn.id().to_owned(), conn.clone());
        }
        let history = {
            let series = self.shared.lock_series();
            let samples: Vec<_> = series.samples().collect();
            serde_json::json!({ "type": "history", "samples": samples }).to_string()
        };
        let _ = conn.send_text(history);
    }

    async fn message(&self, _conn: &Conn, _message: Message) {}

    async fn closed(&self, conn: &Conn, _closed: &tether_tokio::Closed) {
        self.shared.lock_sockets().remove(conn.id());
    }
}
