//! `tether serve`: runs the server.
//!
//! With no arguments it listens on 127.0.0.1:8787 and serves the demos of [`crate::demo`]: the
//! tutorial's question page and server on `/`, `/echo`, and the token protocol on `/tether` with
//! its chat, live stream and game pages. SIGINT or SIGTERM shut it down
//! gracefully: stop accepting, close every connection with 1001, wait up to the drain timeout.

use std::io::Write as _;

use tether_tokio::hub::{Hub, TokenServer};
use tether_tokio::{RouteOptions, Server};

use crate::demo;
use crate::settings::ServeSettings;

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(settings: ServeSettings) -> Result<(), String> {
    let resolved = settings.with_file()?.resolve()?;
    let tls = resolved.server.tls.is_some();
    let hub = Hub::new(resolved.hub);
    let token = TokenServer::new(hub, resolved.server.ping_interval);
    let server = Server::new(resolved.server)
        .route_with("/tether", RouteOptions::protocols(["tether.json", "json"]), token)
        .route_with("/", RouteOptions::protocols(["json", "soap"]), demo::question::QuestionServer)
        .route("/echo", demo::echo::Echo)
        .http(demo::http_router(resolved.static_dir))
        .bind((resolved.host, resolved.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", resolved.host, resolved.port))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    {
        let scheme = if tls { "wss" } else { "ws" };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {scheme}://{addr}");
        let _ = stdout.flush();
    }
    tracing::info!(%addr, tls, "listening; open http{}://{addr}/ for the demo", if tls { "s" } else { "" });
    server.run_until(shutdown_signal()).await.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler works");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
