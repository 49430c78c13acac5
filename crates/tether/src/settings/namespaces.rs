//! `[namespaces.NAME]` tables of the TOML file: the policy of channels named `NAME:…`
//! (`[namespaces.default]` for channels without a colon). Each key is optional; an absent one is
//! today's open behaviour (or, for history, the server-wide `channel_history*`).
//!
//! Kept as plain data ([`NamespaceConfig`]); `serve` turns it into the hub's policy type.

use std::time::Duration;

use serde::Deserialize;

/// Who may subscribe to a namespace's channels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscribeRule {
    /// Anyone, anonymous included (the default).
    #[default]
    Any,
    /// Connections with a user.
    Authenticated,
    /// Connections that show a subscription token for the channel.
    Token,
}

/// Who may publish to a namespace's channels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishRule {
    /// Anyone (the default, as before namespaces existed).
    #[default]
    Any,
    /// Connections subscribed to the channel.
    Subscribers,
    /// Connections with a user.
    Authenticated,
    /// Only the server (its HTTP API and the Rust API).
    Server,
}

/// One `[namespaces.NAME]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespaceSettings {
    pub subscribe: Option<SubscribeRule>,
    pub publish: Option<PublishRule>,
    pub presence: Option<bool>,
    pub join_leave: Option<bool>,
    pub history_size: Option<usize>,
    pub history_ttl_secs: Option<u64>,
    pub allow_user_limited: Option<bool>,
}

/// A namespace's policy with the defaults applied; mirrors `tether_hub::NamespacePolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// The namespace; `default` is the one of channels without a colon.
    pub name: String,
    pub subscribe: SubscribeRule,
    pub publish: PublishRule,
    /// Whether `presence` requests are answered.
    pub presence: bool,
    /// Whether join and leave events are sent.
    pub join_leave: bool,
    /// Messages kept per channel; `None` = the server's `channel_history`.
    pub history_size: Option<usize>,
    /// How long they are kept; `None` = the server's `channel_history_secs`.
    pub history_ttl: Option<Duration>,
    /// Whether `NAME:…#alice,bob` channels admit only the users listed after `#`.
    pub allow_user_limited: bool,
}

impl NamespaceSettings {
    pub fn resolve(&self, name: &str) -> NamespaceConfig {
        NamespaceConfig {
            name: name.to_owned(),
            subscribe: self.subscribe.unwrap_or_default(),
            publish: self.publish.unwrap_or_default(),
            presence: self.presence.unwrap_or(true),
            join_leave: self.join_leave.unwrap_or(true),
            history_size: self.history_size,
            history_ttl: self.history_ttl_secs.map(Duration::from_secs),
            allow_user_limited: self.allow_user_limited.unwrap_or(false),
        }
    }
}

impl NamespaceConfig {
    /// The hub's form of this policy.
    fn policy(&self) -> tether_hub::NamespacePolicy {
        let subscribe = match self.subscribe {
            SubscribeRule::Any => tether_hub::SubscribeRule::Any,
            SubscribeRule::Authenticated => tether_hub::SubscribeRule::Authenticated,
            SubscribeRule::Token => tether_hub::SubscribeRule::Token,
        };
        let publish = match self.publish {
            PublishRule::Any => tether_hub::PublishRule::Any,
            PublishRule::Subscribers => tether_hub::PublishRule::Subscribers,
            PublishRule::Authenticated => tether_hub::PublishRule::Authenticated,
            PublishRule::Server => tether_hub::PublishRule::Server,
        };
        tether_hub::NamespacePolicy::open()
            .subscribe(subscribe)
            .publish(publish)
            .presence(self.presence)
            .join_leave(self.join_leave)
            .history(self.history_size, self.history_ttl)
            .allow_user_limited(self.allow_user_limited)
    }
}

/// The hub's namespaces from the tables: `default` is the policy of every channel no other table
/// names.
pub fn hub_namespaces(configs: &[NamespaceConfig]) -> tether_hub::Namespaces {
    let default = configs.iter().find(|config| config.name == "default").map(NamespaceConfig::policy);
    let named = configs.iter().filter(|config| config.name != "default");
    named.fold(tether_hub::Namespaces::new(default.unwrap_or_default()), |namespaces, config| {
        namespaces.with(config.name.clone(), config.policy())
    })
}

/// A namespace name: 1..=64 of the characters a channel name may hold, less `:` (which ends it).
pub fn is_namespace_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./@$".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_with_every_key_parses_and_absent_keys_are_open() {
        let table: NamespaceSettings = toml::from_str(
            "subscribe = \"token\"\npublish = \"server\"\npresence = false\njoin_leave = false\n\
             history_size = 10\nhistory_ttl_secs = 60\nallow_user_limited = true",
        )
        .unwrap();
        let config = table.resolve("chat");
        assert_eq!((config.subscribe, config.publish), (SubscribeRule::Token, PublishRule::Server));
        assert!(!config.presence && !config.join_leave && config.allow_user_limited);
        assert_eq!((config.history_size, config.history_ttl), (Some(10), Some(Duration::from_secs(60))));
        let open = NamespaceSettings::default().resolve("x");
        assert_eq!((open.subscribe, open.publish), (SubscribeRule::Any, PublishRule::Any));
        assert!(open.presence && open.join_leave && !open.allow_user_limited);
        assert_eq!((open.history_size, open.history_ttl), (None, None));
    }

    #[test]
    fn unknown_keys_and_values_are_refused() {
        assert!(toml::from_str::<NamespaceSettings>("subscrbe = \"any\"").is_err());
        assert!(toml::from_str::<NamespaceSettings>("publish = \"everyone\"").is_err());
        assert!(toml::from_str::<NamespaceSettings>("presence = \"yes\"").is_err());
    }

    #[test]
    fn the_tables_become_the_hubs_namespaces() {
        let chat: NamespaceSettings = toml::from_str("subscribe = \"authenticated\"\npresence = false").unwrap();
        let default: NamespaceSettings = toml::from_str("publish = \"server\"").unwrap();
        let namespaces = hub_namespaces(&[chat.resolve("chat"), default.resolve("default")]);
        let policy = namespaces.policy_for("chat:lobby");
        assert_eq!((policy.subscribe, policy.presence), (tether_hub::SubscribeRule::Authenticated, false));
        assert_eq!(namespaces.policy_for("lobby").publish, tether_hub::PublishRule::Server);
        assert_eq!(namespaces.policy_for("other:x").publish, tether_hub::PublishRule::Server, "the default");
        assert_eq!(hub_namespaces(&[]), tether_hub::Namespaces::default());
    }

    #[test]
    fn namespace_names() {
        for good in ["default", "chat", "a.b-c_d/e@f$g", &"n".repeat(64)] {
            assert!(is_namespace_name(good), "{good}");
        }
        for bad in ["", "chat:x", "a b", "dm#x", &"n".repeat(65)] {
            assert!(!is_namespace_name(bad), "{bad}");
        }
    }
}
