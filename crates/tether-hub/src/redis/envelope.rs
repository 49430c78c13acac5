//! What travels between nodes through Redis pub/sub, as bytes (sans-IO: parsed and built here,
//! sent and received elsewhere).
//!
//! On a channel's pub/sub channel: `m <offset> <epoch> <frame>`, a publication whose `frame` is
//! the client's `message` text ready to send (built once by the publisher's node, with the offset
//! filled in by the publish script), and `p <connection id> <frame>`, a join or leave event for
//! every subscriber but that connection. On the control channel and the node channels: JSON
//! [`Command`]s and [`Reply`]s.

use serde::{Deserialize, Serialize};

/// A message on a channel's pub/sub channel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChannelEvent<'a> {
    Publication { offset: u64, epoch: &'a str, frame: &'a str },
    Presence { except: &'a str, frame: &'a str },
}

impl<'a> ChannelEvent<'a> {
    pub(crate) fn parse(payload: &'a str) -> Option<Self> {
        let (kind, rest) = payload.split_once(' ')?;
        match kind {
            "m" => {
                let (offset, rest) = rest.split_once(' ')?;
                let (epoch, frame) = rest.split_once(' ')?;
                Some(Self::Publication { offset: offset.parse().ok()?, epoch, frame })
            }
            "p" => {
                let (except, frame) = rest.split_once(' ')?;
                Some(Self::Presence { except, frame })
            }
            _ => None,
        }
    }

    /// A presence event's payload (publications are built by the publish script).
    pub(crate) fn presence(except: &str, frame: &str) -> String {
        format!("p {except} {frame}")
    }
}

/// The `message` frame of a publication cut around its offset, which only the publish script
/// knows: `prefix`, the offset's digits, `suffix`.
pub(crate) fn frame_around_offset(frame: &str) -> Option<(&str, &str)> {
    const MARK: &str = ",\"offset\":18446744073709551615";
    // The channel name comes before the offset and cannot hold a quote, so the first match is
    // the offset field (the data after it may hold anything).
    let at = frame.find(MARK)?;
    Some((&frame[..at + MARK.len() - 20], &frame[at + MARK.len()..]))
}

/// What one node asks every other to do.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Command {
    /// The asking node's id: replies go to its node channel, and it skips its own command.
    pub node: String,
    pub req: u64,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    /// Send this text (a `direct` frame) to the connection, if it is here.
    Send { to: String, text: String },
    /// Act on the connection or on the user's connections here.
    Act { user: Option<String>, connection: Option<String>, action: ActionWire },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum ActionWire {
    Disconnect { code: u16, reason: String },
    Subscribe { channel: String },
    Unsubscribe { channel: String },
}

/// One node's answer to a [`Command`].
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Reply {
    pub req: u64,
    /// The connection (of `Send`, or of an `Act` on one connection) is on that node.
    pub found: bool,
    pub connections: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedWire>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct FailedWire {
    pub connection: String,
    pub code: String,
    pub message: String,
}

/// A node's heartbeat, kept in the nodes hash.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    pub name: String,
    pub connections: usize,
    pub users: usize,
    pub uptime_secs: u64,
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_events_round_trip() {
        let frame = r#"{"type":"message","channel":"a b","offset":7,"data":"x y","from":null}"#;
        let payload = format!("m 7 EPOCH123 {frame}");
        assert_eq!(
            ChannelEvent::parse(&payload),
            Some(ChannelEvent::Publication { offset: 7, epoch: "EPOCH123", frame })
        );
        let presence = ChannelEvent::presence("conn1", r#"{"type":"join"}"#);
        assert_eq!(
            ChannelEvent::parse(&presence),
            Some(ChannelEvent::Presence { except: "conn1", frame: r#"{"type":"join"}"# })
        );
        assert_eq!(ChannelEvent::parse("m x e {}"), None);
        assert_eq!(ChannelEvent::parse("q 1 2 3"), None);
        assert_eq!(ChannelEvent::parse(""), None);
    }

    #[test]
    fn frame_is_cut_at_the_offset_not_at_lookalikes_in_the_data() {
        let frame = r#"{"type":"message","channel":"18446744073709551615","offset":18446744073709551615,"data":{"offset":18446744073709551615},"from":null}"#;
        let (prefix, suffix) = frame_around_offset(frame).unwrap();
        assert_eq!(prefix, r#"{"type":"message","channel":"18446744073709551615","offset":"#);
        assert_eq!(suffix, r#","data":{"offset":18446744073709551615},"from":null}"#);
        assert_eq!(format!("{prefix}42{suffix}").matches("\"offset\":42").count(), 1);
    }

    #[test]
    fn commands_and_replies_are_json() {
        let command = Command {
            node: "n1".into(),
            req: 3,
            op: Op::Act {
                user: Some("alice".into()),
                connection: None,
                action: ActionWire::Subscribe { channel: "c".into() },
            },
        };
        let text = serde_json::to_string(&command).unwrap();
        assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), command);
        let reply = Reply { req: 3, found: true, connections: 2, failed: Vec::new() };
        let text = serde_json::to_string(&reply).unwrap();
        assert!(!text.contains("failed"));
        assert_eq!(serde_json::from_str::<Reply>(&text).unwrap(), reply);
    }
}
