//! `tether serve`: runs the server.
//!
//! With no arguments it listens on 127.0.0.1:8787 and serves the demos of [`crate::demo`]: the
//! tutorial's question page and server on `/`, `/echo`, and the token protocol on `/tether` with
//! its chat, live stream and game pages. With `--no-demos` only `/tether`, `/healthz`, `/readyz`
//! and `--static` remain. SIGINT or SIGTERM shut it down gracefully: stop accepting, close every
//! connection with 1001, wait up to the drain timeout.
//!
//! `/tether` checks clients before the upgrade when tokens or a connect proxy are configured
//! ([`crate::auth`]); with `--demo-tokens`, `GET /demo/token` signs tokens for the chat demo.
//!
//! Each WebSocket route has its own size limits: `/tether` takes `max_data_bytes` plus room for
//! the envelope (128 KiB by default) and the question demo 4 KiB, so a client cannot make the
//! server buffer a 64 MiB message that could only ever be refused; `/echo` keeps the server-wide
//! limits (the Autobahn suite sends 16 MiB messages there).

use std::io::Write as _;
use std::sync::{Arc, OnceLock};

use tether_hub::{Hub, TokenServer};
use tether_tokio::{RouteOptions, Server};

use crate::auth::{ConnectAuth, ConnectProxy, DemoTokens, ProxyClient};
use crate::demo;
use crate::settings::{route_limits, AuthSettings, Resolved, QUESTION_LIMIT};

/// The sub-protocols of `/tether`, in the server's order of preference.
const TOKEN_PROTOCOLS: [&str; 2] = ["tether.json", "json"];

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(resolved: Resolved) -> Result<(), String> {
    // Signal handlers first: a SIGTERM sent as soon as `listening on` is printed must already mean
    // a graceful shutdown, not the default action (exit at once, nothing closed, nothing logged).
    let shutdown = shutdown_signal().map_err(|e| format!("cannot install the signal handlers: {e}"))?;
    let tls = resolved.server.tls.is_some();
    let ping_interval = resolved.server.ping_interval;
    let (question_message_limit, question_frame_limit) = route_limits(QUESTION_LIMIT, &resolved.server);
    let server = Server::new(resolved.server);
    // The hub finds the recipients of direct messages among the server's connections.
    let token = TokenServer::new(Hub::new(resolved.hub, server.registry()), ping_interval);
    let mut token_route = RouteOptions::protocols(TOKEN_PROTOCOLS)
        .max_message_size(resolved.token_message_limit)
        .max_frame_size(resolved.token_frame_limit);
    let auth = &resolved.auth;
    // One pooled client for every call to the application's backend.
    let proxy_client = ProxyClient::new();
    let connect_proxy = auth
        .connect_proxy
        .clone()
        .map(|url| ConnectProxy::new(proxy_client.clone(), url, auth.proxy_timeout, &TOKEN_PROTOCOLS));
    let gate = ConnectAuth::new(auth.token_keys.clone(), auth.allow_anonymous, connect_proxy);
    if gate.is_on() {
        let gate = Arc::new(gate);
        token_route = token_route.authorize(move |request| {
            let gate = Arc::clone(&gate);
            async move { gate.authorize(request).await }
        });
    }
    // TODO(lead): at the merge, give the hub `auth.token_keys` as its TokenVerifier (refresh,
    // subscription tokens), `auth.namespaces` as HubConfig::namespaces, and call
    // `auth::publish_proxy(&proxy_client, url, auth.proxy_timeout, ...)` from its on_publish hook
    // when `auth.publish_proxy` is set.
    log_auth(auth);
    let demo_tokens = if auth.demo_tokens { auth.token_keys.clone().and_then(DemoTokens::new) } else { None };
    // The router is built before the server is bound; `/readyz` finds the handle here once it is.
    let handle = Arc::new(OnceLock::new());
    let question_route = RouteOptions::protocols(["json", "soap"])
        .max_message_size(question_message_limit)
        .max_frame_size(question_frame_limit);
    let mut server = server.route_with("/tether", token_route, token);
    if resolved.demos {
        server =
            server.route_with("/", question_route, demo::question::QuestionServer).route("/echo", demo::echo::Echo);
    }
    let server = server
        .http(demo::http_router(resolved.static_dir, resolved.demos, demo_tokens, Arc::clone(&handle)))
        .bind((resolved.host, resolved.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", resolved.host, resolved.port))?;
    let _ = handle.set(server.handle());
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    {
        let scheme = if tls { "wss" } else { "ws" };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {scheme}://{addr}");
        let _ = stdout.flush();
    }
    if resolved.demos {
        tracing::info!(%addr, tls, "listening; open http{}://{addr}/ for the demo", if tls { "s" } else { "" });
    } else {
        tracing::info!(%addr, tls, "listening; token protocol on /tether");
    }
    server.run_until(shutdown).await.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Says at startup how `/tether` admits clients (never a secret: which kinds of key, not the keys).
fn log_auth(auth: &AuthSettings) {
    if auth.demo_tokens {
        tracing::warn!("--demo-tokens: GET /demo/token signs a token for any nickname; for demos only");
    }
    if auth.token_keys.is_some() || auth.connect_proxy.is_some() {
        tracing::info!(
            tokens = auth.token_keys.is_some(),
            allow_anonymous = auth.allow_anonymous,
            connect_proxy = auth.connect_proxy.as_ref().map(|url| url.to_string()),
            "clients of /tether are authorized before the upgrade"
        );
    }
}

/// Completes on SIGINT or SIGTERM; the handlers are installed when this is called.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
