//! The range of every numeric setting ([`RANGES`], the same table `docs/limits.md` and the README
//! document) and the checks that refuse a value outside it, with one line naming the setting, the
//! value and the range, worded for the flag or the file the value came from.

use std::path::Path;

use super::fields::ServeSettings;

/// One day, the longest timer a setting may ask for: far from any `Instant + Duration` overflow.
const DAY: u64 = 86_400;
const GIB: f64 = (1u64 << 30) as f64;

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

/// The ranges of the auth settings (documented in docs/limits.md, "Auth"); namespace keys are
/// checked as `namespaces.NAME.KEY`.
pub const AUTH_RANGES: &[Range] = &[
    range("proxy_timeout", 0.01, 60.0, "decimal seconds 0.01..=60"),
    range("internal_port", 0.0, 65535.0, "a port 0..=65535 (0 = any free port)"),
    range("demo_token_secs", 2.0, 3600.0, "whole seconds 2..=3600"),
    range("history_size", 0.0, 100_000.0, "a whole number 0..=100000 (0 = no history)"),
    range("history_ttl_secs", 1.0, 604_800.0, "whole seconds 1..=604800"),
];

/// The ranges of the `[engine]` table (documented in docs/limits.md, "Engine").
pub const ENGINE_RANGES: &[Range] = &[range("presence_ttl_secs", 1.0, 3600.0, "whole seconds 1..=3600")];

/// The range of the setting with this TOML key.
pub fn range_of(key: &str) -> Option<&'static Range> {
    RANGES.iter().chain(AUTH_RANGES).chain(ENGINE_RANGES).find(|range| range.key == key)
}

/// The command-line flag of a TOML key (`engine.KEY`: the `[engine]` table's flags are `--KEY`).
pub fn flag_of(key: &str) -> String {
    let key = key.strip_prefix("engine.").unwrap_or(key);
    match key {
        "static" => "--static".into(),
        "allowed_origins" => "--allowed-origin".into(),
        "admin_hosts" => "--admin-host".into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

/// Where a setting came from, for the error message.
pub(super) enum Source<'a> {
    Flag,
    File(&'a Path),
}

/// A refused setting: its key, its value as written, and what was expected.
pub(super) struct Invalid {
    /// The TOML key (`namespaces.NAME.KEY` inside a namespace table).
    pub(super) key: String,
    pub(super) value: String,
    pub(super) quoted: bool,
    pub(super) expected: String,
}

impl Invalid {
    pub(super) fn describe(&self, source: &Source) -> String {
        match source {
            Source::Flag => format!("{} {}: expected {}", flag_of(&self.key), self.value, self.expected),
            Source::File(path) => {
                let value = if self.quoted { format!("{:?}", self.value) } else { self.value.clone() };
                format!("{}: {} = {value}: expected {}", path.display(), self.key, self.expected)
            }
        }
    }
}

/// Checks a number against its key's range in [`RANGES`].
pub(super) fn check<T: std::fmt::Display>(
    key: &'static str,
    value: Option<T>,
    number: impl Fn(&T) -> f64,
) -> Result<(), Invalid> {
    let Some(value) = value else { return Ok(()) };
    let range = range_of(key).expect("every checked key has a range");
    let number = number(&value);
    if number.is_finite() && number >= range.min && number <= range.max {
        Ok(())
    } else {
        // The value as given, not as the f64 it was compared as (which may have rounded it).
        Err(Invalid { key: key.into(), value: value.to_string(), quoted: false, expected: range.expected.into() })
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
    /// The range and value checks, on whichever fields are set.
    pub(super) fn validate(&self) -> Result<(), Invalid> {
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
        self.validate_auth()?;
        let engine = |refused: Invalid| Invalid { key: format!("engine.{}", refused.key), ..refused };
        check("presence_ttl_secs", self.engine.presence_ttl_secs, |&v| v as f64).map_err(engine)?;
        self.engine.check().map_err(|refused| Invalid {
            key: refused.key.into(),
            value: refused.value,
            quoted: true,
            expected: refused.expected.into(),
        })?;
        if let Some(dir) = &self.static_dir {
            if !dir.is_dir() {
                return Err(Invalid {
                    key: "static".into(),
                    value: dir.display().to_string(),
                    quoted: true,
                    expected: "an existing directory".into(),
                });
            }
        }
        if let Some(bad) = self.allowed_origins.iter().find(|origin| !is_valid_origin(origin)) {
            return Err(Invalid {
                key: "allowed_origins".into(),
                value: bad.clone(),
                quoted: true,
                expected: "`*` or an origin scheme://host[:port], e.g. https://app.example.com".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
    fn every_range_is_documented_in_the_readme_and_docs_limits() {
        let readme = include_str!("../../../../README.md");
        let limits = include_str!("../../../../docs/limits.md");
        let example = include_str!("../../../../tether.example.toml");
        for range in RANGES {
            assert!(readme.contains(&format!("| `{}", flag_of(range.key))), "README lacks {}", range.key);
            assert!(readme.contains(&format!("| `{}` |", range.key)), "README lacks the key {}", range.key);
            if range.key != "port" {
                assert!(limits.contains(&format!("| `{}` |", range.key)), "docs/limits.md lacks {}", range.key);
            }
            assert!(example.contains(&format!("{} = ", range.key)), "tether.example.toml lacks {}", range.key);
        }
    }
}
