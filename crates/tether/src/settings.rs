//! Settings of `tether serve`: one struct that is both the command line and the TOML file.
//!
//! Every field is optional in both places. A flag given on the command line wins over the file
//! (`--config tether.toml`), and the file wins over the built-in default. The defaults are in
//! [`ServeSettings::resolve`] and in each flag's help.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use tether_tokio::hub::HubConfig;
use tether_tokio::{OriginPolicy, ServerConfig};

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
    /// Port to listen on; 0 picks a free one, printed as `listening on ws://HOST:PORT` [default: 8787].
    #[arg(long, short)]
    pub port: Option<u16>,
    /// Allow WebSocket connections from this browser origin (repeatable; `*` allows any). Requests
    /// without Origin and same-origin requests are always allowed; others get 403.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// TLS certificate chain (PEM): serve wss:// and https:// on the same port. Needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM). Needs --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP requests from this directory (the built-in demo pages remain as fallback).
    #[arg(long = "static", value_name = "DIR")]
    #[serde(rename = "static")]
    pub static_dir: Option<PathBuf>,
    /// Seconds between server pings on each connection [default: 30].
    #[arg(long, value_name = "SECS")]
    pub ping_interval: Option<u64>,
    /// Close (1001) a connection that sent nothing for this many seconds [default: 120].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// Seconds a client has to complete TLS and the opening handshake; then 408 [default: 10].
    #[arg(long, value_name = "SECS")]
    pub handshake_timeout: Option<u64>,
    /// Seconds the peer has to answer a Close frame and close TCP [default: 5].
    #[arg(long, value_name = "SECS")]
    pub close_timeout: Option<u64>,
    /// On SIGINT/SIGTERM, seconds to wait for connections to finish closing (1001) [default: 10].
    #[arg(long, value_name = "SECS")]
    pub drain_timeout: Option<u64>,
    /// Open connections at most; more get 503 [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest request head in bytes; larger get 431 [default: 16384].
    #[arg(long, value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Largest frame payload in bytes; larger close with 1009 [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    pub max_frame_size: Option<usize>,
    /// Largest message in bytes, after decompression; larger close with 1009 [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    pub max_message_size: Option<usize>,
    /// Bytes queued for one connection at most; a slower reader is closed with 1008 [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    pub max_queue_bytes: Option<usize>,
    /// Token protocol: messages kept per channel for history and recovery [default: 100].
    #[arg(long, value_name = "N")]
    pub channel_history: Option<usize>,
    /// Token protocol: seconds a message stays in a channel's history [default: 300].
    #[arg(long, value_name = "SECS")]
    pub channel_history_secs: Option<u64>,
    /// Token protocol: publishes and sends per second per connection; more get `rate_limited`
    /// [default: 50].
    #[arg(long, value_name = "PER_SEC")]
    pub publish_rate: Option<f64>,
    /// Token protocol: burst allowed above the publish rate [default: 100].
    #[arg(long, value_name = "N")]
    pub publish_burst: Option<f64>,
    /// Token protocol: channels one connection may join; more get `limit_exceeded` [default: 100].
    #[arg(long, value_name = "N")]
    pub max_subscriptions: Option<usize>,
    /// Token protocol: largest `data` of a publish or send, in bytes of JSON; larger get `too_large`
    /// [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub max_data_bytes: Option<usize>,
    /// Worker threads of the server's runtime; 1 runs everything on one thread (tokio's
    /// current-thread scheduler) [default: one per CPU core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Never negotiate permessage-deflate [default: false].
    #[arg(long)]
    #[serde(rename = "no_compression")]
    pub no_compression: bool,
}

/// Settings with every default applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub host: IpAddr,
    pub port: u16,
    pub static_dir: Option<PathBuf>,
    pub server: ServerConfig,
    pub hub: HubConfig,
}

impl ServeSettings {
    /// Reads the file named by `--config`, if any, under the command-line values.
    pub fn with_file(self) -> Result<Self, String> {
        let Some(path) = self.config.clone() else { return Ok(self) };
        let file = Self::from_file(&path)?;
        Ok(self.over(file))
    }

    fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// `self` (the command line) over `file`.
    fn over(self, file: Self) -> Self {
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
            max_subscriptions: self.max_subscriptions.or(file.max_subscriptions),
            max_data_bytes: self.max_data_bytes.or(file.max_data_bytes),
            no_compression: self.no_compression || file.no_compression,
        }
    }

    /// Applies the defaults and loads TLS material.
    pub fn resolve(self) -> Result<Resolved, String> {
        let defaults = ServerConfig::default();
        let secs = |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_secs);
        let mut server = ServerConfig {
            handshake_timeout: secs(self.handshake_timeout, defaults.handshake_timeout),
            close_timeout: secs(self.close_timeout, defaults.close_timeout),
            ping_interval: secs(self.ping_interval, defaults.ping_interval),
            idle_timeout: secs(self.idle_timeout, defaults.idle_timeout),
            drain_timeout: secs(self.drain_timeout, defaults.drain_timeout),
            max_connections: self.max_connections.unwrap_or(defaults.max_connections),
            max_queue_bytes: self.max_queue_bytes.unwrap_or(defaults.max_queue_bytes),
            compression: !self.no_compression,
            origins: self.allowed_origins.iter().fold(OriginPolicy::same_origin(), |policy, o| policy.allow(o)),
            ..defaults
        };
        if let Some(bytes) = self.max_header_bytes {
            server.head_limits.max_bytes = bytes;
        }
        if let Some(bytes) = self.max_frame_size {
            server.connection.max_frame_size = bytes;
        }
        if let Some(bytes) = self.max_message_size {
            server.connection.max_message_size = bytes;
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                server.tls = Some(tether_tokio::tls::load_server_config(cert, key).map_err(|e| e.to_string())?);
            }
            (None, None) => {}
            _ => return Err("--tls-cert and --tls-key go together".into()),
        }
        let hub_defaults = HubConfig::default();
        let hub = HubConfig {
            history_size: self.channel_history.unwrap_or(hub_defaults.history_size),
            history_ttl: secs(self.channel_history_secs, hub_defaults.history_ttl),
            publish_rate: self.publish_rate.unwrap_or(hub_defaults.publish_rate),
            publish_burst: self.publish_burst.unwrap_or(hub_defaults.publish_burst),
            max_subscriptions: self.max_subscriptions.unwrap_or(hub_defaults.max_subscriptions),
            max_data_bytes: self.max_data_bytes.unwrap_or(hub_defaults.max_data_bytes),
            ..hub_defaults
        };
        Ok(Resolved {
            hub,
            host: self.host.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            port: self.port.unwrap_or(8787),
            static_dir: self.static_dir,
            server,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_flags_win() {
        let example: ServeSettings =
            toml::from_str(include_str!("../../../tether.example.toml")).expect("example config parses");
        let cli = ServeSettings { port: Some(9000), ..ServeSettings::default() };
        let merged = cli.over(example.clone());
        assert_eq!(merged.port, Some(9000));
        assert_eq!(merged.host, example.host);
        let resolved = merged.resolve().unwrap();
        assert_eq!(resolved.port, 9000);
    }

    #[test]
    fn defaults() {
        let resolved = ServeSettings::default().resolve().unwrap();
        assert_eq!(resolved.port, 8787);
        assert_eq!(resolved.host.to_string(), "127.0.0.1");
        assert_eq!(resolved.server.idle_timeout, Duration::from_secs(120));
        assert!(resolved.server.compression);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<ServeSettings>("prot = 1").is_err());
    }
}
