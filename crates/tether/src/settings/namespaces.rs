//! `[namespaces.NAME]` tables of the TOML file: the policy of channels named `NAME:…`
//! (`[namespaces.default]` for channels without a colon). Each key is optional; an absent one is
//! today's open behaviour (or, for history, the server-wide `channel_history*`).
//!
//! Read straight into the hub's own policy types ([`NamespacePolicy`]; its rules deserialize
//! from their lowercase names).

use std::time::Duration;

use serde::Deserialize;
use tether_hub::{NamespacePolicy, Namespaces, PublishRule, SubscribeRule};

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

impl NamespaceSettings {
    /// The hub's policy: what the table says, the open default for what it leaves out.
    pub fn resolve(&self) -> NamespacePolicy {
        let open = NamespacePolicy::open();
        NamespacePolicy::open()
            .subscribe(self.subscribe.unwrap_or(open.subscribe))
            .publish(self.publish.unwrap_or(open.publish))
            .presence(self.presence.unwrap_or(open.presence))
            .join_leave(self.join_leave.unwrap_or(open.join_leave))
            .history(self.history_size, self.history_ttl_secs.map(Duration::from_secs))
            .allow_user_limited(self.allow_user_limited.unwrap_or(open.allow_user_limited))
    }
}

/// The hub's namespaces from the tables, by name: `default` is the policy of every channel no
/// other table names.
pub fn hub_namespaces(policies: &[(String, NamespacePolicy)]) -> Namespaces {
    let default = policies.iter().find(|(name, _)| name == "default").map(|(_, policy)| policy.clone());
    let named = policies.iter().filter(|(name, _)| name != "default");
    named.fold(Namespaces::new(default.unwrap_or_default()), |namespaces, (name, policy)| {
        namespaces.with(name.clone(), policy.clone())
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
        let config = table.resolve();
        assert_eq!((config.subscribe, config.publish), (SubscribeRule::Token, PublishRule::Server));
        assert!(!config.presence && !config.join_leave && config.allow_user_limited);
        assert_eq!((config.history_size, config.history_ttl), (Some(10), Some(Duration::from_secs(60))));
        let open = NamespaceSettings::default().resolve();
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
        let namespaces = hub_namespaces(&[("chat".into(), chat.resolve()), ("default".into(), default.resolve())]);
        let policy = namespaces.policy_for("chat:lobby");
        assert_eq!((policy.subscribe, policy.presence), (SubscribeRule::Authenticated, false));
        assert_eq!(namespaces.policy_for("lobby").publish, PublishRule::Server);
        assert_eq!(namespaces.policy_for("other:x").publish, PublishRule::Server, "the default");
        assert_eq!(hub_namespaces(&[]), Namespaces::default());
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
