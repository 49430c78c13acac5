//! `tether serve`: runs the server.
//!
//! With no arguments it listens on 127.0.0.1:8787 and serves the demos of [`crate::demo`]: the
//! tutorial's question page and server on `/`, `/echo`, and the token protocol on `/tether` with
//! its chat, live stream and game pages. With `--no-demos` only `/tether`, `/healthz`, `/readyz`
//! and `--static` remain. With an API key the server HTTP API ([`crate::api`]) answers on
//! `/api/*`, or only on `--internal-port` (a second, plain-HTTP listener on the same host). With
//! `--metrics` the Prometheus page ([`crate::metrics`]) answers on `/metrics`, and with an admin
//! password the dashboard ([`crate::admin`]) on `/admin` and `/admin/ws`, likewise on the internal
//! port when there is one.
//! With `--redis` the hub runs on the Redis engine (`Hub::with_redis`): this node is one of
//! several sharing channels, history, presence and the server API; which engine, and the node's
//! name, are logged at startup (the URL with its password hidden).
//! SIGINT or SIGTERM shut it down gracefully: stop accepting, close every connection with 1001,
//! wait up to the drain timeout.
//!
//! `/tether` checks clients before the upgrade when tokens or a connect proxy are configured
//! ([`crate::auth`]), gives the hub the token keys for `refresh` and subscription tokens and the
//! publish proxy as its hook; with `--demo-tokens`, `GET /demo/token` signs tokens for the chat
//! demo.
//!
//! Each WebSocket route has its own size limits: `/tether` takes `max_data_bytes` plus room for
//! the envelope (128 KiB by default) and the question demo 4 KiB, so a client cannot make the
//! server buffer a 64 MiB message that could only ever be refused; `/echo` keeps the server-wide
//! limits (the Autobahn suite sends 16 MiB messages there).

use std::io::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use std::net::IpAddr;

use tether_hub::{Hub, HubConfig, RedisOptions, TokenServer};
use tether_tokio::{Registry, RouteOptions, Server, ServerConfig, ServerHandle};

use crate::admin::{self, Admin, AdminOptions};
use crate::api;
use crate::auth::hub::{JwtVerifier, PublishProxy};
use crate::auth::publish_proxy::PublishBackend;
use crate::auth::{ConnectAuth, ConnectProxy, DemoTokens, ProxyClient};
use crate::demo;
use crate::metrics::Metrics;
use crate::settings::{default_node_name, route_limits, AuthSettings, Engine, Resolved, QUESTION_LIMIT};

/// The sub-protocols of `/tether`, in the server's order of preference.
const TOKEN_PROTOCOLS: [&str; 2] = ["tether.json", "json"];

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(resolved: Resolved) -> Result<(), String> {
    let started = Instant::now();
    // Signal handlers first: a SIGTERM sent as soon as `listening on` is printed must already mean
    // a graceful shutdown, not the default action (exit at once, nothing closed, nothing logged).
    let shutdown = shutdown_signal().map_err(|e| format!("cannot install the signal handlers: {e}"))?;
    let tls = resolved.server.tls.is_some();
    let ping_interval = resolved.server.ping_interval;
    let (question_message_limit, question_frame_limit) = route_limits(QUESTION_LIMIT, &resolved.server);
    let auth = &resolved.auth;
    // The internal port's listener keeps the main one's limits (head size and time, connections).
    let internal_config = auth.internal_port.map(|_| resolved.server.clone());
    let server = Server::new(resolved.server);
    // The hub finds the recipients of direct messages among the server's connections; with
    // `--redis` it is one node of several, sharing channels through Redis.
    let (hub, port, node_name) =
        build_hub(resolved.hub, server.registry(), &resolved.engine, resolved.host, resolved.port)?;
    // A pooled client per proxy, each with its own bound on calls in flight: a flood of upgrades
    // against a slow backend must not starve signed-in users' publishes, nor the reverse.
    let token = token_server(&hub, ping_interval, auth, &ProxyClient::new());
    // `--metrics`: the page reads the server's and the hub's counters when it is scraped.
    let metrics = resolved.metrics.then(|| Metrics::new(server.stats(), &hub));
    // The admin dashboard, with a password only (plain HTTP on the internal port: its cookie is
    // Secure on a TLS main port, or with `admin_secure_cookie` behind a TLS-terminating proxy).
    let admin = auth.admin_password.as_ref().map(|password| {
        let secure = (tls && auth.internal_port.is_none()) || auth.admin_secure_cookie;
        let options = AdminOptions { secure, hosts: auth.admin_hosts.clone() };
        Admin::new(password, hub.clone(), server.stats(), server.registry(), started, options)
    });
    // The server API, with a key only.
    let api = auth.api_key.as_ref().map(|key| {
        let state = api::ApiState::new(hub, key.expose(), started);
        api::router(match &metrics {
            Some(metrics) => state.with_calls(metrics.api_calls()),
            None => state,
        })
    });
    // The API, the metrics and the dashboard: on the internal port when there is one, else on
    // this one.
    let private: Vec<axum::Router> =
        [api, metrics.as_ref().map(Metrics::router), admin.as_ref().map(Admin::router)].into_iter().flatten().collect();
    let (private_here, private_internal) = match auth.internal_port {
        Some(port) => (Vec::new(), Some((port, private))),
        None => (private, None),
    };
    let mut token_route = RouteOptions::protocols(TOKEN_PROTOCOLS)
        .max_message_size(resolved.token_message_limit)
        .max_frame_size(resolved.token_frame_limit);
    let connect_proxy = auth
        .connect_proxy
        .clone()
        .map(|url| ConnectProxy::new(ProxyClient::new(), url, auth.proxy_timeout, &TOKEN_PROTOCOLS));
    let gate = ConnectAuth::new(auth.token_keys.clone(), auth.allow_anonymous, connect_proxy);
    if gate.is_on() {
        let gate = Arc::new(gate);
        token_route = token_route.authorize(move |request| {
            let gate = Arc::clone(&gate);
            async move { gate.authorize(request).await }
        });
    }
    log_auth(auth);
    let demo_tokens = auth
        .token_keys
        .clone()
        .filter(|_| auth.demo_tokens)
        .and_then(|keys| DemoTokens::new(keys, auth.demo_token_lifetime));
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
    let mut http = demo::http_router(resolved.static_dir, resolved.demos, demo_tokens, Arc::clone(&handle));
    for router in private_here {
        http = http.merge(router);
    }
    if let Some(admin) = &admin {
        admin.spawn_sampler();
        if auth.internal_port.is_none() {
            let (options, socket) = admin.socket_route();
            server = server.route_with(admin::SOCKET_PATH, options, socket);
        }
    }
    let admin_internal = admin.as_ref().filter(|_| auth.internal_port.is_some());
    let internal = match (private_internal, internal_config) {
        (Some((port, routers)), Some(config)) => {
            let router = routers.into_iter().fold(axum::Router::new(), axum::Router::merge);
            Some(serve_internal(config, resolved.host, port, router, admin_internal).await?)
        }
        _ => None,
    };
    let server = server
        .http(http)
        .bind((resolved.host, port))
        .await
        .map_err(|e| format!("cannot listen on {}:{port}: {e}", resolved.host))?;
    let _ = handle.set(server.handle());
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    log_engine(&resolved.engine, &node_name.unwrap_or_else(|| default_node_name(addr.port())));
    // The page has no authentication: on a reachable address, say so (`::ffff:127.0.0.1` is loopback too).
    if metrics.is_some() && internal.is_none() && !resolved.host.to_canonical().is_loopback() {
        tracing::warn!("/metrics is served without authentication on {addr}; use --internal-port behind a firewall");
    }
    {
        let scheme = if tls { "wss" } else { "ws" };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {scheme}://{addr}");
        if let Some((internal, _)) = &internal {
            if auth.api_key.is_some() {
                let _ = writeln!(stdout, "server API on http://{internal}/api/");
            }
            if metrics.is_some() {
                let _ = writeln!(stdout, "metrics on http://{internal}{}", crate::metrics::PATH);
            }
        }
        if admin.is_some() {
            let at = internal.as_ref().map_or_else(
                || format!("http{}://{addr}", if tls { "s" } else { "" }),
                |(at, _)| format!("http://{at}"),
            );
            let _ = writeln!(stdout, "admin dashboard on {at}/admin");
        }
        let _ = stdout.flush();
    }
    if resolved.demos {
        tracing::info!(%addr, tls, "listening; open http{}://{addr}/ for the demo", if tls { "s" } else { "" });
    } else {
        tracing::info!(%addr, tls, "listening; token protocol on /tether");
    }
    server.run_until(shutdown).await.map_err(|e| e.to_string())?;
    if let Some((_, internal)) = internal {
        internal.shutdown();
    }
    tracing::info!("stopped");
    Ok(())
}

/// The hub on the engine the settings ask for, the port to listen on, and this node's name when
/// it is known before the server is bound: always on the Redis engine, which announces it to the
/// other nodes from the start. There, with `--port 0` and no `--node-name`, a free port is picked
/// here so that the default name `HOSTNAME:PORT` carries the port the node listens on.
fn build_hub(
    config: HubConfig,
    registry: Registry,
    engine: &Engine,
    host: IpAddr,
    port: u16,
) -> Result<(Hub, u16, Option<String>), String> {
    let Some(redis) = &engine.redis else { return Ok((Hub::new(config, registry), port, engine.node_name.clone())) };
    let (port, node_name) = match &engine.node_name {
        Some(name) => (port, name.clone()),
        None if port == 0 => {
            let port = std::net::TcpListener::bind((host, 0))
                .and_then(|listener| listener.local_addr())
                .map_err(|e| format!("cannot listen on {host}:0: {e}"))?
                .port();
            (port, default_node_name(port))
        }
        None => (port, default_node_name(port)),
    };
    let mut options = RedisOptions::new(redis.url.expose())
        .node_name(node_name.clone())
        .presence_ttl(engine.presence_ttl)
        .prefix(engine.prefix.clone());
    if let Some(password) = &redis.password {
        options = options.password(password.expose());
    }
    if let Some(pem) = &redis.ca_pem {
        options = options.ca_pem(pem.clone());
    }
    let hub = Hub::with_redis(config, registry, options)
        .map_err(|error| format!("--redis {}: {error}", redis.url.redacted()))?;
    Ok((hub, port, Some(node_name)))
}

/// The token protocol on `hub`, verifying `refresh` and subscription tokens with the server's
/// keys, and asking the publish proxy about client publishes, when those are configured.
fn token_server(hub: &Hub, heartbeat: std::time::Duration, auth: &AuthSettings, client: &ProxyClient) -> TokenServer {
    let mut token = TokenServer::new(hub.clone(), heartbeat);
    if let Some(keys) = &auth.token_keys {
        token = token.with_verifier(Arc::new(JwtVerifier(Arc::clone(keys))));
    }
    if let Some(url) = &auth.publish_proxy {
        let backend = PublishBackend {
            url: url.clone(),
            timeout: auth.proxy_timeout,
            max_data_bytes: hub.config().max_data_bytes,
        };
        let proxy = PublishProxy { client: client.clone(), backend };
        token = token.with_hooks(Arc::new(proxy));
    }
    token
}

/// Serves `routes` (the server API, the metrics page, the dashboard) alone on `port` of `host`
/// (`--internal-port`): a server of its own with no WebSocket route but the dashboard's, the main
/// one's limits, and plain HTTP (it is meant for a private network; TLS stays on the public port).
/// Returns its address and the handle that stops it.
async fn serve_internal(
    config: ServerConfig,
    host: std::net::IpAddr,
    port: u16,
    routes: axum::Router,
    admin: Option<&Admin>,
) -> Result<(std::net::SocketAddr, ServerHandle), String> {
    let not_found = || async { (axum::http::StatusCode::NOT_FOUND, "not found\n") };
    let mut server = Server::new(ServerConfig { tls: None, ..config });
    if let Some(admin) = admin {
        let (options, socket) = admin.socket_route();
        server = server.route_with(admin::SOCKET_PATH, options, socket);
    }
    let server = server
        .http(routes.fallback(not_found))
        .bind((host, port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port} (--internal-port): {e}"))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let handle = server.handle();
    tokio::spawn(async move {
        if let Err(error) = server.run().await {
            tracing::error!(%error, "the internal port's listener failed");
        }
    });
    tracing::info!(%addr, "listening on the internal port");
    Ok((addr, handle))
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

/// Says at startup which engine the hub runs on (never the Redis password: the URL is redacted).
fn log_engine(engine: &Engine, node_name: &str) {
    match &engine.redis {
        None => tracing::info!(node = node_name, "engine: memory (this node alone)"),
        Some(redis) => tracing::info!(
            node = node_name,
            url = redis.url.redacted(),
            password_file = redis.password.is_some(),
            ca_file = redis.ca_pem.is_some(),
            prefix = engine.prefix,
            presence_ttl_secs = engine.presence_ttl.as_secs(),
            "engine: redis"
        ),
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
