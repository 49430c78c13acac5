//! The queues of a node's writes to Redis: presence writes ([`PresenceWriter`], [`Write`]),
//! which `presence.rs` queues under a channel's lock and its writer makes in that order, and
//! clients' publishes ([`PublishQueue`], [`PublishJob`]), which `publisher.rs` pipelines.

use serde_json::value::RawValue;

use crate::error::HubError;

/// Writes waiting for the writer: past this many (Redis far behind), more are dropped and
/// counted as errors; a dropped keep-alive is made good by the next refresh.
const QUEUE: usize = 65_536;

/// One presence write, for the writer to make.
pub(crate) enum Write {
    /// Keep these members (id, member JSON) of the channel for another TTL.
    Keep { channel: String, members: Vec<(String, String)> },
    /// The member left.
    Remove { channel: String, id: String },
    /// A join or leave event for every node's subscribers.
    Event { channel: String, payload: String },
}

/// The queue to the node's presence writer.
pub(crate) struct PresenceWriter(pub(crate) tokio::sync::mpsc::Sender<Write>);

impl PresenceWriter {
    /// The queue, and the receiving end for [`run`].
    pub(crate) fn new() -> (Self, tokio::sync::mpsc::Receiver<Write>) {
        let (sender, receiver) = tokio::sync::mpsc::channel(QUEUE);
        (Self(sender), receiver)
    }
}

/// Publishes waiting for the publisher: past this many, a publish is answered `unavailable`.
const PUBLISH_QUEUE: usize = 65_536;

/// What is told a publish's offset, or why it failed.
pub(crate) type PublishDone = Box<dyn FnOnce(Result<u64, HubError>) + Send>;

/// One client publish, for the publisher.
pub(crate) struct PublishJob {
    pub channel: String,
    pub data: Box<RawValue>,
    pub from: Option<String>,
    pub done: PublishDone,
}

/// The queue to the node's publisher.
pub(crate) struct PublishQueue(pub(crate) tokio::sync::mpsc::Sender<PublishJob>);

impl PublishQueue {
    /// The queue, and the receiving end for the publisher.
    pub(crate) fn new() -> (Self, tokio::sync::mpsc::Receiver<PublishJob>) {
        let (sender, receiver) = tokio::sync::mpsc::channel(PUBLISH_QUEUE);
        (Self(sender), receiver)
    }
}
