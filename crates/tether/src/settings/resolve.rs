//! Settings with every default applied: the [`ServerConfig`] and [`HubConfig`] the server is built
//! from, the TLS material loaded, and the per-route limits derived from them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use tether_hub::HubConfig;
use tether_tokio::{OriginPolicy, ServerConfig};

use super::auth::AuthSettings;
use super::engine::Engine;
use super::fields::ServeSettings;

/// Room for the token protocol's envelope (type, id, channel, ...) around a `data` of
/// max_data_bytes: a `/tether` message may be that much larger than its data.
pub const ENVELOPE_ROOM: usize = 64 * 1024;

/// The largest message and frame on the question demo's route `/`: its questions are one digit.
pub const QUESTION_LIMIT: usize = 4 * 1024;

/// A route's (message, frame) limits for a route that wants `limit`: never above the server-wide
/// ones, so a route can only be stricter than the server.
pub fn route_limits(limit: usize, server: &ServerConfig) -> (usize, usize) {
    (limit.min(server.connection.max_message_size), limit.min(server.connection.max_frame_size))
}

/// Settings with every default applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub host: IpAddr,
    pub port: u16,
    pub static_dir: Option<PathBuf>,
    pub server: ServerConfig,
    pub hub: HubConfig,
    /// Worker threads; `None` = one per core.
    pub threads: Option<usize>,
    /// Mount the demos (`/`, `/echo`, the pages).
    pub demos: bool,
    /// Largest message and frame on `/tether`: max_data_bytes plus [`ENVELOPE_ROOM`], never above
    /// the server-wide limits.
    pub token_message_limit: usize,
    pub token_frame_limit: usize,
    /// Tokens, proxies, the API key, demo tokens and namespaces.
    pub auth: AuthSettings,
    /// Serve `GET /metrics` (on the internal port when there is one).
    pub metrics: bool,
    /// The in-memory engine or Redis, the node's name and presence expiry.
    pub engine: Engine,
}

impl ServeSettings {
    /// Applies the defaults and loads TLS material. Expects validated settings ([`Self::load`]).
    pub fn resolve(self) -> Result<Resolved, String> {
        let demos = self.demos();
        let defaults = ServerConfig::default();
        // Zero is "off" for the two timers; the library treats Duration::ZERO so.
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
        let deflate = &mut server.connection.deflate;
        if let Some(bits) = self.deflate_window_bits {
            deflate.max_window_bits = bits;
            deflate.request_peer_max_window_bits = Some(bits);
        }
        if let Some(mem_level) = self.deflate_mem_level {
            deflate.mem_level = mem_level;
        }
        if let Some(level) = self.deflate_level {
            deflate.level = u32::from(level);
        }
        if self.deflate_no_context_takeover {
            deflate.no_context_takeover = true;
            deflate.request_peer_no_context_takeover = true;
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                server.tls = Some(tether_tokio::tls::load_server_config(cert, key).map_err(|e| tls_error(&e))?);
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
            request_rate: self.request_rate.unwrap_or(hub_defaults.request_rate),
            request_burst: self.request_burst.unwrap_or(hub_defaults.request_burst),
            max_subscriptions: self.max_subscriptions.unwrap_or(hub_defaults.max_subscriptions),
            max_channels: self.max_channels.unwrap_or(hub_defaults.max_channels),
            max_data_bytes: self.max_data_bytes.unwrap_or(hub_defaults.max_data_bytes),
            max_history_bytes: self.max_history_bytes.unwrap_or(hub_defaults.max_history_bytes),
            max_history_reply_bytes: self.max_history_reply_bytes.unwrap_or(hub_defaults.max_history_reply_bytes),
            ..hub_defaults
        };
        let (token_message_limit, token_frame_limit) =
            route_limits(hub.max_data_bytes.saturating_add(ENVELOPE_ROOM), &server);
        let port = self.port.unwrap_or(8787);
        let auth = self.resolve_auth(port)?;
        let engine = self.engine.resolve()?;
        let hub = HubConfig {
            namespaces: super::namespaces::hub_namespaces(&auth.namespaces),
            // A publish proxy answers within its own timeout; the hub's bound on hooks stays above it.
            hook_timeout: hub.hook_timeout.max(auth.proxy_timeout * 2),
            direct_messages: self.direct_messages.unwrap_or_default(),
            ..hub
        };
        Ok(Resolved {
            auth,
            token_message_limit,
            token_frame_limit,
            hub,
            host: self.host.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            port,
            static_dir: self.static_dir,
            threads: self.threads,
            demos,
            server,
            metrics: self.metrics,
            engine,
        })
    }
}

/// A TLS loading error as a sentence: rustls' own wording names enum variants.
fn tls_error(error: &std::io::Error) -> String {
    let text = error.to_string();
    match crate::connect::tls_sentence(&text) {
        Some(sentence) => {
            let what = text.split(": ").next().unwrap_or("TLS");
            format!("{what}: {sentence}")
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let resolved = ServeSettings::default().resolve().unwrap();
        assert_eq!(resolved.port, 8787);
        assert_eq!(resolved.host.to_string(), "127.0.0.1");
        assert_eq!(resolved.server.idle_timeout, Duration::from_secs(120));
        assert!(resolved.server.compression);
        assert!(resolved.demos);
        assert!(!resolved.metrics, "metrics are off unless asked for");
        assert_eq!(resolved.token_message_limit, 128 * 1024, "64 KiB data + 64 KiB envelope");
        assert_eq!(resolved.hub.max_channels, 100_000);
        assert_eq!(resolved.hub.max_history_reply_bytes, 1 << 20);
        let deflate = &resolved.server.connection.deflate;
        assert_eq!((deflate.max_window_bits, deflate.request_peer_max_window_bits), (12, Some(12)));
        assert_eq!((deflate.mem_level, deflate.level, deflate.no_context_takeover), (5, 1, false));
    }

    #[test]
    fn deflate_settings_reach_the_server() {
        let settings = ServeSettings {
            deflate_window_bits: Some(15),
            deflate_mem_level: Some(4),
            deflate_level: Some(6),
            deflate_no_context_takeover: true,
            ..ServeSettings::default()
        };
        let resolved = settings.resolve().unwrap();
        let deflate = &resolved.server.connection.deflate;
        assert_eq!((deflate.max_window_bits, deflate.request_peer_max_window_bits), (15, Some(15)));
        assert_eq!((deflate.mem_level, deflate.level), (4, 6));
        assert!(deflate.no_context_takeover && deflate.request_peer_no_context_takeover);
    }

    #[test]
    fn hub_settings_of_auth_reach_the_hub() {
        let resolved = ServeSettings::default().resolve().unwrap();
        assert_eq!(resolved.hub.direct_messages, tether_hub::SendRule::Any, "open by default");
        assert_eq!(resolved.auth.demo_token_lifetime, Duration::from_secs(30));
        assert_eq!(resolved.hub.hook_timeout, Duration::from_secs(10));
        let settings: ServeSettings = toml::from_str(
            "direct_messages = \"authenticated\"\ndemo_token_secs = 4\nproxy_timeout = 20\n\
             [namespaces.chat]\npublish = \"server\"",
        )
        .unwrap();
        let resolved = settings.resolve().unwrap();
        assert_eq!(resolved.hub.direct_messages, tether_hub::SendRule::Authenticated);
        assert_eq!(resolved.auth.demo_token_lifetime, Duration::from_secs(4));
        assert_eq!(resolved.hub.hook_timeout, Duration::from_secs(40), "above the proxy's own timeout");
        assert_eq!(resolved.hub.namespaces.policy_for("chat:x").publish, tether_hub::PublishRule::Server);
        assert!(toml::from_str::<ServeSettings>("direct_messages = \"everyone\"").is_err());
        assert_eq!(super::super::fields::send_rule("server"), Ok(tether_hub::SendRule::Server));
        assert!(super::super::fields::send_rule("everyone").is_err());
    }

    #[test]
    fn metrics_are_turned_on_by_the_flag_or_the_file() {
        let file: ServeSettings = toml::from_str("metrics = true").unwrap();
        assert!(file.clone().resolve().unwrap().metrics);
        assert!(ServeSettings::default().over(file).resolve().unwrap().metrics, "the file's, under no flag");
        let flag = ServeSettings { metrics: true, ..ServeSettings::default() };
        assert!(flag.over(ServeSettings::default()).resolve().unwrap().metrics);
        assert!(toml::from_str::<ServeSettings>("metrics = \"yes\"").is_err(), "a boolean only");
    }

    #[test]
    fn the_route_limits_follow_max_data_bytes_but_never_exceed_the_server_limits() {
        let resolved = ServeSettings { max_data_bytes: Some(1000), ..ServeSettings::default() }.resolve().unwrap();
        assert_eq!(resolved.token_message_limit, 1000 + ENVELOPE_ROOM);
        let small = ServeSettings { max_message_size: Some(2048), ..ServeSettings::default() }.resolve().unwrap();
        assert_eq!(small.token_message_limit, 2048);
    }
}
