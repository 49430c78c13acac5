//! The struct that is both `tether serve`'s command line and its TOML file, and how the two
//! combine: a flag given on the command line wins over the file.
//!
//! Only the fields and their help live here; ranges are checked in `ranges`, defaults applied in
//! `resolve`, so that adding a setting means one field here, one range and one default there.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use tether_hub::SendRule;

use super::engine::EngineSettings;
use super::namespaces::NamespaceSettings;
use crate::auth::Secret;

/// `tether serve` flags, and the keys of the config file (same names, with `_` for `-`).
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// Read settings from this TOML file (flags given on the command line win).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// Port to listen on, 0..=65535; 0 picks a free one, printed as `listening on ws://HOST:PORT`
    /// [default: 8787].
    #[arg(long, short)]
    pub port: Option<u16>,
    /// Allow WebSocket connections from this browser origin, `scheme://host[:port]` (repeatable;
    /// `*` allows any). Requests without Origin and same-origin requests are always allowed;
    /// others get 403.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// TLS certificate chain (PEM): serve wss:// and https:// on the same port. Needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM). Needs --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP requests from this existing directory (the built-in demo pages remain as
    /// fallback unless --no-demos).
    #[arg(long = "static", value_name = "DIR")]
    #[serde(rename = "static")]
    pub static_dir: Option<PathBuf>,
    /// Seconds between server pings on each connection, 0..=86400; 0 = off (no keepalive pings)
    /// [default: 30].
    #[arg(long, value_name = "SECS")]
    pub ping_interval: Option<u64>,
    /// Close (1001) a connection that sent nothing for this many seconds, 0..=86400; 0 = off (no
    /// idle timeout) [default: 120].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// Seconds a client has to complete TLS and the opening handshake, 1..=300; then 408
    /// [default: 10].
    #[arg(long, value_name = "SECS")]
    pub handshake_timeout: Option<u64>,
    /// Seconds the peer has to answer a Close frame and close TCP, 1..=300 [default: 5].
    #[arg(long, value_name = "SECS")]
    pub close_timeout: Option<u64>,
    /// On SIGINT/SIGTERM, seconds to wait for connections to finish closing (1001), 1..=3600
    /// [default: 10].
    #[arg(long, value_name = "SECS")]
    pub drain_timeout: Option<u64>,
    /// Open connections at most, 1..=1000000; more get 503 [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest request head in bytes, 1024..=1048576; larger get 431 [default: 16384].
    #[arg(long, value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Largest frame payload in bytes, 1024..=1073741824 (1 GiB); larger close with 1009
    /// [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    pub max_frame_size: Option<usize>,
    /// Largest message in bytes after decompression, 1024..=1073741824 (1 GiB); larger close with
    /// 1009 [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    pub max_message_size: Option<usize>,
    /// Bytes queued for one connection at most, 4096..=1073741824 (1 GiB); a slower reader is
    /// closed with 1008 [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    pub max_queue_bytes: Option<usize>,
    /// Token protocol: messages kept per channel for history and recovery, 0..=100000; 0 keeps
    /// none [default: 100].
    #[arg(long, value_name = "N")]
    pub channel_history: Option<usize>,
    /// Token protocol: seconds a message stays in a channel's history, 1..=604800 (a week)
    /// [default: 300].
    #[arg(long, value_name = "SECS")]
    pub channel_history_secs: Option<u64>,
    /// Token protocol: publishes and sends per second per connection, 0.001..=1000000; more get
    /// `rate_limited` [default: 50].
    #[arg(long, value_name = "PER_SEC", allow_negative_numbers = true, value_parser = finite)]
    pub publish_rate: Option<f64>,
    /// Token protocol: burst allowed above the publish rate, 1..=1000000 [default: 100].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = finite)]
    pub publish_burst: Option<f64>,
    /// Token protocol: requests of any type per second per connection, 0.001..=1000000; more get
    /// `rate_limited` [default: 100].
    #[arg(long, value_name = "PER_SEC", allow_negative_numbers = true, value_parser = finite)]
    pub request_rate: Option<f64>,
    /// Token protocol: burst allowed above the request rate, 1..=1000000 [default: 200].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = finite)]
    pub request_burst: Option<f64>,
    /// Token protocol: channels one connection may join, 1..=100000; more get `limit_exceeded`
    /// [default: 100].
    #[arg(long, value_name = "N")]
    pub max_subscriptions: Option<usize>,
    /// Token protocol: channels the server holds at most, 1..=10000000; a request that would
    /// create one more gets `limit_exceeded` [default: 100000].
    #[arg(long, value_name = "N")]
    pub max_channels: Option<usize>,
    /// Token protocol: largest `data` of a publish or send, in bytes of JSON, 1..=16777216; larger
    /// get `too_large` [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub max_data_bytes: Option<usize>,
    /// Token protocol: bytes of history kept over all channels, 0..=17179869184 (16 GiB); past it
    /// the oldest entries go first [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    pub max_history_bytes: Option<usize>,
    /// Token protocol: largest history answer (or subscribe recovery) in bytes, 1024..=67108864;
    /// what fits is sent (with `since` the oldest after it, else the newest), marked
    /// `"truncated":true` [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_history_reply_bytes: Option<usize>,
    /// Worker threads of the server's runtime, 1..=1024; 1 runs everything on one thread (tokio's
    /// current-thread scheduler) [default: one per CPU core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Log lines as `text` (coloured only on a terminal) or `json` (one object per line)
    /// [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Never negotiate permessage-deflate [default: false].
    #[arg(long)]
    #[serde(rename = "no_compression")]
    pub no_compression: bool,
    /// permessage-deflate: the LZ77 window in bits, 9..=15, that the server compresses with
    /// (`server_max_window_bits`) and asks clients that can to compress with
    /// (`client_max_window_bits`). With context takeover a connection keeps this window of what it
    /// received and 1 KiB of what it sent [default: 12, 4 KiB].
    #[arg(long, value_name = "BITS")]
    pub deflate_window_bits: Option<u8>,
    /// permessage-deflate: zlib's memLevel, 1..=9, of the server's compressors; they are kept per
    /// thread, not per connection [default: 5].
    #[arg(long, value_name = "N")]
    pub deflate_mem_level: Option<u8>,
    /// permessage-deflate: zlib's compression level, 0..=9 [default: 1].
    #[arg(long, value_name = "N")]
    pub deflate_level: Option<u8>,
    /// permessage-deflate: no context takeover either way (answer `server_no_context_takeover`
    /// and `client_no_context_takeover`): a connection keeps no window at all, and small
    /// messages compress worse [default: false].
    #[arg(long)]
    pub deflate_no_context_takeover: bool,
    /// Serve only the token protocol `/tether`, `/healthz`, `/readyz` and --static: no question
    /// demo on `/`, no `/echo`, no built-in pages (TOML: `demos = false`).
    #[arg(long)]
    #[serde(skip)]
    pub no_demos: bool,
    /// TOML only (`demos = false`); the flag is `--no-demos`.
    #[arg(skip)]
    pub demos: Option<bool>,
    /// Auth: HMAC secret of connection and subscription tokens (HS256, HS384, HS512), 32..=4096
    /// bytes (RFC 7518 §3.2). Prefer --token-hmac-secret-file: a flag shows in `ps` [default: none].
    #[arg(long, value_name = "SECRET", value_parser = secret)]
    pub token_hmac_secret: Option<Secret>,
    /// Auth: file holding the HMAC secret (one trailing newline is dropped), read at startup
    /// [default: none].
    #[arg(long, value_name = "FILE")]
    pub token_hmac_secret_file: Option<PathBuf>,
    /// Auth: PEM file of the public key tokens are signed for: RSA (RS256) or EC P-256 (ES256),
    /// read at startup [default: none].
    #[arg(long, value_name = "PEM-FILE")]
    pub token_public_key: Option<PathBuf>,
    /// Auth: required `aud` of every token, 1..=256 characters [default: not checked].
    #[arg(long, value_name = "AUDIENCE")]
    pub token_audience: Option<String>,
    /// Auth: required `iss` of every token, 1..=256 characters [default: not checked].
    #[arg(long, value_name = "ISSUER")]
    pub token_issuer: Option<String>,
    /// Auth: let clients without a token in (anonymous) when tokens are configured; a bad token
    /// is still refused [default: false].
    #[arg(long)]
    pub allow_anonymous: bool,
    /// Auth: POST each upgrade's request to this http:// URL (no query) first; its answer admits
    /// (200) or refuses (4xx passed on; 5xx or timeout: 503) the client [default: none].
    #[arg(long, value_name = "URL")]
    pub connect_proxy: Option<String>,
    /// POST each client publish to this http:// URL (no query) first; it accepts, replaces the
    /// data or refuses (`forbidden`) [default: none].
    #[arg(long, value_name = "URL")]
    pub publish_proxy: Option<String>,
    /// Seconds the connect and publish proxies have to answer, 0.01..=60 (decimal); then 503 or
    /// `unavailable` [default: 1].
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = finite)]
    pub proxy_timeout: Option<f64>,
    /// Server HTTP API key (`X-API-Key`), 16..=1024 visible ASCII characters; without one the API
    /// is off (404). Prefer --api-key-file [default: none].
    #[arg(long, value_name = "KEY", value_parser = secret)]
    pub api_key: Option<Secret>,
    /// File holding the API key (one trailing newline is dropped), read at startup
    /// [default: none].
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Serve `/api/*`, `/metrics` and `/admin` with `/admin/ws` (each when it is on) only on this
    /// port, 0..=65535 (0 = any free port), not --port; needs an API key, --metrics or an admin
    /// password. It binds --host: with --host 0.0.0.0 it is public, so firewall it [default: they
    /// are on --port].
    #[arg(long, value_name = "PORT")]
    pub internal_port: Option<u16>,
    /// Admin dashboard password, 8..=1024 bytes: turns on `/admin` (a login form, then live
    /// counters and tables of connections and channels); without one `/admin` is off (404).
    /// Served on --internal-port when that is set. Prefer --admin-password-file [default: none].
    #[arg(long, value_name = "PASSWORD", value_parser = secret)]
    pub admin_password: Option<Secret>,
    /// File holding the admin password (one trailing newline is dropped), read at startup
    /// [default: none].
    #[arg(long, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// Mark the admin dashboard's cookies `Secure` and accept only an `https` Origin, as when it
    /// is served over TLS: for a TLS-terminating reverse proxy in front of a plain-HTTP port
    /// (docs/admin.md) [default: on when the dashboard is served over TLS].
    #[arg(long)]
    pub admin_secure_cookie: bool,
    /// A host name the admin dashboard answers at (repeatable), besides IP addresses and
    /// `localhost`; other `Host`s get 421 (against DNS rebinding) [default: none].
    #[arg(long = "admin-host", value_name = "NAME")]
    pub admin_hosts: Vec<String>,
    /// `GET /demo/token?user=NICK` signs short-lived tokens for any nickname (demos only: anyone
    /// gets a token), and `/tether` then needs a token. They are signed with a random secret of
    /// this process; refused with --token-hmac-secret(-file) [default: false].
    #[arg(long)]
    pub demo_tokens: bool,
    /// Seconds a demo token is valid, 2..=3600 [default: 30].
    #[arg(long, value_name = "SECS")]
    pub demo_token_secs: Option<u64>,
    /// Token protocol: who may `send` direct messages to other connections: `any`,
    /// `authenticated` (connections with a user) or `server` (only the server API) [default: any].
    #[arg(long, value_name = "WHO", value_parser = send_rule)]
    pub direct_messages: Option<SendRule>,
    /// Serve Prometheus metrics on `GET /metrics` (OpenMetrics text, docs/observability.md); on
    /// --internal-port only when that is set [default: false].
    #[arg(long)]
    pub metrics: bool,
    /// TOML only: `[namespaces.NAME]` channel policies (docs/limits.md, "Namespaces").
    #[arg(skip)]
    pub namespaces: BTreeMap<String, NamespaceSettings>,
    /// The engine: `[engine]` in the TOML file, flags `--redis` and the others at the top level.
    #[command(flatten)]
    pub engine: EngineSettings,
}

/// `--direct-messages`: the hub's rule, by the name the TOML file uses too.
pub(super) fn send_rule(arg: &str) -> Result<SendRule, String> {
    SendRule::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(arg))
        .map_err(|_| "expected any, authenticated or server".into())
}

/// A secret from the command line; checked with the others, in `validate`.
fn secret(arg: &str) -> Result<Secret, String> {
    Ok(Secret::new(arg))
}

/// A finite number (`nan` and `inf` parse as floats, but no rate or burst can be either). The
/// range itself is checked with the others, in `validate`.
fn finite(arg: &str) -> Result<f64, String> {
    match arg.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err("not a finite number".into()),
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl ServeSettings {
    /// `self` (the command line) over `file`.
    pub(super) fn over(self, file: Self) -> Self {
        Self {
            config: self.config,
            host: self.host.or(file.host),
            port: self.port.or(file.port),
            allowed_origins: if self.allowed_origins.is_empty() { file.allowed_origins } else { self.allowed_origins },
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            static_dir: self.static_dir.or(file.static_dir),
            ping_interval: self.ping_interval.or(file.ping_interval),
            idle_timeout: self.idle_timeout.or(file.idle_timeout),
            handshake_timeout: self.handshake_timeout.or(file.handshake_timeout),
            close_timeout: self.close_timeout.or(file.close_timeout),
            drain_timeout: self.drain_timeout.or(file.drain_timeout),
            max_connections: self.max_connections.or(file.max_connections),
            max_header_bytes: self.max_header_bytes.or(file.max_header_bytes),
            max_frame_size: self.max_frame_size.or(file.max_frame_size),
            max_message_size: self.max_message_size.or(file.max_message_size),
            max_queue_bytes: self.max_queue_bytes.or(file.max_queue_bytes),
            threads: self.threads.or(file.threads),
            channel_history: self.channel_history.or(file.channel_history),
            channel_history_secs: self.channel_history_secs.or(file.channel_history_secs),
            publish_rate: self.publish_rate.or(file.publish_rate),
            publish_burst: self.publish_burst.or(file.publish_burst),
            request_rate: self.request_rate.or(file.request_rate),
            request_burst: self.request_burst.or(file.request_burst),
            max_subscriptions: self.max_subscriptions.or(file.max_subscriptions),
            max_channels: self.max_channels.or(file.max_channels),
            max_data_bytes: self.max_data_bytes.or(file.max_data_bytes),
            max_history_bytes: self.max_history_bytes.or(file.max_history_bytes),
            max_history_reply_bytes: self.max_history_reply_bytes.or(file.max_history_reply_bytes),
            log_format: self.log_format.or(file.log_format),
            no_compression: self.no_compression || file.no_compression,
            deflate_window_bits: self.deflate_window_bits.or(file.deflate_window_bits),
            deflate_mem_level: self.deflate_mem_level.or(file.deflate_mem_level),
            deflate_level: self.deflate_level.or(file.deflate_level),
            deflate_no_context_takeover: self.deflate_no_context_takeover || file.deflate_no_context_takeover,
            no_demos: self.no_demos,
            demos: if self.no_demos { Some(false) } else { file.demos },
            // A secret and its file are one setting: the command line's pair wins whole, so that a
            // flag never meets the file's other half (which would be "both given").
            token_hmac_secret: pair(&self.token_hmac_secret, &self.token_hmac_secret_file, &file.token_hmac_secret),
            token_hmac_secret_file: pair(
                &self.token_hmac_secret_file,
                &self.token_hmac_secret,
                &file.token_hmac_secret_file,
            ),
            token_public_key: self.token_public_key.or(file.token_public_key),
            token_audience: self.token_audience.or(file.token_audience),
            token_issuer: self.token_issuer.or(file.token_issuer),
            allow_anonymous: self.allow_anonymous || file.allow_anonymous,
            connect_proxy: self.connect_proxy.or(file.connect_proxy),
            publish_proxy: self.publish_proxy.or(file.publish_proxy),
            proxy_timeout: self.proxy_timeout.or(file.proxy_timeout),
            api_key: pair(&self.api_key, &self.api_key_file, &file.api_key),
            api_key_file: pair(&self.api_key_file, &self.api_key, &file.api_key_file),
            internal_port: self.internal_port.or(file.internal_port),
            admin_password: pair(&self.admin_password, &self.admin_password_file, &file.admin_password),
            admin_password_file: pair(&self.admin_password_file, &self.admin_password, &file.admin_password_file),
            admin_secure_cookie: self.admin_secure_cookie || file.admin_secure_cookie,
            admin_hosts: if self.admin_hosts.is_empty() { file.admin_hosts } else { self.admin_hosts },
            demo_tokens: self.demo_tokens || file.demo_tokens,
            demo_token_secs: self.demo_token_secs.or(file.demo_token_secs),
            direct_messages: self.direct_messages.or(file.direct_messages),
            metrics: self.metrics || file.metrics,
            namespaces: file.namespaces,
            engine: self.engine.over(file.engine),
        }
    }

    /// Whether the demos are mounted: not with `--no-demos` or `demos = false`.
    pub fn demos(&self) -> bool {
        !self.no_demos && self.demos.unwrap_or(true)
    }
}

/// One half of a secret-or-file pair, `cli` over `file`: the file's half only when the command
/// line gave neither half.
fn pair<T: Clone, U>(cli: &Option<T>, cli_other: &Option<U>, file: &Option<T>) -> Option<T> {
    match (cli, cli_other) {
        (None, None) => file.clone(),
        _ => cli.clone(),
    }
}
