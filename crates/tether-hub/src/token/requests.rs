//! One answer per request type of the token protocol. Each checks its arguments, then the
//! namespace policy (`policy.rs`), then the application's hook if one is set, and only then
//! touches the hub; an `Err` is answered as an `error` with the request's id.

use std::borrow::Cow;

use serde_json::value::RawValue;
use tether_tokio::Conn;

use super::{bad_request, Failure, TokenServer};
use crate::channel::{validate_channel, Publication};
use crate::control::connection_info;
use crate::error::HubError;
use crate::expiry::{millis, millis_until};
use crate::hooks::{PublishDecision, PublishRequest, SubscribeRequest, SubscriptionToken};
use crate::policy::{self, NamespacePolicy};
use crate::session::Reserved;
use crate::wire::{Ack, MemberOut, PublicationOut, Request};

impl TokenServer {
    fn channel<'r>(request: &'r Request<'_>) -> Result<&'r str, Failure> {
        let channel = request.channel.as_deref().ok_or_else(|| bad_request("missing \"channel\""))?;
        validate_channel(channel)?;
        Ok(channel)
    }

    fn rate_limit(&self, conn: &Conn) -> Result<(), Failure> {
        let config = self.hub.config();
        let allowed =
            Self::session(conn).bucket.lock().expect("not poisoned").take(config.publish_rate, config.publish_burst);
        if allowed {
            Ok(())
        } else {
            Err(Failure(
                Cow::Borrowed("rate_limited"),
                format!("more than {} publishes per second", config.publish_rate),
            ))
        }
    }

    fn check_size(&self, data: &RawValue) -> Result<(), Failure> {
        let limit = self.hub.config().max_data_bytes;
        if data.get().len() > limit {
            return Err(HubError::TooLarge(limit).into());
        }
        Ok(())
    }

    fn data<'r>(&self, request: &'r Request<'_>) -> Result<&'r RawValue, Failure> {
        let data = request.data.ok_or_else(|| bad_request("missing \"data\""))?;
        self.check_size(data)?;
        Ok(data)
    }

    /// The subscription token of a `subscribe`, verified, when the channel's namespace asks for
    /// one (a token sent for another kind of channel is not looked at).
    fn subscription_token(
        &self,
        request: &Request<'_>,
        policy: &NamespacePolicy,
        channel: &str,
    ) -> Result<Option<SubscriptionToken>, Failure> {
        let Some(token) = request.token.as_deref().filter(|_| policy::needs_token(policy, channel)) else {
            return Ok(None);
        };
        let verifier = self
            .verifier
            .as_ref()
            .ok_or_else(|| HubError::Forbidden("this server verifies no subscription tokens".into()))?;
        verifier.subscription_token(token).map(Some).map_err(|why| HubError::InvalidToken(why).into())
    }

    pub(super) async fn subscribe(
        &self,
        conn: &Conn,
        id: u64,
        request: &Request<'_>,
    ) -> Result<Option<String>, Failure> {
        let channel = Self::channel(request)?;
        let config = self.hub.config();
        if request.info.is_some_and(|info| info.get().len() > config.max_info_bytes) {
            return Err(HubError::TooLarge(config.max_info_bytes).into());
        }
        // An offset means something only in the life of the channel that issued it: without the
        // epoch, offsets from before a restart would be taken for offsets of the new life.
        let recovery = match (request.since, request.epoch.as_deref()) {
            (Some(since), Some(epoch)) => Some((since, epoch)),
            (Some(_), None) => return Err(bad_request("\"since\" needs the \"epoch\" it belongs to")),
            (None, _) => None,
        };
        let policy = config.namespaces.policy_for(channel);
        let token = self.subscription_token(request, policy, channel)?;
        policy::may_subscribe(policy, conn.user(), channel, token.as_ref())?;
        if let Some(hooks) = &self.hooks {
            self.bounded(hooks.on_subscribe(SubscribeRequest { conn, channel, info: request.info })).await??;
        }
        let session = Self::session(conn);
        // Subscribing again answers like a first subscribe (and updates the info).
        let added = match session.reserve(channel, config.max_subscriptions)? {
            Reserved::New => true,
            Reserved::Already => false,
            // The connection is closing: nobody is there to answer.
            Reserved::Ended => return Ok(None),
        };
        // A connection that carries info from its token shows that, not what it claims here.
        let own_info = connection_info(conn);
        let info = own_info.as_deref().or(request.info);
        let subscribed = self
            .hub
            .subscribe(conn, channel, info, recovery, |offset, epoch, recovery| {
                let mut ack = Ack::new(id);
                ack.channel = Some(channel);
                ack.offset = Some(offset);
                ack.epoch = Some(epoch);
                if let Some(recovery) = &recovery {
                    ack.recovered = Some(recovery.recovered);
                    ack.truncated = recovery.truncated.then_some(true);
                    ack.publications = Some(publications_out(&recovery.publications));
                }
                ack.to_json()
            })
            .await;
        if let Err(error) = subscribed {
            if added {
                session.subscriptions.lock().expect("not poisoned").remove(channel);
            }
            return Err(error.into());
        }
        Ok(None)
    }

    pub(super) fn unsubscribe(&self, conn: &Conn, id: u64, request: &Request<'_>) -> Result<Option<String>, Failure> {
        let channel = Self::channel(request)?;
        if !Self::session(conn).subscriptions.lock().expect("not poisoned").remove(channel) {
            return Err(HubError::NotSubscribed(channel.to_owned()).into());
        }
        self.hub.leave(conn, channel)?;
        let mut ack = Ack::new(id);
        ack.channel = Some(channel);
        Ok(Some(ack.to_json()))
    }

    pub(super) async fn publish(&self, conn: &Conn, id: u64, request: &Request<'_>) -> Result<Option<String>, Failure> {
        let channel = Self::channel(request)?;
        let policy = self.hub.config().namespaces.policy_for(channel);
        let subscribed = Self::session(conn).is_subscribed(channel);
        policy::may_publish(policy, conn.user(), channel, subscribed)?;
        let data = self.data(request)?;
        self.rate_limit(conn)?;
        let replaced = match &self.hooks {
            Some(hooks) => match self.bounded(hooks.on_publish(PublishRequest { conn, channel, data })).await?? {
                PublishDecision::Accept => None,
                PublishDecision::Replace(data) => Some(data),
            },
            None => None,
        };
        let data = match &replaced {
            Some(data) => {
                self.check_size(data)?;
                data
            }
            None => data,
        };
        // Answered when the publish is done, which on the Redis engine is after this returns:
        // the connection's next request is read meanwhile (acks carry the request's id).
        let (answer_to, channel_name) = (conn.clone(), channel.to_owned());
        self.hub.publish_queued(channel, data, Some(conn.id()), move |published| match published {
            Ok(offset) => {
                let mut ack = Ack::new(id);
                ack.channel = Some(&channel_name);
                ack.offset = Some(offset);
                let _ = answer_to.send_text(ack.to_json());
            }
            Err(error) => {
                let Failure(code, message) = Failure::from(error);
                Self::error(&answer_to, Some(id), &code, &message);
            }
        });
        Ok(None)
    }

    pub(super) async fn presence(
        &self,
        conn: &Conn,
        id: u64,
        request: &Request<'_>,
    ) -> Result<Option<String>, Failure> {
        let channel = Self::channel(request)?;
        if !Self::session(conn).is_subscribed(channel) {
            return Err(HubError::NotSubscribed(channel.to_owned()).into());
        }
        if !self.hub.config().namespaces.policy_for(channel).presence {
            return Err(HubError::Forbidden(format!("presence is off for {channel}")).into());
        }
        let members = self.hub.presence(channel).await?;
        let mut ack = Ack::new(id);
        ack.channel = Some(channel);
        ack.members = Some(members.iter().map(member_out).collect());
        Ok(Some(ack.to_json()))
    }

    pub(super) async fn history(&self, conn: &Conn, id: u64, request: &Request<'_>) -> Result<Option<String>, Failure> {
        let channel = Self::channel(request)?;
        let policy = self.hub.config().namespaces.policy_for(channel);
        policy::may_read(policy, conn.user(), channel, Self::session(conn).is_subscribed(channel))?;
        let page = self.hub.history(channel, request.since, request.limit).await?;
        let mut ack = Ack::new(id);
        ack.channel = Some(channel);
        ack.offset = Some(page.offset);
        ack.epoch = Some(&page.epoch);
        ack.truncated = page.truncated.then_some(true);
        ack.publications = Some(publications_out(&page.publications));
        Ok(Some(ack.to_json()))
    }

    pub(super) async fn send(&self, conn: &Conn, id: u64, request: &Request<'_>) -> Result<Option<String>, Failure> {
        let to = request.to.as_deref().ok_or_else(|| bad_request("missing \"to\""))?;
        policy::may_send(self.hub.config().direct_messages, conn.user())?;
        let data = self.data(request)?;
        self.rate_limit(conn)?;
        self.hub.send_raw(to, data, Some(conn.id())).await?;
        Ok(Some(Ack::new(id).to_json()))
    }

    /// A fresh connection token: for the connection's own user, it moves the connection's expiry.
    pub(super) fn refresh(&self, conn: &Conn, id: u64, request: &Request<'_>) -> Result<Option<String>, Failure> {
        let token = request.token.as_deref().ok_or_else(|| bad_request("missing \"token\""))?;
        let verifier =
            self.verifier.as_ref().ok_or_else(|| HubError::Forbidden("this server verifies no tokens".into()))?;
        let Some(user) = conn.user() else {
            return Err(HubError::Forbidden("an anonymous connection has no token to refresh".into()).into());
        };
        let claims = verifier.connection_token(token).map_err(HubError::InvalidToken)?;
        if claims.user.as_deref() != Some(user) {
            return Err(HubError::InvalidToken("the token is for another user than this connection's".into()).into());
        }
        let now = std::time::SystemTime::now();
        // A verifier may allow some leeway; a token that is already past its `exp` would be acked
        // and then closed by the next sweep, so it is refused here.
        if claims.expires_at.is_some_and(|at| at <= now) {
            return Err(HubError::InvalidToken("the token expired".into()).into());
        }
        let session = Self::session(conn);
        {
            // The index moves under the session's lock, so a close in between cannot leave an
            // entry behind (lock order: session, then index; nothing takes them the other way).
            let mut expires_at = session.expires_at.lock().expect("not poisoned");
            if expires_at.is_some_and(|at| at <= now) {
                // Too late: the sweep is closing it (or about to), and a refresh cannot undo that.
                return Err(HubError::InvalidToken("the connection's token expired already".into()).into());
            }
            let old = std::mem::replace(&mut *expires_at, claims.expires_at);
            self.hub.inner.expiries.moved(conn, old, claims.expires_at);
        }
        let mut ack = Ack::new(id);
        ack.expires_at = Some(claims.expires_at.map(millis));
        ack.expires_in = Some(claims.expires_at.map(|at| millis_until(at, now)));
        Ok(Some(ack.to_json()))
    }
}

impl TokenServer {
    /// Runs a hook within [`crate::HubConfig::hook_timeout`]; past it the request is answered
    /// `unavailable`.
    async fn bounded<T>(&self, hook: impl std::future::Future<Output = T>) -> Result<T, Failure> {
        let limit = self.hub.config().hook_timeout;
        tokio::time::timeout(limit, hook).await.map_err(|_| {
            Failure(Cow::Borrowed("unavailable"), format!("the application did not answer within {limit:?}"))
        })
    }
}

fn member_out(m: &crate::Member) -> MemberOut<'_> {
    MemberOut { connection_id: &m.connection_id, user: m.user.as_deref(), info: m.info.as_deref() }
}

fn publications_out(publications: &[Publication]) -> Vec<PublicationOut<'_>> {
    publications.iter().map(|p| PublicationOut { offset: p.offset, data: &p.data, from: p.from.as_deref() }).collect()
}
