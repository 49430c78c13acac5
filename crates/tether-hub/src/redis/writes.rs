//! The queue of a node's presence writes ([`PresenceWriter`], [`Write`]): what `presence.rs`
//! queues under a channel's lock and its writer makes, in that order.

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
