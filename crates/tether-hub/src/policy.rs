//! Who may do what on a channel: the per-namespace policy ([`Namespaces`], [`NamespacePolicy`])
//! and the checks the token protocol runs before a client subscribes, publishes or reads.
//!
//! A channel's namespace is the part of its name before the first `:` (`chat:lobby` is in
//! `chat`); a channel without a colon, or in a namespace nobody configured, follows the default
//! policy. The checks are pure functions of the policy, the connection's user and the channel
//! name, so they are tested here without a server. Rust code and the server API publish and
//! subscribe past the policy: it governs clients. The rules deserialize from their lowercase
//! names (`"authenticated"`), as a configuration file writes them.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::HubError;
use crate::hooks::SubscriptionToken;

/// Who may subscribe to the channels of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SubscribeRule {
    /// Any connection, anonymous ones included (the default: today's open behaviour).
    #[default]
    Any,
    /// Connections with a user (a token, or the connect proxy, named one).
    Authenticated,
    /// Connections that show a subscription token for this channel and their own user.
    Token,
}

/// Who may publish to the channels of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PublishRule {
    /// Any connection (the default: today's open behaviour).
    #[default]
    Any,
    /// Connections subscribed to the channel.
    Subscribers,
    /// Connections with a user.
    Authenticated,
    /// Nobody over the token protocol: only the server API and Rust code.
    Server,
}

/// Who may send direct messages (`send`) to other connections. Not a namespace rule: a direct
/// message goes to a connection, not a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SendRule {
    /// Any connection (the default: today's open behaviour).
    #[default]
    Any,
    /// Connections with a user.
    Authenticated,
    /// Nobody over the token protocol: only the server API and Rust code.
    Server,
}

/// Whether a connection of `user` may send direct messages under `rule`.
pub(crate) fn may_send(rule: SendRule, user: Option<&str>) -> Result<(), HubError> {
    match rule {
        SendRule::Any => Ok(()),
        SendRule::Authenticated if user.is_some() => Ok(()),
        SendRule::Authenticated => Err(forbidden("direct messages need a signed-in user")),
        SendRule::Server => Err(forbidden("only the server sends direct messages here")),
    }
}

/// The rules and history settings of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamespacePolicy {
    /// Who may subscribe (and read the history).
    pub subscribe: SubscribeRule,
    /// Who may publish.
    pub publish: PublishRule,
    /// Whether subscribers may ask who else is there (`presence`).
    pub presence: bool,
    /// Whether subscribers get `join` and `leave` events.
    pub join_leave: bool,
    /// Messages kept per channel; `None` = [`crate::HubConfig::history_size`].
    pub history_size: Option<usize>,
    /// How long a message stays; `None` = [`crate::HubConfig::history_ttl`].
    pub history_ttl: Option<Duration>,
    /// Whether `NAME#alice,bob` channels may be joined by the users listed after `#` (and by
    /// nobody else) without further permission.
    pub allow_user_limited: bool,
}

impl Default for NamespacePolicy {
    fn default() -> Self {
        Self {
            subscribe: SubscribeRule::Any,
            publish: PublishRule::Any,
            presence: true,
            join_leave: true,
            history_size: None,
            history_ttl: None,
            allow_user_limited: false,
        }
    }
}

impl NamespacePolicy {
    /// The open policy (anyone subscribes, publishes, sees presence).
    pub fn open() -> Self {
        Self::default()
    }

    /// Sets who may subscribe.
    pub fn subscribe(mut self, rule: SubscribeRule) -> Self {
        self.subscribe = rule;
        self
    }

    /// Sets who may publish.
    pub fn publish(mut self, rule: PublishRule) -> Self {
        self.publish = rule;
        self
    }

    /// Turns `presence` requests on or off.
    pub fn presence(mut self, on: bool) -> Self {
        self.presence = on;
        self
    }

    /// Turns `join` and `leave` events on or off.
    pub fn join_leave(mut self, on: bool) -> Self {
        self.join_leave = on;
        self
    }

    /// Sets the history size and time to live of the namespace's channels.
    pub fn history(mut self, size: Option<usize>, ttl: Option<Duration>) -> Self {
        self.history_size = size;
        self.history_ttl = ttl;
        self
    }

    /// Allows `NAME#alice,bob` channels.
    pub fn allow_user_limited(mut self, on: bool) -> Self {
        self.allow_user_limited = on;
        self
    }
}

/// Namespace policies by name, and the default for every other channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    default: NamespacePolicy,
    named: HashMap<String, NamespacePolicy>,
}

impl Namespaces {
    /// Every channel follows `default` until namespaces are added with [`Namespaces::with`].
    pub fn new(default: NamespacePolicy) -> Self {
        Self { default, named: HashMap::new() }
    }

    /// Adds (or replaces) the policy of the channels named `name:...`. `name` is what comes before
    /// the colon, so `with("default", ..)` is for channels `default:...`; the policy of every other
    /// channel is the one given to [`Namespaces::new`].
    pub fn with(mut self, name: impl Into<String>, policy: NamespacePolicy) -> Self {
        self.named.insert(name.into(), policy);
        self
    }

    /// The policy `channel` follows.
    pub fn policy_for(&self, channel: &str) -> &NamespacePolicy {
        channel.split_once(':').and_then(|(namespace, _)| self.named.get(namespace)).unwrap_or(&self.default)
    }

    /// The longest history time to live of any namespace, `fallback` standing for those that keep
    /// the hub's: the sweeper drops what is older than this everywhere (shorter-lived entries go
    /// when their channel is next touched, or at this age at the latest).
    pub(crate) fn longest_ttl(&self, fallback: Duration) -> Duration {
        let policies = std::iter::once(&self.default).chain(self.named.values());
        policies.map(|policy| policy.history_ttl.unwrap_or(fallback)).max().unwrap_or(fallback)
    }
}

/// What a channel name says about who may join it.
enum Limited<'c> {
    /// Not a user-limited channel (the namespace does not allow them, or no `#` in the name).
    No,
    /// A user-limited channel admitting these users.
    To(std::str::Split<'c, char>),
    /// A user-limited namespace, and a name with more than one `#`: refused, so that everyone who
    /// reads the name (the server, the application, its UI) agrees on who is in it.
    Ambiguous,
}

fn limited<'c>(policy: &NamespacePolicy, channel: &'c str) -> Limited<'c> {
    if !policy.allow_user_limited {
        return Limited::No;
    }
    match channel.split_once('#') {
        None => Limited::No,
        Some((_, users)) if users.contains('#') => Limited::Ambiguous,
        Some((_, users)) => Limited::To(users.split(',')),
    }
}

/// Whether a user-limited channel admits `user`; `None` if the channel is not user-limited.
fn admits(policy: &NamespacePolicy, user: Option<&str>, channel: &str) -> Option<Result<(), HubError>> {
    match limited(policy, channel) {
        Limited::No => None,
        Limited::Ambiguous => Some(Err(forbidden(format!("{channel}: a user-limited channel has one '#'")))),
        Limited::To(mut users) => Some(match user {
            Some(user) if users.any(|listed| listed == user) => Ok(()),
            _ => Err(forbidden(format!("{channel} is limited to the users it names"))),
        }),
    }
}

/// Whether a subscribe to `channel` must show a subscription token (a user-limited channel needs
/// none: its name says who may join).
pub(crate) fn needs_token(policy: &NamespacePolicy, channel: &str) -> bool {
    policy.subscribe == SubscribeRule::Token && matches!(limited(policy, channel), Limited::No)
}

fn forbidden(message: impl Into<String>) -> HubError {
    HubError::Forbidden(message.into())
}

/// Whether a connection of `user` may subscribe to `channel`, showing `token` (already verified:
/// its signature and expiry; here only whose and for which channel it is).
pub(crate) fn may_subscribe(
    policy: &NamespacePolicy,
    user: Option<&str>,
    channel: &str,
    token: Option<&SubscriptionToken>,
) -> Result<(), HubError> {
    if let Some(admitted) = admits(policy, user, channel) {
        return admitted;
    }
    match policy.subscribe {
        SubscribeRule::Any => Ok(()),
        SubscribeRule::Authenticated if user.is_some() => Ok(()),
        SubscribeRule::Authenticated => Err(forbidden(format!("{channel} needs a signed-in user"))),
        SubscribeRule::Token => match (token, user) {
            (None, _) => Err(forbidden(format!("{channel} needs a subscription token"))),
            // The verifier checks the expiry; checked again here so that one which forgot cannot
            // let an expired token through.
            (Some(token), _) if token.expires_at.is_some_and(|at| at <= std::time::SystemTime::now()) => {
                Err(HubError::InvalidToken("the subscription token expired".into()))
            }
            (Some(token), Some(user)) if token.user == user && token.channel == channel => Ok(()),
            (Some(_), _) => Err(forbidden(format!("the subscription token is not for {channel} and this user"))),
        },
    }
}

/// Whether a connection may read the history of `channel` without subscribing: as it could
/// subscribe, except that token channels are read by their subscribers only.
pub(crate) fn may_read(
    policy: &NamespacePolicy,
    user: Option<&str>,
    channel: &str,
    subscribed: bool,
) -> Result<(), HubError> {
    if subscribed {
        return Ok(());
    }
    if needs_token(policy, channel) {
        return Err(forbidden(format!("subscribe to {channel} with its token to read its history")));
    }
    may_subscribe(policy, user, channel, None)
}

/// Whether a connection of `user` may publish to `channel`.
pub(crate) fn may_publish(
    policy: &NamespacePolicy,
    user: Option<&str>,
    channel: &str,
    subscribed: bool,
) -> Result<(), HubError> {
    if channel.starts_with('$') {
        return Err(HubError::Forbidden(format!("channel {channel} is reserved for the server")));
    }
    // Only the users a user-limited channel names may write to it, whatever the publish rule.
    admits(policy, user, channel).unwrap_or(Ok(()))?;
    match policy.publish {
        PublishRule::Any => Ok(()),
        PublishRule::Subscribers if subscribed => Ok(()),
        PublishRule::Subscribers => Err(forbidden(format!("only subscribers of {channel} may publish to it"))),
        PublishRule::Authenticated if user.is_some() => Ok(()),
        PublishRule::Authenticated => Err(forbidden(format!("{channel} needs a signed-in user to publish"))),
        PublishRule::Server => Err(forbidden(format!("only the server publishes to {channel}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(user: &str, channel: &str) -> SubscriptionToken {
        SubscriptionToken { user: user.into(), channel: channel.into(), expires_at: None }
    }

    #[test]
    fn channels_follow_their_namespace_or_the_default() {
        let strict = NamespacePolicy::open().subscribe(SubscribeRule::Authenticated);
        let namespaces = Namespaces::default().with("chat", strict.clone());
        assert_eq!(namespaces.policy_for("chat:lobby"), &strict);
        assert_eq!(namespaces.policy_for("chat"), &NamespacePolicy::default(), "no colon: the default");
        assert_eq!(namespaces.policy_for("news:x"), &NamespacePolicy::default(), "unknown namespace");
        assert_eq!(namespaces.policy_for("chat:a:b"), &strict, "the first colon ends the namespace");
    }

    #[test]
    fn subscribe_rules() {
        let any = NamespacePolicy::open();
        assert!(may_subscribe(&any, None, "c", None).is_ok());
        let auth = NamespacePolicy::open().subscribe(SubscribeRule::Authenticated);
        assert_eq!(may_subscribe(&auth, None, "c", None).unwrap_err().code(), "forbidden");
        assert!(may_subscribe(&auth, Some("ada"), "c", None).is_ok());
        let tok = NamespacePolicy::open().subscribe(SubscribeRule::Token);
        assert!(may_subscribe(&tok, Some("ada"), "s:c", None).is_err(), "no token");
        assert!(may_subscribe(&tok, Some("ada"), "s:c", Some(&token("ada", "s:c"))).is_ok());
        assert!(may_subscribe(&tok, Some("bob"), "s:c", Some(&token("ada", "s:c"))).is_err(), "another user's");
        assert!(may_subscribe(&tok, Some("ada"), "s:d", Some(&token("ada", "s:c"))).is_err(), "another channel's");
        assert!(may_subscribe(&tok, None, "s:c", Some(&token("ada", "s:c"))).is_err(), "anonymous");
        let expired = SubscriptionToken { expires_at: Some(std::time::UNIX_EPOCH), ..token("ada", "s:c") };
        assert_eq!(may_subscribe(&tok, Some("ada"), "s:c", Some(&expired)).unwrap_err().code(), "invalid_token");
    }

    #[test]
    fn user_limited_channels_admit_the_users_they_name() {
        let limited = NamespacePolicy::open().subscribe(SubscribeRule::Token).allow_user_limited(true);
        let channel = "chat:dm#alice,bob";
        assert!(may_subscribe(&limited, Some("alice"), channel, None).is_ok());
        assert!(may_subscribe(&limited, Some("bob"), channel, None).is_ok());
        assert!(may_subscribe(&limited, Some("eve"), channel, None).is_err());
        assert!(may_subscribe(&limited, None, channel, None).is_err());
        assert!(may_read(&limited, Some("alice"), channel, false).is_ok());
        assert!(may_read(&limited, Some("eve"), channel, false).is_err());
        assert!(may_publish(&limited, Some("alice"), channel, false).is_ok(), "publish = any, for those named");
        assert!(may_publish(&limited, Some("eve"), channel, true).is_err(), "nobody else, whatever the rule");
        assert!(may_publish(&limited, None, channel, false).is_err());
        assert!(may_subscribe(&limited, Some("eve"), "chat:dm#alice,bob#eve", None).is_err(), "one '#' only");
        assert!(may_subscribe(&limited, Some("alice"), "chat:dm#alice,bob#eve", None).is_err());
        assert!(!needs_token(&limited, channel) && needs_token(&limited, "chat:room"));
        // Not allowed: `#` is an ordinary character and the namespace's rule applies.
        let plain = NamespacePolicy::open().subscribe(SubscribeRule::Authenticated);
        assert!(may_subscribe(&plain, Some("eve"), channel, None).is_ok());
    }

    #[test]
    fn publish_rules() {
        let any = NamespacePolicy::open();
        assert!(may_publish(&any, None, "c", false).is_ok());
        assert!(may_publish(&any, None, "$c", false).is_err(), "$ channels stay the server's");
        let subs = NamespacePolicy::open().publish(PublishRule::Subscribers);
        assert!(may_publish(&subs, Some("ada"), "c", false).is_err());
        assert!(may_publish(&subs, None, "c", true).is_ok());
        let auth = NamespacePolicy::open().publish(PublishRule::Authenticated);
        assert!(may_publish(&auth, None, "c", true).is_err());
        assert!(may_publish(&auth, Some("ada"), "c", false).is_ok());
        let server = NamespacePolicy::open().publish(PublishRule::Server);
        assert!(may_publish(&server, Some("ada"), "c", true).is_err());
    }

    #[test]
    fn send_rules() {
        assert!(may_send(SendRule::Any, None).is_ok());
        assert!(may_send(SendRule::Authenticated, None).is_err());
        assert!(may_send(SendRule::Authenticated, Some("ada")).is_ok());
        assert!(may_send(SendRule::Server, Some("ada")).is_err());
    }

    #[test]
    fn token_channels_are_read_by_subscribers_only() {
        let tok = NamespacePolicy::open().subscribe(SubscribeRule::Token);
        assert!(may_read(&tok, Some("ada"), "s:c", false).is_err());
        assert!(may_read(&tok, Some("ada"), "s:c", true).is_ok());
        let auth = NamespacePolicy::open().subscribe(SubscribeRule::Authenticated);
        assert!(may_read(&auth, None, "c", false).is_err());
        assert!(may_read(&auth, Some("ada"), "c", false).is_ok());
    }

    #[test]
    fn the_sweep_age_is_the_longest_ttl() {
        let short = NamespacePolicy::open().history(None, Some(Duration::from_secs(5)));
        let long = NamespacePolicy::open().history(None, Some(Duration::from_secs(900)));
        let fallback = Duration::from_secs(300);
        assert_eq!(Namespaces::default().longest_ttl(fallback), fallback);
        assert_eq!(Namespaces::new(short.clone()).longest_ttl(fallback), Duration::from_secs(5), "every channel's");
        assert_eq!(Namespaces::new(short).with("x", long).longest_ttl(fallback), Duration::from_secs(900));
    }
}
