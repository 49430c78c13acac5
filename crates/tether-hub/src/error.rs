//! [`HubError`]: what went wrong with a hub operation, one variant per protocol error code.

use std::fmt;

/// What went wrong with a hub operation; `code()` is the protocol's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubError {
    /// A malformed channel name or argument.
    BadRequest(String),
    /// Not subscribed to the channel.
    NotSubscribed(String),
    /// No connection with that id.
    NotFound(String),
    /// Not allowed: the namespace policy, a reserved `$` channel, or a hook said no. The message
    /// says why.
    Forbidden(String),
    /// A token (a `refresh`'s, a subscription's) that does not verify: why.
    InvalidToken(String),
    /// A [`crate::ChannelHooks`] refusal with a code of the application's own.
    Refused {
        /// The error code the client gets.
        code: String,
        /// The message it gets.
        message: String,
    },
    /// `data` or `info` over its size limit.
    TooLarge(usize),
    /// Over the subscription limit.
    LimitExceeded(usize),
    /// The hub holds [`crate::HubConfig::max_channels`] channels; this one would be one more.
    TooManyChannels(usize),
}

impl HubError {
    /// The error code of the wire protocol.
    pub fn code(&self) -> &str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::NotSubscribed(_) => "not_subscribed",
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::InvalidToken(_) => "invalid_token",
            Self::Refused { code, .. } => code,
            Self::TooLarge(_) => "too_large",
            Self::LimitExceeded(_) | Self::TooManyChannels(_) => "limit_exceeded",
        }
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRequest(why) => f.write_str(why),
            Self::NotSubscribed(channel) => write!(f, "not subscribed to {channel}"),
            Self::NotFound(id) => write!(f, "no connection {id}"),
            Self::Forbidden(why) | Self::InvalidToken(why) => f.write_str(why),
            Self::Refused { message, .. } => f.write_str(message),
            Self::TooLarge(limit) => write!(f, "larger than the limit of {limit} bytes"),
            Self::LimitExceeded(limit) => write!(f, "at most {limit} subscriptions per connection"),
            Self::TooManyChannels(limit) => write!(f, "at most {limit} channels on this server"),
        }
    }
}

impl std::error::Error for HubError {}
