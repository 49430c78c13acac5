//! Who is on a connection, as a route's authorize hook decided before the upgrade
//! ([`crate::RouteOptions::authorize`]): a user id, optional info for others to see, an optional
//! expiry, and typed data for the application. A connection carries it for its whole life
//! ([`crate::Conn::user`], [`crate::Conn::info`], [`crate::Conn::expires_at`], and
//! [`crate::Conn::data`] for the typed part).
//!
//! Kept out of the connection's fixed facts unless a hook gave one: a connection without an
//! identity pays one pointer (`docs/memory-per-connection.md`, rule 4).

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// Typed values by their type: the shape of a connection's user data ([`crate::Conn::data`]).
pub(crate) type UserData = Vec<(TypeId, Arc<dyn Any + Send + Sync>)>;

/// A connection's identity, as an authorize hook returns it.
#[derive(Clone, Default)]
pub struct Identity {
    pub(crate) user: Option<String>,
    pub(crate) info: Option<String>,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) data: UserData,
}

impl Identity {
    /// The identity of user `id` (what the application calls its users: a database id, a name).
    pub fn user(id: impl Into<String>) -> Self {
        Self { user: Some(id.into()), ..Self::default() }
    }

    /// An accepted connection with no user: the hook let it in without knowing who it is.
    /// [`crate::Conn::user`] is then `None`.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Information others may see about this connection (a display name, an avatar), as JSON text;
    /// the token protocol shows it in presence and join events. Not checked here: the hook that
    /// writes it decides what it holds.
    pub fn with_info(mut self, json: impl Into<String>) -> Self {
        self.info = Some(json.into());
        self
    }

    /// When this identity stops being valid (a token's `exp`); what happens then is the
    /// application's call (the token protocol closes with 4001 unless the client refreshed).
    pub fn with_expiry(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Typed data for the application, found again with [`crate::Conn::data`] (a session, the
    /// token's claims). One value per type; a second of the same type replaces the first.
    pub fn with_data<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.data.retain(|(id, _)| *id != TypeId::of::<T>());
        self.data.push((TypeId::of::<T>(), Arc::new(value)));
        self
    }

    /// The user id; `None` for [`Identity::anonymous`].
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The info JSON, if any.
    pub fn info(&self) -> Option<&str> {
        self.info.as_deref()
    }

    /// The expiry, if any.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The typed data of type `T` given with [`Identity::with_data`].
    pub fn data<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.data.iter().find(|(id, _)| *id == TypeId::of::<T>()).and_then(|(_, value)| value.downcast_ref())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user)
            .field("info", &self.info)
            .field("expires_at", &self.expires_at)
            .field("data", &self.data.len())
            .finish()
    }
}

impl Identity {
    /// Splits into what a listener connection keeps (`None` when there is nothing to keep) and the
    /// typed data, which goes into the connection's user data, where [`crate::Conn::data`] finds it.
    pub(crate) fn into_parts(mut self) -> (Option<Box<Identity>>, UserData) {
        let data = std::mem::take(&mut self.data);
        let empty = self.user.is_none() && self.info.is_none() && self.expires_at.is_none();
        ((!empty).then(|| Box::new(self)), data)
    }
}
