//! The auth settings: their checks (each source on its own, like the ranges), and what they
//! resolve to once the command line is over the file ([`AuthSettings`]): the token keys built,
//! the secret and key files read, the proxy URLs parsed, the namespaces' defaults applied.
//!
//! Secrets are never echoed: a refused secret is described by its length only.
//!
//! Size: over 400 lines with its tests, which are most of it: one case per check, and the
//! merge, file and cross-setting rules, kept beside the code they pin down.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::Uri;

use super::fields::ServeSettings;
use tether_hub::{NamespacePolicy, PublishRule, SubscribeRule};

use super::namespaces::is_namespace_name;
use super::ranges::{check, Invalid};
use crate::auth::{random_hex, Secret, TokenKeys};

/// RFC 7518 §3.2: an HMAC key at least as long as the hash (HS256's 32 bytes).
pub const MIN_HMAC_SECRET: usize = 32;
const MAX_SECRET: usize = 4096;
const MIN_API_KEY: usize = 16;
const MAX_API_KEY: usize = 1024;
const DEFAULT_PROXY_TIMEOUT: Duration = Duration::from_secs(1);
/// Short, so that a minute-long test of the chat sees its token refreshed.
const DEFAULT_DEMO_TOKEN_LIFETIME: Duration = Duration::from_secs(30);

/// The auth settings with every default applied and every file read.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// What tokens are verified with; `None` when no secret, key or `--demo-tokens` is set.
    pub token_keys: Option<Arc<TokenKeys>>,
    pub allow_anonymous: bool,
    pub connect_proxy: Option<Uri>,
    pub publish_proxy: Option<Uri>,
    /// How long each proxy call may take.
    pub proxy_timeout: Duration,
    /// The server API's key; `None` = the API is off.
    pub api_key: Option<Secret>,
    /// Serve `/api/*` (and `/metrics`) only on this port.
    pub internal_port: Option<u16>,
    /// The admin dashboard's password; `None` = `/admin` is off (404).
    pub admin_password: Option<Secret>,
    /// `admin_secure_cookie`: the dashboard's cookies are `Secure` even on plain HTTP.
    pub admin_secure_cookie: bool,
    /// `admin_hosts`: the names the dashboard answers besides IP addresses and `localhost`.
    pub admin_hosts: Vec<String>,
    pub demo_tokens: bool,
    /// How long a demo token is valid.
    pub demo_token_lifetime: Duration,
    /// Every `[namespaces.NAME]`, by name (`default` among them when given).
    pub namespaces: Vec<(String, NamespacePolicy)>,
}

pub(super) fn invalid(
    key: impl Into<String>,
    value: impl Into<String>,
    quoted: bool,
    expected: impl Into<String>,
) -> Invalid {
    Invalid { key: key.into(), value: value.into(), quoted, expected: expected.into() }
}

/// How the example file's placeholder secrets begin: a server must never run with one, since
/// anyone who read the example knows it.
const PLACEHOLDER_PREFIX: &str = "change-me";

/// A secret that is still the example's placeholder.
pub(super) fn check_not_placeholder(secret: &str) -> Result<(), String> {
    if secret.starts_with(PLACEHOLDER_PREFIX) {
        Err(format!("a secret of your own, not a placeholder starting with {PLACEHOLDER_PREFIX}"))
    } else {
        Ok(())
    }
}

/// A secret is shown by its length only.
pub(super) fn hidden(secret: &str) -> String {
    format!("<{} bytes, hidden>", secret.len())
}

fn check_hmac_secret(secret: &str) -> Result<(), String> {
    check_not_placeholder(secret)?;
    if (MIN_HMAC_SECRET..=MAX_SECRET).contains(&secret.len()) {
        Ok(())
    } else {
        Err(format!("a secret of {MIN_HMAC_SECRET}..={MAX_SECRET} bytes (RFC 7518 §3.2: at least the hash's size)"))
    }
}

fn check_api_key(key: &str) -> Result<(), String> {
    check_not_placeholder(key)?;
    if (MIN_API_KEY..=MAX_API_KEY).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!("a key of {MIN_API_KEY}..={MAX_API_KEY} visible ASCII characters (no spaces)"))
    }
}

/// An `http://host[:port]/path` URL for a proxy.
fn check_proxy_url(url: &str) -> Result<Uri, String> {
    const EXPECTED: &str = "an http://host[:port]/path URL, no credentials, no query (https is not supported: keep the backend on a private network)";
    let parsed = url::Url::parse(url).map_err(|_| EXPECTED.to_owned())?;
    // No credentials and no query in the URL: it is logged when the backend fails, and a secret
    // (which a query often carries: `?key=...`) never is.
    if parsed.scheme() != "http"
        || parsed.host_str().is_none_or(str::is_empty)
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(EXPECTED.into());
    }
    parsed.as_str().parse::<Uri>().map_err(|_| EXPECTED.into())
}

fn check_claim(key: &'static str, value: &Option<String>) -> Result<(), Invalid> {
    match value {
        Some(text) if text.is_empty() || text.len() > 256 || text.chars().any(char::is_control) => {
            Err(invalid(key, text.clone(), true, "1..=256 characters, no control characters"))
        }
        _ => Ok(()),
    }
}

impl ServeSettings {
    /// The auth checks on one source (command line or file), before the two are combined.
    pub(super) fn validate_auth(&self) -> Result<(), Invalid> {
        check("proxy_timeout", self.proxy_timeout, |&v| v)?;
        check("internal_port", self.internal_port, |&v| f64::from(v))?;
        check("demo_token_secs", self.demo_token_secs, |&v| v as f64)?;
        if self.token_hmac_secret.is_some() && self.token_hmac_secret_file.is_some() {
            return Err(invalid("token_hmac_secret", "and token_hmac_secret_file", false, "one of the two, not both"));
        }
        if self.api_key.is_some() && self.api_key_file.is_some() {
            return Err(invalid("api_key", "and api_key_file", false, "one of the two, not both"));
        }
        if let Some(secret) = &self.token_hmac_secret {
            check_hmac_secret(secret.expose())
                .map_err(|expected| invalid("token_hmac_secret", hidden(secret.expose()), false, expected))?;
        }
        if let Some(key) = &self.api_key {
            check_api_key(key.expose())
                .map_err(|expected| invalid("api_key", hidden(key.expose()), false, expected))?;
        }
        self.validate_admin()?;
        check_claim("token_audience", &self.token_audience)?;
        check_claim("token_issuer", &self.token_issuer)?;
        for (key, url) in [("connect_proxy", &self.connect_proxy), ("publish_proxy", &self.publish_proxy)] {
            if let Some(url) = url {
                check_proxy_url(url).map_err(|expected| invalid(key, url.clone(), true, expected))?;
            }
        }
        for (name, table) in &self.namespaces {
            let key = |field: &str| format!("namespaces.{name}.{field}");
            if !is_namespace_name(name) {
                return Err(invalid(
                    "namespaces",
                    name.clone(),
                    true,
                    "a namespace name of 1..=64 characters A-Z a-z 0-9 _ - . / @ $",
                ));
            }
            for (field, value) in [
                ("history_size", table.history_size.map(|v| v as f64)),
                ("history_ttl_secs", table.history_ttl_secs.map(|v| v as f64)),
            ] {
                check(field, value, |&v| v).map_err(|mut refused| {
                    refused.key = key(field);
                    refused
                })?;
            }
        }
        Ok(())
    }

    /// The auth settings of the combined, validated settings: files read, keys built, and the
    /// checks that need both sources (an internal port needs an API key; a namespace rule needs
    /// a way to tell users apart).
    pub(super) fn resolve_auth(&self, port: u16) -> Result<AuthSettings, String> {
        let hmac_secret = secret_from(
            &self.token_hmac_secret,
            &self.token_hmac_secret_file,
            "--token-hmac-secret-file",
            check_hmac_secret,
        )?;
        let api_key = secret_from(&self.api_key, &self.api_key_file, "--api-key-file", check_api_key)?;
        let admin_password = self.resolve_admin()?;
        let public_key = match &self.token_public_key {
            Some(path) => Some(
                std::fs::read(path).map_err(|e| format!("--token-public-key {}: cannot read: {e}", path.display()))?,
            ),
            None => None,
        };
        // `--demo-tokens`: a random secret for this process, which signs the demo tokens and
        // verifies them. Never the configured one: `/demo/token` signs for anyone who asks, and a
        // real secret is often shared with other services, which would then trust those tokens.
        let hmac_secret = if self.demo_tokens {
            if hmac_secret.is_some() {
                return Err("--demo-tokens: expected no --token-hmac-secret or --token-hmac-secret-file: demo tokens use a random per-process secret; they must not be signed with a real one".into());
            }
            Some(Secret::new(random_hex(32)))
        } else {
            hmac_secret
        };
        let token_keys = if hmac_secret.is_some() || public_key.is_some() {
            let keys = TokenKeys::new(hmac_secret.as_ref().map(|s| s.expose().as_bytes()), public_key.as_deref())
                .map_err(|error| {
                    let path = self.token_public_key.as_deref().unwrap_or(Path::new(""));
                    format!(
                        "--token-public-key {}: expected a PEM public key of RSA or EC P-256 ({error})",
                        path.display()
                    )
                })?
                .with_audience(self.token_audience.clone())
                .with_issuer(self.token_issuer.clone());
            Some(Arc::new(keys))
        } else {
            None
        };
        if let Some(internal) = self.internal_port {
            // What the internal port serves: the API, the metrics page, the dashboard (each when on).
            let serves_something = api_key.is_some() || self.metrics || admin_password.is_some();
            if !serves_something {
                return Err(format!("--internal-port {internal}: expected an API key (--api-key or --api-key-file), --metrics or an admin password (--admin-password or --admin-password-file) too: it serves nothing without one"));
            }
            if internal == port && internal != 0 {
                return Err(format!("--internal-port {internal}: expected a port other than --port"));
            }
        }
        let can_authenticate = self.can_authenticate();
        let mut namespaces = Vec::new();
        for (name, table) in &self.namespaces {
            let config = table.resolve();
            if config.subscribe == SubscribeRule::Token && token_keys.is_none() {
                return Err(format!(
                    "namespaces.{name}.subscribe = \"token\": expected token keys (token_hmac_secret, token_public_key or demo_tokens) to verify subscription tokens"
                ));
            }
            let needs_users = [
                (config.subscribe == SubscribeRule::Authenticated, "subscribe"),
                (config.publish == PublishRule::Authenticated, "publish"),
            ];
            if let Some((_, field)) = needs_users.iter().find(|(needs, _)| *needs && !can_authenticate) {
                return Err(format!(
                    "namespaces.{name}.{field} = \"authenticated\": expected a way to authenticate (token_hmac_secret, token_public_key, demo_tokens or connect_proxy)"
                ));
            }
            namespaces.push((name.clone(), config));
        }
        for unused in self.ineffective_settings() {
            tracing::warn!("{unused}");
        }
        let url = |url: &Option<String>| url.as_deref().map(check_proxy_url).transpose();
        Ok(AuthSettings {
            token_keys,
            allow_anonymous: self.allow_anonymous,
            connect_proxy: url(&self.connect_proxy)?,
            publish_proxy: url(&self.publish_proxy)?,
            proxy_timeout: self.proxy_timeout.map_or(DEFAULT_PROXY_TIMEOUT, Duration::from_secs_f64),
            api_key,
            internal_port: self.internal_port,
            admin_password,
            admin_secure_cookie: self.admin_secure_cookie,
            admin_hosts: self.admin_hosts.iter().map(|host| host.to_ascii_lowercase()).collect(),
            demo_tokens: self.demo_tokens,
            demo_token_lifetime: self.demo_token_secs.map_or(DEFAULT_DEMO_TOKEN_LIFETIME, Duration::from_secs),
            namespaces,
        })
    }
}

impl ServeSettings {
    /// Whether clients can be told apart at all: token keys (a secret, a public key, or demo
    /// tokens' own secret) or a connect proxy.
    fn can_authenticate(&self) -> bool {
        self.token_hmac_secret.is_some()
            || self.token_hmac_secret_file.is_some()
            || self.token_public_key.is_some()
            || self.demo_tokens
            || self.connect_proxy.is_some()
    }

    /// Settings that are given but change nothing, worded for the startup warning: a setting
    /// that silently does nothing hides a mistake (a misremembered flag, a forgotten one).
    fn ineffective_settings(&self) -> Vec<&'static str> {
        let mut unused = Vec::new();
        if self.allow_anonymous && !self.can_authenticate() {
            unused.push(
                "allow_anonymous does nothing without token keys or a connect proxy: every client is anonymous already",
            );
        }
        if self.demo_token_secs.is_some() && !self.demo_tokens {
            unused.push("demo_token_secs does nothing without demo_tokens");
        }
        unused
    }
}

/// A secret given directly (checked already, with the command line or the file it came from) or
/// as a file, read and checked here; `file_flag` names the file form in the error.
pub(super) fn secret_from(
    given: &Option<Secret>,
    file: &Option<std::path::PathBuf>,
    file_flag: &str,
    check: fn(&str) -> Result<(), String>,
) -> Result<Option<Secret>, String> {
    match (given, file) {
        (Some(secret), _) => Ok(Some(secret.clone())),
        (None, Some(path)) => {
            let secret = read_secret(file_flag, path)?;
            check(secret.expose())
                .map_err(|expected| format!("{file_flag} {}: expected {expected}", path.display()))?;
            Ok(Some(secret))
        }
        (None, None) => Ok(None),
    }
}

/// A secret from a file: one trailing newline (what `echo` and editors add) is not part of it.
fn read_secret(flag: &str, path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: cannot read: {e}", path.display()))?;
    let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    Ok(Secret::new(text))
}

#[cfg(test)]
mod tests {
    use super::super::ranges::{Source, AUTH_RANGES};
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn refused(settings: &ServeSettings) -> String {
        settings.validate().map(|()| "accepted".to_owned()).unwrap_or_else(|e| e.describe(&Source::Flag))
    }

    fn file_refused(text: &str) -> String {
        let settings: ServeSettings = toml::from_str(text).unwrap();
        settings
            .validate()
            .map(|()| "accepted".to_owned())
            .unwrap_or_else(|e| e.describe(&Source::File(Path::new("t.toml"))))
    }

    fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("tether-auth-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn auth_settings_out_of_range_are_refused_naming_the_setting_and_never_the_secret() {
        let s = ServeSettings::default;
        let cases = [
            (ServeSettings { proxy_timeout: Some(0.001), ..s() }, "--proxy-timeout 0.001: expected decimal seconds 0.01..=60"),
            (ServeSettings { proxy_timeout: Some(61.0), ..s() }, "--proxy-timeout 61: expected decimal seconds 0.01..=60"),
            (ServeSettings { demo_token_secs: Some(1), ..s() }, "--demo-token-secs 1: expected whole seconds 2..=3600"),
            (ServeSettings { demo_token_secs: Some(3601), ..s() }, "--demo-token-secs 3601: expected whole seconds 2..=3600"),
            (
                ServeSettings { token_hmac_secret: Some(Secret::new("short")), ..s() },
                "--token-hmac-secret <5 bytes, hidden>: expected a secret of 32..=4096 bytes (RFC 7518 §3.2: at least the hash's size)",
            ),
            (
                ServeSettings { token_hmac_secret: Some(Secret::new(SECRET)), token_hmac_secret_file: Some("f".into()), ..s() },
                "--token-hmac-secret and token_hmac_secret_file: expected one of the two, not both",
            ),
            (
                ServeSettings { api_key: Some(Secret::new("has a space in it ok")), ..s() },
                "--api-key <20 bytes, hidden>: expected a key of 16..=1024 visible ASCII characters (no spaces)",
            ),
            (
                ServeSettings { api_key: Some(Secret::new("k".repeat(16))), api_key_file: Some("f".into()), ..s() },
                "--api-key and api_key_file: expected one of the two, not both",
            ),
            (ServeSettings { token_audience: Some(String::new()), ..s() }, "--token-audience : expected 1..=256 characters, no control characters"),
            (
                ServeSettings { token_issuer: Some("a\nb".into()), ..s() },
                "--token-issuer a\nb: expected 1..=256 characters, no control characters",
            ),
            (
                ServeSettings { connect_proxy: Some("https://app/auth".into()), ..s() },
                "--connect-proxy https://app/auth: expected an http://host[:port]/path URL, no credentials, no query (https is not supported: keep the backend on a private network)",
            ),
            (
                ServeSettings { publish_proxy: Some("http://user:pw@backend/p".into()), ..s() },
                "--publish-proxy http://user:pw@backend/p: expected an http://host[:port]/path URL, no credentials, no query (https is not supported: keep the backend on a private network)",
            ),
            (
                ServeSettings { connect_proxy: Some("http://app/auth?key=s3cret".into()), ..s() },
                "--connect-proxy http://app/auth?key=s3cret: expected an http://host[:port]/path URL, no credentials, no query (https is not supported: keep the backend on a private network)",
            ),
            (
                ServeSettings { publish_proxy: Some("http://app/p?".into()), ..s() },
                "--publish-proxy http://app/p?: expected an http://host[:port]/path URL, no credentials, no query (https is not supported: keep the backend on a private network)",
            ),
            (
                ServeSettings { publish_proxy: Some("not a url".into()), ..s() },
                "--publish-proxy not a url: expected an http://host[:port]/path URL, no credentials, no query (https is not supported: keep the backend on a private network)",
            ),
        ];
        for (settings, message) in cases {
            let line = refused(&settings);
            assert_eq!(line, message);
            assert!(!line.contains("short") && !line.contains("has a space"), "{line}");
        }
    }

    #[test]
    fn good_auth_settings_are_accepted_and_resolved() {
        let settings = ServeSettings {
            token_hmac_secret: Some(Secret::new(SECRET)),
            token_audience: Some("tether".into()),
            token_issuer: Some("https://app.example".into()),
            allow_anonymous: true,
            connect_proxy: Some("http://127.0.0.1:9000/connect".into()),
            publish_proxy: Some("http://backend/publish".into()),
            proxy_timeout: Some(0.01),
            api_key: Some(Secret::new("k".repeat(16))),
            internal_port: Some(9001),
            ..ServeSettings::default()
        };
        assert_eq!(refused(&settings), "accepted");
        let auth = settings.resolve().unwrap().auth;
        assert!(auth.token_keys.is_some() && auth.allow_anonymous && !auth.demo_tokens);
        assert_eq!(auth.connect_proxy.unwrap().to_string(), "http://127.0.0.1:9000/connect");
        assert_eq!(auth.publish_proxy.unwrap().to_string(), "http://backend/publish");
        assert_eq!(auth.proxy_timeout, Duration::from_millis(10));
        assert_eq!(auth.internal_port, Some(9001));
    }

    #[test]
    fn defaults_are_no_auth_at_all() {
        let auth = ServeSettings::default().resolve().unwrap().auth;
        assert!(auth.token_keys.is_none() && auth.connect_proxy.is_none() && auth.publish_proxy.is_none());
        assert!(auth.api_key.is_none() && auth.internal_port.is_none() && auth.namespaces.is_empty());
        assert!(!auth.allow_anonymous && !auth.demo_tokens);
        assert_eq!(auth.proxy_timeout, Duration::from_secs(1));
    }

    #[test]
    fn secrets_never_show_in_debug_output_of_the_settings() {
        let settings = ServeSettings {
            token_hmac_secret: Some(Secret::new(SECRET)),
            api_key: Some(Secret::new("api-key-0123456789")),
            ..ServeSettings::default()
        };
        let shown = format!("{settings:?} {:?}", settings.clone().resolve().unwrap());
        assert!(!shown.contains("0123456789abcdef") && !shown.contains("api-key-"), "{shown}");
    }

    #[test]
    fn secret_files_are_read_at_startup_without_their_trailing_newline() {
        let secret = temp_file("secret", format!("{SECRET}\n").as_bytes());
        let key = temp_file("key", b"api-key-0123456789\r\n");
        let settings = ServeSettings {
            token_hmac_secret_file: Some(secret.clone()),
            api_key_file: Some(key.clone()),
            ..ServeSettings::default()
        };
        let auth = settings.resolve().unwrap().auth;
        assert_eq!(auth.api_key.unwrap().expose(), "api-key-0123456789");
        let token =
            auth.token_keys.unwrap().sign_hs256("a", std::time::SystemTime::now(), Duration::from_secs(9)).unwrap().0;
        let direct = TokenKeys::new(Some(SECRET.as_bytes()), None).unwrap();
        assert!(direct.connection_token(&token).is_ok(), "the file's secret, newline dropped, signed it");
        let short = temp_file("short", b"too short\n");
        let error = ServeSettings { token_hmac_secret_file: Some(short.clone()), ..ServeSettings::default() }
            .resolve()
            .unwrap_err();
        assert!(
            error.starts_with(&format!("--token-hmac-secret-file {}: expected a secret of 32", short.display())),
            "{error}"
        );
        assert!(!error.contains("too short"), "{error}");
        let missing = ServeSettings { api_key_file: Some("/nonexistent/key".into()), ..ServeSettings::default() };
        assert!(missing.resolve().unwrap_err().starts_with("--api-key-file /nonexistent/key: cannot read"));
        for path in [secret, key, short] {
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn a_public_key_file_must_be_an_rsa_or_p256_pem() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let good = temp_file("ec.pem", pair.public_key_pem().as_bytes());
        let auth =
            ServeSettings { token_public_key: Some(good.clone()), ..ServeSettings::default() }.resolve().unwrap().auth;
        assert!(format!("{:?}", auth.token_keys.unwrap()).contains("ES256"));
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let bad = temp_file("p384.pem", p384.public_key_pem().as_bytes());
        let error =
            ServeSettings { token_public_key: Some(bad.clone()), ..ServeSettings::default() }.resolve().unwrap_err();
        assert!(error.starts_with(&format!("--token-public-key {}: expected", bad.display())), "{error}");
        let missing = ServeSettings { token_public_key: Some("/nonexistent.pem".into()), ..ServeSettings::default() };
        assert!(missing.resolve().unwrap_err().starts_with("--token-public-key /nonexistent.pem: cannot read"));
        for path in [good, bad] {
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn placeholder_secrets_are_refused_wherever_they_come_from() {
        let s = ServeSettings::default;
        assert_eq!(
            refused(&ServeSettings { token_hmac_secret: Some(Secret::new("change-me-to-32-or-more-random-bytes!")), ..s() }),
            "--token-hmac-secret <37 bytes, hidden>: expected a secret of your own, not a placeholder starting with change-me"
        );
        assert_eq!(
            refused(&ServeSettings { api_key: Some(Secret::new("change-me-api-key-0123456789")), ..s() }),
            "--api-key <28 bytes, hidden>: expected a secret of your own, not a placeholder starting with change-me"
        );
        assert_eq!(
            file_refused("api_key = \"change-me-api-key-0123456789\""),
            "t.toml: api_key = <28 bytes, hidden>: expected a secret of your own, not a placeholder starting with change-me"
        );
        let file = temp_file("placeholder", b"change-me-to-32-or-more-random-bytes!\n");
        let error = ServeSettings { token_hmac_secret_file: Some(file.clone()), ..s() }.resolve().unwrap_err();
        assert_eq!(
            error,
            format!(
                "--token-hmac-secret-file {}: expected a secret of your own, not a placeholder starting with change-me",
                file.display()
            )
        );
        let _ = std::fs::remove_file(file);
        assert_eq!(refused(&ServeSettings { api_key: Some(Secret::new("my-change-me-key-0123")), ..s() }), "accepted");
    }

    #[test]
    fn demo_tokens_are_never_signed_with_a_configured_secret() {
        let expected = "--demo-tokens: expected no --token-hmac-secret or --token-hmac-secret-file: demo tokens use a random per-process secret; they must not be signed with a real one";
        let with_secret = ServeSettings {
            demo_tokens: true,
            token_hmac_secret: Some(Secret::new(SECRET)),
            ..ServeSettings::default()
        };
        assert_eq!(with_secret.resolve().unwrap_err(), expected);
        let with_file = ServeSettings {
            demo_tokens: true,
            token_hmac_secret_file: Some(temp_file("demo-secret", SECRET.as_bytes())),
            ..ServeSettings::default()
        };
        assert_eq!(with_file.resolve().unwrap_err(), expected);
        // With a public key, both the random secret (demo tokens) and the key verify.
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = temp_file("demo-ec.pem", pair.public_key_pem().as_bytes());
        let settings =
            ServeSettings { demo_tokens: true, token_public_key: Some(pem.clone()), ..ServeSettings::default() };
        let keys = settings.resolve().unwrap().auth.token_keys.unwrap();
        let demo = keys.sign_hs256("nick", std::time::SystemTime::now(), Duration::from_secs(30)).unwrap().0;
        assert!(keys.connection_token(&demo).is_ok());
        let encoding = jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        let es256 = jsonwebtoken::encode(&header, &serde_json::json!({"sub":"ec"}), &encoding).unwrap();
        assert!(keys.connection_token(&es256).is_ok());
        let _ = std::fs::remove_file(pem);
    }

    #[test]
    fn settings_that_do_nothing_are_named_for_a_warning() {
        let s = ServeSettings::default;
        assert!(s().ineffective_settings().is_empty());
        let anonymous = ServeSettings { allow_anonymous: true, ..s() };
        assert!(anonymous.ineffective_settings()[0].starts_with("allow_anonymous does nothing"));
        let with_keys = ServeSettings { allow_anonymous: true, demo_tokens: true, ..s() };
        assert!(with_keys.ineffective_settings().is_empty());
        let lifetime = ServeSettings { demo_token_secs: Some(60), ..s() };
        assert_eq!(lifetime.ineffective_settings(), ["demo_token_secs does nothing without demo_tokens"]);
    }

    #[test]
    fn demo_tokens_without_a_secret_get_a_random_one_per_process() {
        let settings = ServeSettings { demo_tokens: true, ..ServeSettings::default() };
        let (a, b) = (settings.clone().resolve().unwrap().auth, settings.resolve().unwrap().auth);
        let (a, b) = (a.token_keys.unwrap(), b.token_keys.unwrap());
        let token = a.sign_hs256("nick", std::time::SystemTime::now(), Duration::from_secs(30)).unwrap().0;
        assert!(a.connection_token(&token).is_ok());
        assert!(b.connection_token(&token).is_err(), "each process draws its own secret");
    }

    #[test]
    fn checks_across_settings_need_the_merged_settings() {
        let port_without_key = ServeSettings { internal_port: Some(9001), ..ServeSettings::default() };
        assert!(port_without_key
            .clone()
            .resolve()
            .unwrap_err()
            .starts_with("--internal-port 9001: expected an API key"));
        let port_for_metrics = ServeSettings { metrics: true, ..port_without_key };
        assert_eq!(port_for_metrics.resolve().unwrap().auth.internal_port, Some(9001), "metrics alone use it");
        let same_port = ServeSettings {
            internal_port: Some(8787),
            api_key: Some(Secret::new("k".repeat(16))),
            ..ServeSettings::default()
        };
        assert_eq!(same_port.resolve().unwrap_err(), "--internal-port 8787: expected a port other than --port");
        let token_rule: ServeSettings = toml::from_str("[namespaces.private]\nsubscribe = \"token\"").unwrap();
        assert!(token_rule
            .clone()
            .resolve()
            .unwrap_err()
            .starts_with("namespaces.private.subscribe = \"token\": expected token keys"));
        let with_keys = ServeSettings { demo_tokens: true, ..token_rule };
        assert_eq!(with_keys.resolve().unwrap().auth.namespaces[0].1.subscribe, SubscribeRule::Token);
        let authenticated: ServeSettings = toml::from_str("[namespaces.chat]\npublish = \"authenticated\"").unwrap();
        assert!(authenticated
            .clone()
            .resolve()
            .unwrap_err()
            .starts_with("namespaces.chat.publish = \"authenticated\": expected a way"));
        let proxied = ServeSettings { connect_proxy: Some("http://127.0.0.1:1/c".into()), ..authenticated };
        assert_eq!(proxied.resolve().unwrap().auth.namespaces[0].1.publish, PublishRule::Authenticated);
    }

    #[test]
    fn namespace_tables_are_checked_by_name_and_range() {
        assert_eq!(
            file_refused("[namespaces.chat]\nhistory_size = 100001"),
            "t.toml: namespaces.chat.history_size = 100001: expected a whole number 0..=100000 (0 = no history)"
        );
        assert_eq!(
            file_refused("[namespaces.chat]\nhistory_ttl_secs = 0"),
            "t.toml: namespaces.chat.history_ttl_secs = 0: expected whole seconds 1..=604800"
        );
        assert!(file_refused("[namespaces.\"a:b\"]\npresence = false")
            .starts_with("t.toml: namespaces = \"a:b\": expected a namespace name"));
        assert_eq!(
            file_refused("[namespaces.default]\npresence = false\n[namespaces.chat]\nhistory_size = 0"),
            "accepted"
        );
        assert!(toml::from_str::<ServeSettings>("[namespaces.chat]\nsubscribe = \"nobody\"").is_err());
        assert!(toml::from_str::<ServeSettings>("[namespaces.chat]\nhistroy_size = 1").is_err());
    }

    #[test]
    fn a_secret_from_the_command_line_replaces_the_files_secret_file() {
        let file = ServeSettings { token_hmac_secret_file: Some("/etc/secret".into()), ..ServeSettings::default() };
        let cli = ServeSettings { token_hmac_secret: Some(Secret::new(SECRET)), ..ServeSettings::default() };
        let merged = cli.over(file.clone());
        assert_eq!((merged.token_hmac_secret.is_some(), merged.token_hmac_secret_file), (true, None));
        let merged = ServeSettings::default().over(file);
        assert_eq!(merged.token_hmac_secret_file.as_deref(), Some(Path::new("/etc/secret")));
    }

    #[test]
    fn every_auth_range_is_documented_in_docs_limits_and_the_example() {
        let limits = include_str!("../../../../docs/limits.md");
        for range in AUTH_RANGES {
            assert!(limits.contains(&format!("`{}`", range.key)), "docs/limits.md lacks {}", range.key);
        }
        for key in [
            "token_hmac_secret",
            "token_hmac_secret_file",
            "token_public_key",
            "token_audience",
            "token_issuer",
            "allow_anonymous",
            "connect_proxy",
            "publish_proxy",
            "api_key",
            "api_key_file",
            "demo_tokens",
            "subscribe",
            "publish",
            "presence",
            "join_leave",
            "allow_user_limited",
        ] {
            assert!(limits.contains(&format!("`{key}`")), "docs/limits.md lacks {key}");
        }
    }
}
