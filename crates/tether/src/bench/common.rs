//! What every mode of `tether bench` shares: the connection and output flags ([`Common`]), the
//! parsers of their values, and the [`Outcome`] a mode hands back for `main` to print.
//!
//! Apart from `bench/mod.rs` so that the modes depend on this and `mod.rs` depends on the modes,
//! never both ways.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::net;

/// Flags every mode has.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connections and output")]
pub struct Common {
    /// Print the results as one JSON object on the last line of stdout; the readable report goes
    /// to stderr.
    #[arg(long)]
    pub json: bool,
    /// Runtime threads. 1 (the default) runs everything on one current-thread runtime, which a
    /// script can pin to one CPU with `taskset -c`; N > 1 runs a multi-thread runtime with N workers.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,
    /// Offer permessage-deflate. The server may decline; the report says whether it was agreed.
    #[arg(long)]
    pub compression: bool,
    /// Seconds each connection has for TCP connect, TLS and the opening handshake; after that it
    /// counts as failed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = secs)]
    pub connect_timeout: f64,
    /// Seconds to wait after the measured run for answers still in flight and closing handshakes;
    /// whatever has not arrived by then counts as lost (an error).
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = secs)]
    pub drain_timeout: f64,
    /// Handshakes in progress at once while ramping up.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub ramp: u32,
    /// Spread connections over the source addresses 127.0.0.1 ..= 127.0.0.N (N at most 254), binding
    /// each socket before it connects. Each source address has its own ~28k ephemeral ports, so one
    /// generator can open more than ~28k connections to one server port. Loopback servers only
    /// (Linux routes all of 127.0.0.0/8 to lo).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=254))]
    pub source_ips: Option<u8>,
    /// For wss://: accept any server certificate (self-signed test servers). This disables TLS's
    /// protection; use it only against your own test server.
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// For wss://: also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Offer this sub-protocol (repeatable, in order of preference).
    #[arg(long = "protocol", value_name = "NAME")]
    pub protocols: Vec<String>,
    /// Add a request header (repeatable), e.g. -H 'Authorization: Bearer xyz'.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = header)]
    pub headers: Vec<(String, String)>,
}

impl Common {
    pub(super) fn target_options(&self) -> net::TargetOptions {
        net::TargetOptions {
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            protocols: self.protocols.clone(),
            headers: self.headers.clone(),
            deflate: self.compression,
            connect_timeout: Duration::from_secs_f64(self.connect_timeout),
            source_ips: self.source_ips.unwrap_or(0),
        }
    }

    pub(super) fn drain(&self) -> Duration {
        Duration::from_secs_f64(self.drain_timeout)
    }
}

/// A number of seconds: finite, not negative, at most a day.
pub(super) fn secs(value: &str) -> Result<f64, String> {
    let secs: f64 = value.parse().map_err(|_| format!("{value:?} is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{value} is out of range (0 to 86400 seconds)"));
    }
    Ok(secs)
}

/// A number of seconds more than 0.
pub(super) fn positive_secs(value: &str) -> Result<f64, String> {
    let secs = secs(value)?;
    if secs > 0.0 {
        Ok(secs)
    } else {
        Err("must be more than 0 seconds".into())
    }
}

/// A `ws://` or `wss://` URL with a host.
pub(super) fn ws_url(value: &str) -> Result<String, String> {
    // The parse the connections will use, so that what passes here also opens there.
    use tether_tokio::client::{WsUrl, WsUrlError};
    WsUrl::parse(value).map(|_| value.to_owned()).map_err(|error| match error {
        WsUrlError::Invalid(why) => format!("not a URL: {why}"),
        other => other.to_string(),
    })
}

pub(super) fn header(value: &str) -> Result<(String, String), String> {
    let (name, value) = value.split_once(':').ok_or("expected NAME: VALUE")?;
    let name = name.trim();
    if !tether_proto::handshake::is_token(name) {
        return Err(format!("invalid header name {name:?}"));
    }
    if value.contains(['\r', '\n']) {
        return Err("header values cannot contain line breaks".into());
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// What a mode hands back.
pub struct Outcome {
    /// The readable report.
    pub(super) human: String,
    /// The same as one JSON object.
    pub(super) json: serde_json::Value,
    /// Whether any connection opened (the exit status).
    pub(super) connected: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_headers_are_checked() {
        assert_eq!(secs("1.5"), Ok(1.5));
        assert!(secs("-1").is_err() && secs("NaN").is_err() && secs("x").is_err() && secs("1e9").is_err());
        assert_eq!(header("Cookie: a=b"), Ok(("Cookie".into(), "a=b".into())));
        assert!(header("no colon").is_err() && header("bad name: x").is_err());
        assert!(positive_secs("0").is_err() && positive_secs("0.5").is_ok());
        assert!(ws_url("ws://127.0.0.1:8787/echo").is_ok() && ws_url("wss://example.test").is_ok());
        assert!(ws_url("http://127.0.0.1/").is_err() && ws_url("127.0.0.1:80").is_err());
        assert_eq!(ws_url("http://x/"), Err("scheme \"http\": use ws:// or wss://".into()));
        assert_eq!(ws_url("nothing"), Err("not a URL: relative URL without a base".into()));
        assert_eq!(ws_url("ws://"), Err("not a URL: empty host".into()));
    }
}
