//! The engine settings: the `[engine]` table of the TOML file and its flags (`--redis`,
//! `--redis-password-file`, `--redis-ca-file`, `--node-name`, `--presence-ttl-secs`,
//! `--redis-prefix`). Without `redis` the hub keeps today's in-memory engine; with it, several
//! nodes share one set of channels through Redis (docs/scaling.md).
//!
//! A Redis URL may hold a password (`redis://:PASS@host:6379/0`): it is never echoed, in a refusal
//! or a log line ([`RedisUrl`] shows itself with the password hidden). The password file is read
//! at startup like the other secret files (one trailing newline dropped) and must not be empty;
//! the CA file must be PEM certificates.
//!
//! Size: over 400 lines with its tests, most of it: one case per check (URL forms, what is
//! hidden, names, files, defaults), kept beside the code they pin down.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;

use crate::auth::Secret;

/// A crashed node's presence members disappear within this [default: 60 s].
pub const DEFAULT_PRESENCE_TTL: Duration = Duration::from_secs(60);
/// The key prefix of every Redis key [default: `tether`].
pub const DEFAULT_PREFIX: &str = "tether";
/// The longest node name and key prefix.
const MAX_NAME: usize = 64;
const NAME_EXPECTED: &str = "1..=64 characters of A-Z a-z 0-9 _ . : -";
const URL_EXPECTED: &str = "a redis:// or rediss:// (TLS) URL: [[USER]:PASSWORD@]HOST[:PORT][/DB], no query";

/// `[engine]` as written, and its flags (same names, `-` for `_`).
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// Share channels, presence and history with other nodes through Redis:
    /// redis://[:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS (TOML: `[engine] redis`)
    /// [default: none, the in-memory engine of one node].
    #[arg(long, value_name = "URL", value_parser = redis_url)]
    pub redis: Option<RedisUrl>,
    /// File holding the Redis password (one trailing newline is dropped), read at startup; it
    /// wins over a password in the URL [default: the URL's].
    #[arg(long, value_name = "FILE")]
    pub redis_password_file: Option<PathBuf>,
    /// PEM file of the CA certificates a rediss:// server is verified with [default: the
    /// system's roots].
    #[arg(long, value_name = "PEM")]
    pub redis_ca_file: Option<PathBuf>,
    /// This node's name in the server API's `info`, 1..=64 characters of A-Z a-z 0-9 _ . : -
    /// [default: HOSTNAME:PORT].
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// With Redis: seconds within which a crashed node's presence members disappear, 1..=3600
    /// [default: 60].
    #[arg(long, value_name = "SECS")]
    pub presence_ttl_secs: Option<u64>,
    /// Prefix of every Redis key, 1..=64 characters of A-Z a-z 0-9 _ . : -: clusters with
    /// different prefixes share one Redis without seeing each other [default: tether].
    #[arg(long, value_name = "PREFIX")]
    pub redis_prefix: Option<String>,
}

/// A Redis URL as given. Its `Debug` hides the password: settings are printed in debug output.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, password included: only for the code that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password (everything after `USER:` before `@`) replaced by `***`, for
    /// logs and error messages. Without a colon the whole user part is hidden.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return if self.0.contains('@') { "<hidden>".into() } else { self.0.clone() };
        };
        // Up to the last `@` is the user part, whatever it holds (an unescaped `/` or `#` too).
        let (userinfo, host) = rest.rsplit_once('@').map_or((None, rest), |(userinfo, host)| (Some(userinfo), host));
        let user = match userinfo.map(|userinfo| userinfo.split_once(':')) {
            None => String::new(),
            Some(Some((user, _))) if !user.contains(['/', '?', '#']) => format!("{user}:***@"),
            Some(_) => "***@".into(),
        };
        // A query could carry credentials too (redis-rs reads none, but a user may try).
        let (host, query) = host.split_at(host.find(['?', '#']).unwrap_or(host.len()));
        let query = if query.is_empty() { "" } else { "?***" };
        format!("{scheme}://{user}{host}{query}")
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({:?})", self.redacted())
    }
}

/// `--redis`: checked with the others, in `validate`.
fn redis_url(arg: &str) -> Result<RedisUrl, String> {
    Ok(RedisUrl::new(arg))
}

/// Whether `url` is one the engine can connect to (what redis-rs accepts, less what it should not
/// be asked): redis:// or rediss://, a host that is not a wildcard address, a port that is not 0,
/// a database number or nothing as the path, a user and password that decode to UTF-8, no query
/// or fragment (redis-rs would read `#insecure` as "skip certificate checks").
fn is_valid_redis_url(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url.trim()) else { return false };
    let path = parsed.path().trim_start_matches('/');
    matches!(parsed.scheme(), "redis" | "rediss")
        && parsed.host_str().is_some_and(|host| !host.is_empty() && !matches!(host, "0.0.0.0" | "[::]"))
        && is_utf8_when_decoded(parsed.username())
        && parsed.password().is_none_or(is_utf8_when_decoded)
        && parsed.port() != Some(0)
        && (path.is_empty() || (path.len() <= 9 && path.bytes().all(|b| b.is_ascii_digit())))
        && parsed.query().is_none()
        && parsed.fragment().is_none()
}

/// Whether the percent-encoded `text` (a URL's user or password) decodes to UTF-8.
fn is_utf8_when_decoded(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).is_ok()
}

/// A node name or key prefix: 1..=64 of `A-Z a-z 0-9 _ . : -`.
pub fn is_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

/// A refused engine setting: its key, its value as shown (a URL redacted) and what was expected.
pub(super) struct Refused {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// The engine with every default applied and every file read.
#[derive(Debug, Clone)]
pub struct Engine {
    /// `None`: the in-memory engine.
    pub redis: Option<RedisEngine>,
    /// `--node-name`; `None` = [`default_node_name`] of the port the server listens on (known
    /// only once bound when `--port 0`).
    pub node_name: Option<String>,
    pub presence_ttl: Duration,
    pub prefix: String,
}

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisEngine {
    pub url: RedisUrl,
    /// From `redis_password_file`; wins over the URL's.
    pub password: Option<Secret>,
    /// From `redis_ca_file`: PEM, already checked.
    pub ca_pem: Option<Vec<u8>>,
}

impl EngineSettings {
    /// `self` (the command line) over `file`.
    pub(super) fn over(self, file: Self) -> Self {
        Self {
            redis: self.redis.or(file.redis),
            redis_password_file: self.redis_password_file.or(file.redis_password_file),
            redis_ca_file: self.redis_ca_file.or(file.redis_ca_file),
            node_name: self.node_name.or(file.node_name),
            presence_ttl_secs: self.presence_ttl_secs.or(file.presence_ttl_secs),
            redis_prefix: self.redis_prefix.or(file.redis_prefix),
        }
    }

    /// The checks of the strings on one source (`presence_ttl_secs` is ranged with the other
    /// numbers, in `ranges`); keys are named `engine.KEY` (the flag drops `engine.`).
    pub(super) fn check(&self) -> Result<(), Refused> {
        if let Some(url) = self.redis.as_ref().filter(|url| !is_valid_redis_url(url.expose())) {
            return Err(Refused { key: "engine.redis", value: url.redacted(), expected: URL_EXPECTED });
        }
        for (key, value) in [("engine.node_name", &self.node_name), ("engine.redis_prefix", &self.redis_prefix)] {
            if let Some(name) = value.as_ref().filter(|name| !is_name(name)) {
                return Err(Refused { key, value: name.clone(), expected: NAME_EXPECTED });
            }
        }
        Ok(())
    }

    /// Reads the files and applies the defaults; warns about settings that would do nothing.
    pub(super) fn resolve(&self) -> Result<Engine, String> {
        let password = self.redis_password_file.as_deref().map(read_password).transpose()?;
        let ca_pem = self.redis_ca_file.as_deref().map(read_ca).transpose()?;
        for unused in self.ineffective_settings() {
            tracing::warn!("{unused}");
        }
        Ok(Engine {
            redis: self.redis.clone().map(|url| RedisEngine { url, password, ca_pem }),
            node_name: self.node_name.clone(),
            presence_ttl: self.presence_ttl_secs.map_or(DEFAULT_PRESENCE_TTL, Duration::from_secs),
            prefix: self.redis_prefix.clone().unwrap_or_else(|| DEFAULT_PREFIX.into()),
        })
    }

    /// Settings that are given but change nothing, worded for the startup warning.
    pub(super) fn ineffective_settings(&self) -> Vec<&'static str> {
        let mut unused = Vec::new();
        let Some(url) = &self.redis else {
            for (given, line) in [
                (self.redis_password_file.is_some(), "redis_password_file does nothing without redis"),
                (self.redis_ca_file.is_some(), "redis_ca_file does nothing without redis"),
                (self.redis_prefix.is_some(), "redis_prefix does nothing without redis"),
            ] {
                if given {
                    unused.push(line);
                }
            }
            return unused;
        };
        if self.redis_ca_file.is_some() && !url.expose().trim().to_ascii_lowercase().starts_with("rediss://") {
            unused.push("redis_ca_file does nothing with a redis:// URL (no TLS); use rediss://");
        }
        unused
    }
}

/// The password file: one trailing newline (what `echo` and editors add) is not part of it, as
/// for the other secret files; empty is refused.
fn read_password(path: &Path) -> Result<Secret, String> {
    let flag = "--redis-password-file";
    let text = std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: cannot read: {e}", path.display()))?;
    let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if text.is_empty() {
        return Err(format!("{flag} {}: expected a file holding the Redis password (it is empty)", path.display()));
    }
    Ok(Secret::new(text))
}

/// The CA file: readable, and PEM certificates only (at least one).
fn read_ca(path: &Path) -> Result<Vec<u8>, String> {
    let flag = "--redis-ca-file";
    let pem = std::fs::read(path).map_err(|e| format!("{flag} {}: cannot read: {e}", path.display()))?;
    let certificates: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match certificates {
        Ok(certificates) if !certificates.is_empty() => Ok(pem),
        _ => Err(format!("{flag} {}: expected a PEM file of CA certificates", path.display())),
    }
}

/// The node name when none is given: `HOSTNAME:PORT`, the host name cut and its odd characters
/// replaced so that the whole is a valid name.
pub fn default_node_name(port: u16) -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let hostname = hostname.trim();
    let hostname = if hostname.is_empty() { "tether" } else { hostname };
    let suffix = format!(":{port}");
    let host: String = hostname
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' })
        .take(MAX_NAME - suffix.len())
        .collect();
    format!("{host}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::super::fields::ServeSettings;
    use super::super::ranges::Source;
    use super::*;

    fn engine(engine: EngineSettings) -> ServeSettings {
        ServeSettings { engine, ..ServeSettings::default() }
    }

    fn refused(settings: &ServeSettings, source: &Source) -> String {
        settings.validate().map(|()| "accepted".to_owned()).unwrap_or_else(|e| e.describe(source))
    }

    fn with_url(url: &str) -> ServeSettings {
        engine(EngineSettings { redis: Some(RedisUrl::new(url)), ..EngineSettings::default() })
    }

    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("tether-engine-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn redis_urls_are_checked_and_their_password_never_echoed() {
        for good in [
            "redis://127.0.0.1:6379/0",
            "redis://localhost",
            "rediss://cache.example.com:6380/15",
            "redis://:s3cret@10.0.0.1:6379/2",
            "redis://alice:s3cret@[::1]:6379",
            "redis://h:1/",
            "redis://:p%40ss%C3%A9@h",
        ] {
            assert_eq!(refused(&with_url(good), &Source::Flag), "accepted", "{good}");
        }
        let expected = format!("expected {URL_EXPECTED}");
        for (bad, shown) in [
            ("http://127.0.0.1:6379", "http://127.0.0.1:6379"),
            ("127.0.0.1:6379", "127.0.0.1:6379"),
            ("redis://", "redis://"),
            ("redis://h:0/0", "redis://h:0/0"),
            ("redis://h:99999", "redis://h:99999"),
            ("redis://0.0.0.0:6379", "redis://0.0.0.0:6379"),
            ("redis://[::]:6379", "redis://[::]:6379"),
            ("redis://:%FF%FE@h", "redis://:***@h"),
            ("redis://h/zero", "redis://h/zero"),
            ("redis://h/0/1", "redis://h/0/1"),
            ("rediss://:pw@h/0#insecure", "rediss://:***@h/0?***"),
            ("redis://:hunter2@h/0?protocol=resp3", "redis://:***@h/0?***"),
            ("redis+unix:///tmp/redis.sock", "redis+unix:///tmp/redis.sock"),
        ] {
            assert_eq!(refused(&with_url(bad), &Source::Flag), format!("--redis {shown}: {expected}"), "{bad}");
        }
        let file = refused(&with_url("redis://:hunter2@h:x"), &Source::File(Path::new("t.toml")));
        assert_eq!(file, format!("t.toml: engine.redis = \"redis://:***@h:x\": {expected}"));
    }

    #[test]
    fn the_password_is_hidden_in_every_form_of_the_url() {
        let shown = |url: &str| RedisUrl::new(url).redacted();
        assert_eq!(shown("redis://:p@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(shown("redis://alice:p@h"), "redis://alice:***@h");
        assert_eq!(shown("redis://p@h"), "redis://***@h", "without a colon, the whole user part");
        assert_eq!(shown("redis://:p/a#ss@h/1"), "redis://:***@h/1", "up to the last @");
        assert_eq!(shown("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(shown("no scheme:p@h"), "<hidden>");
        let debug = format!("{:?}", with_url("redis://:hunter2@h").resolve().unwrap().engine);
        assert!(!debug.contains("hunter2") && debug.contains("redis://:***@h"), "{debug}");
    }

    #[test]
    fn names_prefixes_and_the_presence_ttl_are_ranged() {
        let s = EngineSettings::default;
        let name = |name: &str| engine(EngineSettings { node_name: Some(name.into()), ..s() });
        let prefix = |prefix: &str| engine(EngineSettings { redis_prefix: Some(prefix.into()), ..s() });
        let ttl = |secs| engine(EngineSettings { presence_ttl_secs: Some(secs), ..s() });
        for good in ["a", "node-1.eu:8787", "A_b.c:d-e", &"n".repeat(64)] {
            assert_eq!(refused(&name(good), &Source::Flag), "accepted", "{good}");
            assert_eq!(refused(&prefix(good), &Source::Flag), "accepted", "{good}");
        }
        let expected = format!("expected {NAME_EXPECTED}");
        for bad in ["", "node 1", "n/1", "é", &"n".repeat(65)] {
            assert_eq!(refused(&name(bad), &Source::Flag), format!("--node-name {bad}: {expected}"));
            assert_eq!(refused(&prefix(bad), &Source::Flag), format!("--redis-prefix {bad}: {expected}"));
        }
        let file = refused(&prefix("a b"), &Source::File(Path::new("t.toml")));
        assert_eq!(file, format!("t.toml: engine.redis_prefix = \"a b\": {expected}"));
        assert_eq!(refused(&ttl(1), &Source::Flag), "accepted");
        assert_eq!(refused(&ttl(3600), &Source::Flag), "accepted");
        for bad in [0, 3601] {
            assert_eq!(
                refused(&ttl(bad), &Source::Flag),
                format!("--presence-ttl-secs {bad}: expected whole seconds 1..=3600")
            );
        }
        let file = refused(&ttl(0), &Source::File(Path::new("t.toml")));
        assert_eq!(file, "t.toml: engine.presence_ttl_secs = 0: expected whole seconds 1..=3600");
    }

    #[test]
    fn defaults_the_file_table_and_the_flags_over_it() {
        let resolved = ServeSettings::default().resolve().unwrap().engine;
        assert!(resolved.redis.is_none(), "the in-memory engine by default");
        assert_eq!(resolved.presence_ttl, Duration::from_secs(60));
        assert_eq!(resolved.prefix, "tether");
        assert_eq!(resolved.node_name, None, "HOSTNAME:PORT, once the port is known");
        let file: ServeSettings = toml::from_str(
            "[engine]\nredis = \"redis://127.0.0.1:6379/1\"\nnode_name = \"a\"\npresence_ttl_secs = 5\nredis_prefix = \"t1\"",
        )
        .unwrap();
        let cli = engine(EngineSettings { node_name: Some("b".into()), ..EngineSettings::default() });
        let resolved = cli.over(file).resolve().unwrap().engine;
        assert_eq!(resolved.redis.unwrap().url.expose(), "redis://127.0.0.1:6379/1");
        assert_eq!(resolved.node_name.as_deref(), Some("b"), "the flag wins");
        assert_eq!((resolved.presence_ttl, resolved.prefix.as_str()), (Duration::from_secs(5), "t1"));
        assert!(toml::from_str::<ServeSettings>("redis = \"redis://h\"").is_err(), "in [engine] only");
        assert!(toml::from_str::<ServeSettings>("[engine]\nredis_url = \"redis://h\"").is_err(), "unknown key");
    }

    #[test]
    fn the_default_node_name_is_the_host_name_and_the_port() {
        let name = default_node_name(8787);
        assert!(name.ends_with(":8787") && is_name(&name), "{name}");
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        if is_name(hostname.trim()) && hostname.trim().len() <= 59 {
            assert_eq!(name, format!("{}:8787", hostname.trim()));
        }
        assert!(is_name(&default_node_name(65535)));
    }

    #[test]
    fn the_password_and_ca_files_are_read_and_checked() {
        let password = temp_file("pw", b"s3cret\n");
        let ca =
            temp_file("ca.pem", rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap().cert.pem().as_bytes());
        let settings = EngineSettings {
            redis: Some(RedisUrl::new("rediss://h:6380/0")),
            redis_password_file: Some(password.clone()),
            redis_ca_file: Some(ca.clone()),
            ..EngineSettings::default()
        };
        let redis = settings.resolve().unwrap().redis.unwrap();
        assert_eq!(redis.password.unwrap().expose(), "s3cret", "one trailing newline dropped");
        assert!(redis.ca_pem.unwrap().starts_with(b"-----BEGIN CERTIFICATE-----"));
        std::fs::write(&password, "\n").unwrap();
        let error = EngineSettings { redis_ca_file: None, ..settings.clone() }.resolve().unwrap_err();
        let shown = password.display();
        assert_eq!(
            error,
            format!("--redis-password-file {shown}: expected a file holding the Redis password (it is empty)")
        );
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let error = EngineSettings { redis_password_file: None, ..settings.clone() }.resolve().unwrap_err();
        assert_eq!(error, format!("--redis-ca-file {}: expected a PEM file of CA certificates", ca.display()));
        let _ = (std::fs::remove_file(&password), std::fs::remove_file(&ca));
        let missing = EngineSettings { redis_ca_file: None, ..settings }.resolve().unwrap_err();
        assert!(missing.starts_with(&format!("--redis-password-file {shown}: cannot read: ")), "{missing}");
    }

    #[test]
    fn settings_that_do_nothing_without_redis_are_named_for_a_warning() {
        let s = EngineSettings::default;
        assert!(s().ineffective_settings().is_empty());
        let alone = EngineSettings { redis_prefix: Some("p".into()), presence_ttl_secs: Some(5), ..s() };
        assert_eq!(alone.ineffective_settings(), ["redis_prefix does nothing without redis"]);
        let ca =
            EngineSettings { redis: Some(RedisUrl::new("redis://h")), redis_ca_file: Some("ca.pem".into()), ..s() };
        assert!(ca.ineffective_settings()[0].starts_with("redis_ca_file does nothing with a redis:// URL"));
        let tls = EngineSettings { redis: Some(RedisUrl::new("rediss://h")), ..ca };
        assert!(tls.ineffective_settings().is_empty());
    }

    #[test]
    fn documented_in_docs_limits_the_readme_and_the_example() {
        let limits = include_str!("../../../../docs/limits.md");
        let example = include_str!("../../../../tether.example.toml");
        let readme = include_str!("../../../../README.md");
        for key in ["redis", "redis_password_file", "redis_ca_file", "node_name", "presence_ttl_secs", "redis_prefix"] {
            let flag = super::super::ranges::flag_of(key);
            assert!(limits.contains(&format!("| `{key}` |")), "docs/limits.md lacks {key}");
            assert!(limits.contains(&format!("`{flag}")), "docs/limits.md lacks {flag}");
            assert!(readme.contains(&format!("`{key}`")) && readme.contains(&format!("`{flag}")), "README lacks {key}");
            assert!(example.contains(&format!("{key} = ")), "tether.example.toml lacks {key}");
        }
        assert!(example.contains("[engine]"));
    }
}
