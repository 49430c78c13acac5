//! What an application plugs into the token protocol: [`ChannelHooks`] (validate, replace or
//! refuse what clients subscribe to and publish, to persist or moderate it) and a
//! [`TokenVerifier`] (the hub never parses a JWT itself: `tether serve` gives it one that does, and
//! a library user may bring their own scheme).
//!
//! Both are trait objects ([`TokenServer::with_hooks`](crate::TokenServer::with_hooks),
//! [`TokenServer::with_verifier`](crate::TokenServer::with_verifier)): a server picks them at
//! startup from its settings, and a hook's future is boxed only when a hook is set, so a hub
//! without hooks pays nothing per message.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use serde_json::value::RawValue;
use tether_tokio::Conn;

use crate::error::HubError;

/// A boxed future, so [`ChannelHooks`] can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A client's subscribe, after the namespace policy allowed it.
#[derive(Debug)]
#[non_exhaustive]
pub struct SubscribeRequest<'a> {
    /// The subscribing connection ([`Conn::user`] says who, if anyone).
    pub conn: &'a Conn,
    /// The channel.
    pub channel: &'a str,
    /// The presence `info` the client sent, if any.
    pub info: Option<&'a RawValue>,
}

impl<'a> SubscribeRequest<'a> {
    /// A request as the hub gives it to [`ChannelHooks::on_subscribe`] (for testing a hook).
    pub fn new(conn: &'a Conn, channel: &'a str, info: Option<&'a RawValue>) -> Self {
        Self { conn, channel, info }
    }
}

/// A client's publish, after the namespace policy and the rate limit allowed it.
#[derive(Debug)]
#[non_exhaustive]
pub struct PublishRequest<'a> {
    /// The publishing connection.
    pub conn: &'a Conn,
    /// The channel.
    pub channel: &'a str,
    /// The data, as the client sent it.
    pub data: &'a RawValue,
}

impl<'a> PublishRequest<'a> {
    /// A request as the hub gives it to [`ChannelHooks::on_publish`] (for testing a hook).
    pub fn new(conn: &'a Conn, channel: &'a str, data: &'a RawValue) -> Self {
        Self { conn, channel, data }
    }
}

/// What [`ChannelHooks::on_publish`] decided for an allowed publish.
#[derive(Debug)]
pub enum PublishDecision {
    /// Publish the client's data.
    Accept,
    /// Publish this JSON instead (a moderated or enriched copy); it counts against
    /// [`crate::HubConfig::max_data_bytes`] like the original.
    Replace(Box<RawValue>),
}

/// Callbacks on client subscribes and publishes. Both default to allowing everything; an `Err` is
/// answered to the client as an error with [`HubError::code`] (use [`HubError::Forbidden`] for the
/// protocol's `forbidden`, or [`HubError::Refused`] for a code of your own).
///
/// A hook runs inside the connection's message callback: that connection's next request waits for
/// it (its requests stay in order), others do not. It is bounded by
/// [`crate::HubConfig::hook_timeout`]: past it the client is answered `unavailable`.
pub trait ChannelHooks: Send + Sync + 'static {
    /// Called before a client joins a channel.
    fn on_subscribe<'a>(&'a self, request: SubscribeRequest<'a>) -> BoxFuture<'a, Result<(), HubError>> {
        let _ = request;
        Box::pin(async { Ok(()) })
    }

    /// Called before a client's message is published.
    fn on_publish<'a>(&'a self, request: PublishRequest<'a>) -> BoxFuture<'a, Result<PublishDecision, HubError>> {
        let _ = request;
        Box::pin(async { Ok(PublishDecision::Accept) })
    }
}

/// What a verified connection token says (a `refresh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionToken {
    /// The user it is for (`sub`).
    pub user: Option<String>,
    /// When it expires (`exp`); `None` = never.
    pub expires_at: Option<SystemTime>,
}

/// What a verified subscription token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionToken {
    /// The user it is for (`sub`): must be the connection's.
    pub user: String,
    /// The channel it is for: must be the one subscribed to.
    pub channel: String,
    /// When it expires (`exp`); checked by the verifier.
    pub expires_at: Option<SystemTime>,
}

/// Checks the tokens clients show over the token protocol: a fresh connection token in `refresh`,
/// a subscription token in `subscribe`. An `Err` is the reason, told to the client as
/// `invalid_token`; the verifier checks signature and expiry, the hub whose and for what.
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies a connection token.
    fn connection_token(&self, token: &str) -> Result<ConnectionToken, String>;
    /// Verifies a subscription token.
    fn subscription_token(&self, token: &str) -> Result<SubscriptionToken, String>;
}

/// Channels the server subscribes a connection to as it opens (a token's `channels` claim, a
/// connect proxy's answer): put it in the connection's identity,
/// `Identity::user(id).with_data(InitialChannels(vec![...]))`. The namespace policy does not apply
/// (the server chose them); invalid names are skipped, and the connection's subscription limit
/// holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitialChannels(pub Vec<String>);
