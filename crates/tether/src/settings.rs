//! Settings of `tether serve`: one struct that is both the command line and the TOML file.
//!
//! Every field is optional in both places. A flag given on the command line wins over the file
//! (`--config tether.toml`), and the file wins over the built-in default. The defaults are in
//! [`ServeSettings::resolve`] and in each flag's help.
//!
//! Every numeric setting has a range ([`RANGES`], the same table `docs/limits.md` documents). A
//! value outside it, or one that is not a number of the right kind, is refused at startup with one
//! line naming the setting, the value and the range: a server that starts is a server whose
//! settings make sense (no ping storm from `--ping-interval 0.001`, no `Instant + Duration`
//! overflow from a huge timeout, no server that locks everyone out with `--max-connections 0`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use tether_hub::HubConfig;
use tether_tokio::{OriginPolicy, ServerConfig};

/// One day, the longest timer a setting may ask for: far from any `Instant + Duration` overflow.
const DAY: u64 = 86_400;
const GIB: f64 = (1u64 << 30) as f64;

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

/// The range of a numeric setting: `min..=max`, and the words that describe it in error messages
/// (which also say what 0 means where 0 is special).
#[derive(Debug)]
pub struct Range {
    pub key: &'static str,
    pub min: f64,
    pub max: f64,
    pub expected: &'static str,
}

const fn range(key: &'static str, min: f64, max: f64, expected: &'static str) -> Range {
    Range { key, min, max, expected }
}

/// Every numeric setting's range, by TOML key. Timers are capped at a day (a week for history),
/// so no deadline computed from them can overflow; sizes are capped at 1 GiB, so none asks for more
/// memory than a machine can have per connection; minima keep the server usable (a request head
/// must fit, one connection must be possible, a rate must refill).
pub const RANGES: &[Range] = &[
    range("port", 0.0, 65535.0, "a port 0..=65535 (0 = any free port)"),
    range("ping_interval", 0.0, DAY as f64, "whole seconds 0..=86400 (0 = off)"),
    range("idle_timeout", 0.0, DAY as f64, "whole seconds 0..=86400 (0 = off)"),
    range("handshake_timeout", 1.0, 300.0, "whole seconds 1..=300"),
    range("close_timeout", 1.0, 300.0, "whole seconds 1..=300"),
    range("drain_timeout", 1.0, 3600.0, "whole seconds 1..=3600"),
    range("max_connections", 1.0, 1_000_000.0, "a whole number 1..=1000000"),
    range("max_header_bytes", 1024.0, 1_048_576.0, "bytes 1024..=1048576"),
    range("max_frame_size", 1024.0, GIB, "bytes 1024..=1073741824 (1 GiB)"),
    range("max_message_size", 1024.0, GIB, "bytes 1024..=1073741824 (1 GiB)"),
    range("max_queue_bytes", 4096.0, GIB, "bytes 4096..=1073741824 (1 GiB)"),
    range("channel_history", 0.0, 100_000.0, "a whole number 0..=100000 (0 = no history)"),
    range("channel_history_secs", 1.0, 7.0 * DAY as f64, "whole seconds 1..=604800"),
    range("publish_rate", 0.001, 1_000_000.0, "a rate per second 0.001..=1000000"),
    range("publish_burst", 1.0, 1_000_000.0, "a number 1..=1000000"),
    range("request_rate", 0.001, 1_000_000.0, "a rate per second 0.001..=1000000"),
    range("request_burst", 1.0, 1_000_000.0, "a number 1..=1000000"),
    range("max_subscriptions", 1.0, 100_000.0, "a whole number 1..=100000"),
    range("max_channels", 1.0, 10_000_000.0, "a whole number 1..=10000000"),
    range("max_data_bytes", 1.0, 16_777_216.0, "bytes 1..=16777216"),
    range("max_history_bytes", 0.0, 16.0 * GIB, "bytes 0..=17179869184 (16 GiB)"),
    range("max_history_reply_bytes", 1024.0, 67_108_864.0, "bytes 1024..=67108864"),
    range("threads", 1.0, 1024.0, "a whole number 1..=1024"),
    range("deflate_window_bits", 9.0, 15.0, "a window in bits 9..=15"),
    range("deflate_mem_level", 1.0, 9.0, "a memLevel 1..=9"),
    range("deflate_level", 0.0, 9.0, "a zlib level 0..=9"),
];

/// The range of the setting with this TOML key.
pub fn range_of(key: &str) -> Option<&'static Range> {
    RANGES.iter().find(|range| range.key == key)
}

/// The command-line flag of a TOML key.
pub fn flag_of(key: &str) -> String {
    match key {
        "static" => "--static".into(),
        "allowed_origins" => "--allowed-origin".into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

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
}

/// Where a setting came from, for the error message.
enum Source<'a> {
    Flag,
    File(&'a Path),
}

/// A refused setting: its key, its value as written, and what was expected.
struct Invalid {
    key: &'static str,
    value: String,
    quoted: bool,
    expected: String,
}

impl Invalid {
    fn describe(&self, source: &Source) -> String {
        match source {
            Source::Flag => format!("{} {}: expected {}", flag_of(self.key), self.value, self.expected),
            Source::File(path) => {
                let value = if self.quoted { format!("{:?}", self.value) } else { self.value.clone() };
                format!("{}: {} = {value}: expected {}", path.display(), self.key, self.expected)
            }
        }
    }
}

/// Checks a number against its key's range in [`RANGES`].
fn check<T: std::fmt::Display>(key: &'static str, value: Option<T>, number: impl Fn(&T) -> f64) -> Result<(), Invalid> {
    let Some(value) = value else { return Ok(()) };
    let range = range_of(key).expect("every checked key has a range");
    let number = number(&value);
    if number.is_finite() && number >= range.min && number <= range.max {
        Ok(())
    } else {
        // The value as given, not as the f64 it was compared as (which may have rounded it).
        Err(Invalid { key, value: value.to_string(), quoted: false, expected: range.expected.into() })
    }
}

/// Whether `origin` is one the Origin policy can match: `*`, or `scheme://host[:port]` with
/// nothing else (an Origin header never has a path, a query or credentials).
pub fn is_valid_origin(origin: &str) -> bool {
    let origin = origin.trim();
    if origin == "*" {
        return true;
    }
    let Some((scheme, _)) = origin.split_once("://") else { return false };
    let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let Ok(url) = url::Url::parse(origin) else { return false };
    scheme_ok
        && url.host_str().is_some_and(|host| !host.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && matches!(url.path(), "" | "/")
        && !origin.trim_end_matches('/').ends_with(':')
        && url.query().is_none()
        && url.fragment().is_none()
}

impl ServeSettings {
    /// Validates the command line, then reads the file named by `--config` (if any), validates it
    /// and puts the command line over it. Errors are one line, ready to print after `tether: `.
    pub fn load(self) -> Result<Self, String> {
        self.validate().map_err(|invalid| invalid.describe(&Source::Flag))?;
        let Some(path) = self.config.clone() else { return Ok(self) };
        let file = Self::from_file(&path)?;
        file.validate().map_err(|invalid| invalid.describe(&Source::File(&path)))?;
        Ok(self.over(file))
    }

    fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|error| file_error(path, &text, &error))
    }

    /// The range and value checks, on whichever fields are set.
    fn validate(&self) -> Result<(), Invalid> {
        for (key, value) in [
            ("ping_interval", self.ping_interval),
            ("idle_timeout", self.idle_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("close_timeout", self.close_timeout),
            ("drain_timeout", self.drain_timeout),
            ("channel_history_secs", self.channel_history_secs),
        ] {
            check(key, value, |&v| v as f64)?;
        }
        for (key, value) in [
            ("max_connections", self.max_connections),
            ("max_header_bytes", self.max_header_bytes),
            ("max_frame_size", self.max_frame_size),
            ("max_message_size", self.max_message_size),
            ("max_queue_bytes", self.max_queue_bytes),
            ("channel_history", self.channel_history),
            ("max_subscriptions", self.max_subscriptions),
            ("max_channels", self.max_channels),
            ("max_data_bytes", self.max_data_bytes),
            ("max_history_bytes", self.max_history_bytes),
            ("max_history_reply_bytes", self.max_history_reply_bytes),
            ("threads", self.threads),
        ] {
            check(key, value, |&v| v as f64)?;
        }
        for (key, value) in [
            ("deflate_window_bits", self.deflate_window_bits),
            ("deflate_mem_level", self.deflate_mem_level),
            ("deflate_level", self.deflate_level),
        ] {
            check(key, value, |&v| f64::from(v))?;
        }
        for (key, value) in [
            ("publish_rate", self.publish_rate),
            ("publish_burst", self.publish_burst),
            ("request_rate", self.request_rate),
            ("request_burst", self.request_burst),
        ] {
            check(key, value, |&v| v)?;
        }
        if let Some(dir) = &self.static_dir {
            if !dir.is_dir() {
                return Err(Invalid {
                    key: "static",
                    value: dir.display().to_string(),
                    quoted: true,
                    expected: "an existing directory".into(),
                });
            }
        }
        if let Some(bad) = self.allowed_origins.iter().find(|origin| !is_valid_origin(origin)) {
            return Err(Invalid {
                key: "allowed_origins",
                value: bad.clone(),
                quoted: true,
                expected: "`*` or an origin scheme://host[:port], e.g. https://app.example.com".into(),
            });
        }
        Ok(())
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
        }
    }

    /// Whether the demos are mounted: not with `--no-demos` or `demos = false`.
    pub fn demos(&self) -> bool {
        !self.no_demos && self.demos.unwrap_or(true)
    }

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
        Ok(Resolved {
            token_message_limit,
            token_frame_limit,
            hub,
            host: self.host.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            port: self.port.unwrap_or(8787),
            static_dir: self.static_dir,
            threads: self.threads,
            demos,
            server,
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

/// A TOML error on one line: `FILE: key = value: what is wrong`, with the range when the key has
/// one (toml's own message spans several lines and shows the file's text).
fn file_error(path: &Path, text: &str, error: &toml::de::Error) -> String {
    let message = error.message().lines().next().unwrap_or("invalid TOML").trim().to_owned();
    let Some(span) = error.span() else { return format!("{}: {message}", path.display()) };
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let line_no = text[..span.start].matches('\n').count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line.split_once('=').map(|(key, _)| key.trim().trim_matches('"'));
    let value = text.get(span.clone()).unwrap_or("").trim();
    match key {
        Some(key) if !value.is_empty() && !value.contains('\n') && span.start > line_start => {
            let expected = range_of(key).map_or(message.clone(), |range| format!("expected {}", range.expected));
            format!("{}: {key} = {value}: {expected}", path.display())
        }
        _ => format!("{}:{line_no}: {message}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_flags_win() {
        let example: ServeSettings =
            toml::from_str(include_str!("../../../tether.example.toml")).expect("example config parses");
        example.validate().map_err(|e| e.describe(&Source::Flag)).expect("example values are in range");
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
        assert!(resolved.demos);
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
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<ServeSettings>("prot = 1").is_err());
    }

    fn refused(settings: ServeSettings) -> String {
        settings.validate().map(|()| "accepted".to_owned()).unwrap_or_else(|e| e.describe(&Source::Flag))
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_setting_the_value_and_the_range() {
        let s = ServeSettings::default;
        let cases = [
            (ServeSettings { idle_timeout: Some(u64::MAX), ..s() }, "--idle-timeout 18446744073709551615: expected whole seconds 0..=86400 (0 = off)"),
            (ServeSettings { ping_interval: Some(86_401), ..s() }, "--ping-interval 86401: expected whole seconds 0..=86400 (0 = off)"),
            (ServeSettings { handshake_timeout: Some(0), ..s() }, "--handshake-timeout 0: expected whole seconds 1..=300"),
            (ServeSettings { max_connections: Some(0), ..s() }, "--max-connections 0: expected a whole number 1..=1000000"),
            (ServeSettings { max_frame_size: Some(0), ..s() }, "--max-frame-size 0: expected bytes 1024..=1073741824 (1 GiB)"),
            (ServeSettings { max_header_bytes: Some(100), ..s() }, "--max-header-bytes 100: expected bytes 1024..=1048576"),
            (ServeSettings { threads: Some(0), ..s() }, "--threads 0: expected a whole number 1..=1024"),
            (ServeSettings { publish_rate: Some(f64::NAN), ..s() }, "--publish-rate NaN: expected a rate per second 0.001..=1000000"),
            (ServeSettings { publish_rate: Some(-5.0), ..s() }, "--publish-rate -5: expected a rate per second 0.001..=1000000"),
            (ServeSettings { request_burst: Some(f64::INFINITY), ..s() }, "--request-burst inf: expected a number 1..=1000000"),
            (ServeSettings { max_channels: Some(0), ..s() }, "--max-channels 0: expected a whole number 1..=10000000"),
            (ServeSettings { deflate_window_bits: Some(8), ..s() }, "--deflate-window-bits 8: expected a window in bits 9..=15"),
            (ServeSettings { deflate_window_bits: Some(16), ..s() }, "--deflate-window-bits 16: expected a window in bits 9..=15"),
            (ServeSettings { deflate_mem_level: Some(0), ..s() }, "--deflate-mem-level 0: expected a memLevel 1..=9"),
            (ServeSettings { deflate_level: Some(10), ..s() }, "--deflate-level 10: expected a zlib level 0..=9"),
            (ServeSettings { static_dir: Some("/nonexistent".into()), ..s() }, "--static /nonexistent: expected an existing directory"),
            (ServeSettings { allowed_origins: vec!["not an origin".into()], ..s() }, "--allowed-origin not an origin: expected `*` or an origin scheme://host[:port], e.g. https://app.example.com"),
        ];
        for (settings, message) in cases {
            assert_eq!(refused(settings), message);
        }
    }

    #[test]
    fn in_range_values_and_zero_for_off_are_accepted() {
        let settings = ServeSettings {
            ping_interval: Some(0),
            idle_timeout: Some(0),
            max_connections: Some(1),
            publish_rate: Some(0.001),
            channel_history: Some(0),
            max_history_bytes: Some(0),
            threads: Some(1024),
            static_dir: Some(std::env::temp_dir()),
            allowed_origins: vec!["*".into(), "https://app.example.com".into(), "http://localhost:3000/".into()],
            ..ServeSettings::default()
        };
        assert_eq!(refused(settings.clone()), "accepted");
        let resolved = settings.resolve().unwrap();
        assert_eq!(resolved.server.ping_interval, Duration::ZERO, "0 = off, passed on as Duration::ZERO");
        assert_eq!(resolved.server.idle_timeout, Duration::ZERO);
    }

    #[test]
    fn origins_must_be_scheme_host_and_port_only() {
        for good in ["*", "http://a.example", "https://a.example:8443", "http://[::1]:3000", "chrome-extension://abc"] {
            assert!(is_valid_origin(good), "{good}");
        }
        for bad in [
            "not an origin",
            "a.example",
            "http://",
            "http://a.example/path",
            "http://u@a.example",
            "http://a.example?q",
            "http://a.example:",
        ] {
            assert!(!is_valid_origin(bad), "{bad}");
        }
    }

    #[test]
    fn the_route_limits_follow_max_data_bytes_but_never_exceed_the_server_limits() {
        let resolved = ServeSettings { max_data_bytes: Some(1000), ..ServeSettings::default() }.resolve().unwrap();
        assert_eq!(resolved.token_message_limit, 1000 + ENVELOPE_ROOM);
        let small = ServeSettings { max_message_size: Some(2048), ..ServeSettings::default() }.resolve().unwrap();
        assert_eq!(small.token_message_limit, 2048);
    }

    #[test]
    fn every_range_is_documented_in_the_readme_and_docs_limits() {
        let readme = include_str!("../../../README.md");
        let limits = include_str!("../../../docs/limits.md");
        let example = include_str!("../../../tether.example.toml");
        for range in RANGES {
            assert!(readme.contains(&format!("| `{}", flag_of(range.key))), "README lacks {}", range.key);
            assert!(readme.contains(&format!("| `{}` |", range.key)), "README lacks the key {}", range.key);
            if range.key != "port" {
                assert!(limits.contains(&format!("| `{}` |", range.key)), "docs/limits.md lacks {}", range.key);
            }
            assert!(example.contains(&format!("{} = ", range.key)), "tether.example.toml lacks {}", range.key);
        }
    }

    fn file_refusal(text: &str) -> String {
        let path = Path::new("t.toml");
        match toml::from_str::<ServeSettings>(text) {
            Err(error) => file_error(path, text, &error),
            Ok(settings) => {
                settings.validate().map(|()| "accepted".into()).unwrap_or_else(|e| e.describe(&Source::File(path)))
            }
        }
    }

    #[test]
    fn file_values_are_refused_on_one_line_naming_the_key() {
        assert_eq!(
            file_refusal("port = 1\nping_interval = 0.5 # half\n"),
            "t.toml: ping_interval = 0.5: expected whole seconds 0..=86400 (0 = off)"
        );
        assert_eq!(
            file_refusal("max_connections = 0"),
            "t.toml: max_connections = 0: expected a whole number 1..=1000000"
        );
        assert_eq!(
            file_refusal("publish_rate = nan"),
            "t.toml: publish_rate = NaN: expected a rate per second 0.001..=1000000"
        );
        assert_eq!(file_refusal("threads = \"4\""), "t.toml: threads = \"4\": expected a whole number 1..=1024");
        assert_eq!(
            file_refusal("idle_timeout = -1"),
            "t.toml: idle_timeout = -1: expected whole seconds 0..=86400 (0 = off)"
        );
        assert_eq!(
            file_refusal("static = \"/nonexistent\""),
            "t.toml: static = \"/nonexistent\": expected an existing directory"
        );
        for text in ["prot = 1", "port = ", "log_format = \"xml\""] {
            let line = file_refusal(text);
            assert!(line.starts_with("t.toml") && !line.contains('\n'), "{line}");
        }
    }
}
