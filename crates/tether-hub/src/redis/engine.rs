//! The Redis engine's state ([`RedisEngine`]): how it reaches Redis ([`RedisOptions`]), its
//! command connection (a connection manager that reconnects by itself), the node's pub/sub
//! subscriptions, its counters, and the one way every Redis call is made ([`RedisEngine::call`]:
//! bounded in time, counted, and answered `unavailable` when it fails).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use super::{envelope, scripts, subscriptions, writes};
use crate::engine::EngineStatus;
use crate::error::HubError;

/// How long one Redis call may take before it counts as failed (the node is then told
/// `unavailable` rather than left waiting).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How a hub reaches Redis.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// `redis://[:password@]host:port/db` or `rediss://` (TLS).
    pub url: String,
    /// Overrides a password in the URL (from a file, say, so it is not on a command line).
    pub password: Option<String>,
    /// PEM root certificate(s) for `rediss://`; the system's roots when `None`.
    pub ca_pem: Option<Vec<u8>>,
    /// This node's name, as the list of nodes shows it.
    pub node_name: String,
    /// A member of a node that stopped refreshing its presence entries (it crashed) is gone from
    /// presence after this long.
    pub presence_ttl: Duration,
    /// Every key and pub/sub channel starts with it, so several clusters can share one Redis.
    pub prefix: String,
}

impl RedisOptions {
    /// Options for `url`: node name `tether`, presence TTL 60 s, prefix `tether`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            ca_pem: None,
            node_name: "tether".to_owned(),
            presence_ttl: Duration::from_secs(60),
            prefix: "tether".to_owned(),
        }
    }

    /// With this password (it overrides one in the URL).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// With these PEM root certificates for `rediss://`.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// With this node name.
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = name.into();
        self
    }

    /// With this presence TTL.
    pub fn presence_ttl(mut self, ttl: Duration) -> Self {
        self.presence_ttl = ttl;
        self
    }

    /// With this key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password, wherever it came from.
        f.debug_struct("RedisOptions")
            .field("url", &redact(&self.url))
            .field("node_name", &self.node_name)
            .field("presence_ttl", &self.presence_ttl)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    // The last `@` ends the userinfo, as URL parsers read it (a password may hold an `@`).
    match rest.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// What [`crate::Hub::on_redis_publish`] calls.
type PublishObserver = Box<dyn Fn(Duration) + Send + Sync>;

/// The engine's state, shared by the hub and the engine's tasks.
pub(crate) struct RedisEngine {
    pub(crate) client: redis::Client,
    pub(crate) commands: ConnectionManager,
    pub(crate) scripts: scripts::Scripts,
    pub(crate) options: RedisOptions,
    /// Unique per process (a name may be reused by a restarted node).
    pub(crate) node_id: String,
    pub(crate) started: Instant,
    pub(crate) pubsub: subscriptions::PubSub,
    pub(crate) commands_up: AtomicBool,
    pub(crate) errors: AtomicU64,
    /// When a failure was last logged at `warn` (ms since the Unix epoch).
    last_warning: AtomicU64,
    pub(crate) publish_observer: OnceLock<PublishObserver>,
    /// The node's presence writes, in order (`presence.rs`).
    pub(crate) presence: writes::PresenceWriter,
    /// The writer's end of that queue, until [`super::start`] takes it.
    pub(crate) presence_writes: Mutex<Option<tokio::sync::mpsc::Receiver<writes::Write>>>,
    /// Clients' publishes, in order (`publisher.rs`).
    pub(crate) publishes: writes::PublishQueue,
    /// The publisher's end of that queue, until [`super::start`] takes it.
    pub(crate) publish_jobs: Mutex<Option<tokio::sync::mpsc::Receiver<writes::PublishJob>>>,
    /// Commands sent to the other nodes, waiting for their replies.
    pub(crate) waiting: Mutex<HashMap<u64, tokio::sync::mpsc::UnboundedSender<envelope::Reply>>>,
    pub(crate) next_request: AtomicU64,
}

impl RedisEngine {
    /// The engine for `options`; connects lazily (a Redis that is down now is retried).
    /// `Err` only for options that can never work: a bad URL or CA.
    pub(crate) fn new(options: RedisOptions) -> Result<Self, HubError> {
        let bad = |why: String| HubError::BadRequest(format!("redis: {why}"));
        let mut info: redis::ConnectionInfo =
            redis::IntoConnectionInfo::into_connection_info(options.url.as_str()).map_err(|e| bad(e.to_string()))?;
        if let Some(password) = &options.password {
            let settings = info.redis_settings().clone().set_password(password.clone());
            info = info.set_redis_settings(settings);
        }
        let client = match &options.ca_pem {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| bad(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let commands =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|e| bad(e.to_string()))?;
        let (presence, presence_writes) = writes::PresenceWriter::new();
        let (publishes, publish_jobs) = writes::PublishQueue::new();
        Ok(Self {
            publishes,
            publish_jobs: Mutex::new(Some(publish_jobs)),
            presence,
            presence_writes: Mutex::new(Some(presence_writes)),
            client,
            commands,
            scripts: scripts::Scripts::new(),
            pubsub: subscriptions::PubSub::default(),
            node_id: crate::channel::new_epoch() + &crate::channel::new_epoch(),
            started: Instant::now(),
            options,
            commands_up: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            last_warning: AtomicU64::new(0),
            publish_observer: OnceLock::new(),
            waiting: Mutex::default(),
            next_request: AtomicU64::new(1),
        })
    }

    pub(crate) fn status(&self) -> EngineStatus {
        let up = self.commands_up.load(Ordering::Relaxed) && self.pubsub.is_up();
        EngineStatus::Redis { up, errors: self.errors.load(Ordering::Relaxed) }
    }

    pub(crate) fn set_publish_observer(&self, observer: PublishObserver) -> bool {
        self.publish_observer.set(observer).is_ok()
    }

    /// `P:kind:{channel}`.
    pub(crate) fn channel_key(&self, kind: &str, channel: &str) -> String {
        format!("{}:{kind}:{{{channel}}}", self.options.prefix)
    }

    /// `P:name`.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.options.prefix)
    }

    /// The channel a pub/sub channel name carries, if it is one of this prefix's.
    pub(crate) fn channel_of<'a>(&self, pubsub_channel: &'a str) -> Option<&'a str> {
        let rest = pubsub_channel.strip_prefix(self.options.prefix.as_str())?.strip_prefix(":ch:{")?;
        rest.strip_suffix('}')
    }

    /// Runs one Redis call within [`CALL_TIMEOUT`]; a failure is counted, logged and answered
    /// `unavailable`.
    pub(crate) async fn call<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, HubError> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(value)) => {
                if !self.commands_up.swap(true, Ordering::Relaxed) {
                    tracing::info!(url = %redact(&self.options.url), "redis reachable");
                    // Redis is back: the pub/sub reader need not sit out the rest of its backoff.
                    self.pubsub.reachable.notify_one();
                }
                Ok(value)
            }
            Ok(Err(error)) => Err(self.failed(what, &error.to_string(), error.is_io_error() || error.is_timeout())),
            Err(_) => Err(self.failed(what, "no answer in time", true)),
        }
    }

    /// Counts a failed call; `down` when it says Redis cannot be reached (not a script error).
    /// Logged at `warn` when Redis becomes unreachable and at most every 10 s otherwise (a wrong
    /// password fails every call), else at `debug`.
    pub(crate) fn failed(&self, what: &str, why: &str, down: bool) -> HubError {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let became_down = down && self.commands_up.swap(false, Ordering::Relaxed);
        let quiet_since = self.last_warning.load(Ordering::Relaxed);
        if became_down || now.saturating_sub(quiet_since) >= 10_000 {
            self.last_warning.store(now, Ordering::Relaxed);
            tracing::warn!(what, error = why, "redis call failed");
        } else {
            tracing::debug!(what, error = why, "redis call failed");
        }
        HubError::Unavailable(format!("the channel engine (Redis) is unavailable: {what}"))
    }

    /// A subscription the pub/sub connection could not make, as the caller answers it.
    pub(crate) fn refused(&self, refused: &subscriptions::Refused) -> HubError {
        match refused {
            subscriptions::Refused::Down => {
                HubError::Unavailable("the channel engine (Redis) is unavailable: reconnecting".into())
            }
            subscriptions::Refused::Failed(why) => self.failed("subscribe", why, false),
        }
    }

    pub(crate) fn connection(&self) -> ConnectionManager {
        self.commands.clone()
    }
}

/// Milliseconds since the Unix epoch, as Redis scores and heartbeats count time.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://:s3cret@host:6379/0"), "redis://:***@host:6379/0");
        assert_eq!(redact("rediss://user:s3cret@host/1"), "rediss://user:***@host/1");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact("redis://u:p@ss@host/0"), "redis://u:***@host/0");
        let options = RedisOptions::new("redis://:pw@h/0").password("hunter2");
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2") && !shown.contains(":pw@"), "{shown}");
    }

    #[tokio::test]
    async fn bad_urls_are_refused_up_front() {
        assert!(RedisEngine::new(RedisOptions::new("http://localhost:6379")).is_err());
        assert!(RedisEngine::new(RedisOptions::new("redis://127.0.0.1:1/0")).is_ok(), "unreachable is not refused");
    }
}
