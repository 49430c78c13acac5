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
    /// The channel engine (Redis) cannot be reached now: try again later. What a node can do
    /// alone (echo, a message to one of its own connections) is never answered this.
    Unavailable(String),
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
            Self::Unavailable(_) => "unavailable",
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
            Self::Unavailable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for HubError {}

#[cfg(feature = "redis")]
impl HubError {
    /// The error another node reported with this code and message (a command run there).
    pub(crate) fn from_wire(code: &str, message: &str, subject: &str) -> Self {
        match code {
            "not_found" => Self::NotFound(subject.to_owned()),
            "not_subscribed" => Self::NotSubscribed(subject.to_owned()),
            "bad_request" => Self::BadRequest(message.to_owned()),
            "forbidden" => Self::Forbidden(message.to_owned()),
            "unavailable" => Self::Unavailable(message.to_owned()),
            _ => Self::Refused { code: code.to_owned(), message: message.to_owned() },
        }
    }
}
