//! The [`Conn`] handle to one listener-style connection, and what it knows about the connection.
//!
//! A `Conn` is what every [`crate::Listener`] callback gets and what an application keeps to send
//! later, from any task: identity and request facts fixed at the handshake ([`ConnInfo`], in
//! `info.rs`), sends that never wait (they
//! are counted against the queue limit here and queued in the connection's mailbox, see
//! `mailbox.rs`), and user data by type. [`PreparedMessage`], the argument of
//! [`Conn::send_prepared`], is here too: a broadcast is a way of sending through a handle.
//!
//! The connection's task (`driver.rs`) reads the same shared state ([`ConnShared`]): it drains
//! the mailbox, and takes written bytes off `queued_bytes`.

use std::any::{Any, TypeId};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tether_proto::{CloseCode, Message, PreparedFrame, Utf8Bytes};

use crate::counts::{ConnCounters, ConnCounts};
use crate::error::Error;
use crate::identity::UserData;
use crate::info::{ConnId, ConnInfo};
use crate::mailbox::{Command, CommandQueue};

/// What every clone of a [`Conn`] and the connection's task share, in one allocation: the
/// handshake facts, the mailbox, and the counters that enforce the queue limit.
pub(crate) struct ConnShared {
    pub info: ConnInfo,
    pub commands: CommandQueue,
    /// Bytes queued for this connection and not yet written to the socket.
    pub queued_bytes: AtomicUsize,
    pub max_queue_bytes: usize,
    /// Set once the queue overflowed: the connection is being closed as a slow consumer.
    pub overflowed: AtomicBool,
    pub closed: AtomicBool,
    /// What the connection has moved, written by its task only (see `counts.rs`).
    pub counters: ConnCounters,
    /// When the handshake completed, in milliseconds since the Unix epoch (8 bytes where a
    /// `SystemTime` takes 16).
    pub connected_at_ms: u64,
    /// User data by type; a short list, empty (and unallocated) for most connections.
    data: Mutex<UserData>,
}

/// A handle to one connection: identity, request facts, sending and closing, and user data.
///
/// Cloning is cheap (one reference count). Sending never waits: the message is queued for the
/// connection's task. A connection whose queue grows past the server's `max_queue_bytes` (a client
/// that does not read) is closed with 1008 and further sends fail.
#[derive(Clone)]
pub struct Conn {
    shared: Arc<ConnShared>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.shared.info.id.as_str())
            .field("remote_addr", &self.shared.info.remote_addr)
            .field("protocol", &self.shared.info.protocol)
            .field("path", &self.shared.info.path)
            .finish()
    }
}

impl Conn {
    pub(crate) fn new(info: ConnInfo, max_queue_bytes: usize) -> Self {
        Self::with_data(info, max_queue_bytes, Vec::new())
    }

    /// A handle whose user data starts with `data` (the typed part of an [`crate::Identity`]).
    pub(crate) fn with_data(info: ConnInfo, max_queue_bytes: usize, data: UserData) -> Self {
        Self {
            shared: Arc::new(ConnShared {
                info,
                commands: CommandQueue::default(),
                queued_bytes: AtomicUsize::new(0),
                max_queue_bytes,
                overflowed: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                counters: ConnCounters::default(),
                connected_at_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX)),
                data: Mutex::new(data),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &ConnShared {
        &self.shared
    }

    /// A unique, URL-safe identifier.
    pub fn id(&self) -> &str {
        self.shared.info.id.as_str()
    }

    pub(crate) fn conn_id(&self) -> ConnId {
        self.shared.info.id
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.shared.info.remote_addr
    }

    /// The negotiated sub-protocol.
    pub fn protocol(&self) -> Option<&str> {
        self.shared.info.protocol.as_deref()
    }

    /// The request path.
    pub fn path(&self) -> &str {
        &self.shared.info.path
    }

    /// The request query, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.shared.info.query.as_deref()
    }

    /// The handshake request's headers, in order, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.shared.info.headers.iter()
    }

    /// The first value of a handshake request header (name compared case-insensitively), if it is
    /// UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The user the route's authorize hook named ([`crate::Identity::user`]); `None` on a route
    /// without a hook, or for an anonymous connection.
    pub fn user(&self) -> Option<&str> {
        self.shared.info.identity.as_ref()?.user_id()
    }

    /// The info JSON the authorize hook gave ([`crate::Identity::with_info`]).
    pub fn info(&self) -> Option<&str> {
        self.shared.info.identity.as_ref()?.info()
    }

    /// When the identity expires ([`crate::Identity::with_expiry`]).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.shared.info.identity.as_ref()?.expires_at()
    }

    /// When the connection opened (its handshake completed).
    pub fn connected_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.shared.connected_at_ms)
    }

    /// What the connection has received and sent so far.
    pub fn counts(&self) -> ConnCounts {
        self.shared.counters.get()
    }

    /// Bytes queued for the connection and not yet written to its socket (what counts against
    /// `max_queue_bytes`).
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Acquire)
    }

    /// Whether the connection's send queue overflowed (it is being, or was, closed with 1008 as a
    /// slow consumer).
    pub fn is_slow_consumer(&self) -> bool {
        self.shared.overflowed.load(Ordering::Acquire)
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Queues a text message.
    pub fn send_text(&self, text: impl Into<Utf8Bytes>) -> Result<(), Error> {
        self.send(Message::Text(text.into()))
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Message::Binary(data.into()))
    }

    /// Queues a message. Fails when the connection is closed or its queue is over the limit.
    pub fn send(&self, message: Message) -> Result<(), Error> {
        self.reserve(message.as_bytes().len())?;
        self.shared.commands.push(Command::Send(message));
        Ok(())
    }

    /// Queues a message encoded once for many connections (a broadcast): a server connection's
    /// queue holds a reference to the shared bytes, no copy; a client connection's protocol core
    /// masks a copy, as every client frame must be. Fails like [`Conn::send`].
    pub fn send_prepared(&self, message: &PreparedMessage) -> Result<(), Error> {
        let len = message.frame.len();
        self.reserve(len)?;
        self.shared.commands.push(Command::SendPrepared(message.frame.clone()));
        Ok(())
    }

    /// Counts `len` bytes against the queue limit; past it, closes the connection as a slow consumer.
    fn reserve(&self, len: usize) -> Result<(), Error> {
        let shared = &self.shared;
        if self.is_closed() || shared.overflowed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let queued = shared.queued_bytes.fetch_add(len, Ordering::AcqRel) + len;
        if queued > shared.max_queue_bytes {
            shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            if !shared.overflowed.swap(true, Ordering::AcqRel) {
                tracing::warn!(id = shared.info.id.as_str(), peer = %shared.info.remote_addr, queued, limit = shared.max_queue_bytes, "slow consumer: closing with 1008");
                let reason = format!("slow consumer: more than {} bytes queued", shared.max_queue_bytes);
                shared.commands.push(Command::Close(CloseCode::POLICY_VIOLATION, reason));
            }
            return Err(Error::QueueFull);
        }
        Ok(())
    }

    /// Queues a ping.
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        self.shared.commands.push(Command::Ping(payload.into()));
        Ok(())
    }

    /// Starts the closing handshake with this code and reason.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        self.shared.commands.push(Command::Close(code, reason.to_owned()));
        Ok(())
    }

    /// Stores per-connection data of type `T`, replacing any earlier value of that type.
    pub fn set_data<T: Any + Send + Sync>(&self, value: T) {
        let mut data = self.shared.data.lock().expect("not poisoned");
        data.retain(|(id, _)| *id != TypeId::of::<T>());
        data.push((TypeId::of::<T>(), Arc::new(value)));
    }

    /// Removes the per-connection data of type `T` and returns it, if set (what was needed only
    /// as the connection opened should not stay for its whole life).
    pub fn take_data<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let mut data = self.shared.data.lock().expect("not poisoned");
        let at = data.iter().position(|(id, _)| *id == TypeId::of::<T>())?;
        data.swap_remove(at).1.downcast().ok()
    }

    /// The per-connection data of type `T`, if set.
    pub fn data<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let data = self.shared.data.lock().expect("not poisoned");
        let value = data.iter().find(|(id, _)| *id == TypeId::of::<T>()).map(|(_, value)| Arc::clone(value))?;
        value.downcast::<T>().ok()
    }
}

/// A message encoded once, to send to many connections without re-encoding or copying: each
/// server connection's queue holds a reference to the same bytes. It is sent uncompressed (RFC 7692
/// lets every message choose), so it suits any connection, compressed or not. It goes through the
/// protocol core like any message ([`tether_proto::Connection::send_prepared`]): on a client
/// connection the core masks a copy, and nothing is sent after the connection's Close frame.
#[derive(Debug, Clone)]
pub struct PreparedMessage {
    frame: PreparedFrame,
}

impl PreparedMessage {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self { frame: PreparedFrame::text(&text.into()) }
    }

    /// A binary message.
    pub fn binary(data: &[u8]) -> Self {
        Self { frame: PreparedFrame::binary(data) }
    }

    /// The encoded frame's size in bytes.
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Whether the frame is empty (never: a frame has at least a header).
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }
}

/// A handle on no connection, for unit tests of what holds handles: from `127.0.0.1:1` on `/`,
/// with one `Cookie: a=1` header.
#[cfg(test)]
impl Conn {
    pub(crate) fn for_tests(max_queue_bytes: usize) -> Self {
        use crate::info::CompactHeaders;
        use tether_proto::handshake::head::Headers;

        let info = ConnInfo {
            id: ConnId::new(),
            remote_addr: "127.0.0.1:1".parse().unwrap(),
            protocol: None,
            path: "/".into(),
            query: None,
            headers: CompactHeaders::from(&Headers(vec![tether_proto::handshake::head::Header {
                name: "Cookie".into(),
                value: b"a=1".to_vec(),
            }])),
            identity: None,
        };
        Self::new(info, max_queue_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_url_safe() {
        let a = ConnId::new().as_str().to_owned();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(a, ConnId::new().as_str());
        let id = ConnId::parse(&a).expect("an id parses");
        assert_eq!(id.as_str(), a);
        assert_eq!(ConnId::parse("short"), None);
        assert_eq!(ConnId::parse("sixteen-chars-é").map(|id| id.as_str().to_owned()), Some("sixteen-chars-é".into()));
    }

    #[test]
    fn a_full_queue_closes_with_1008_once() {
        let conn = Conn::for_tests(10);
        conn.send_text("12345").unwrap();
        assert!(matches!(conn.send_text("123456"), Err(Error::QueueFull)));
        assert!(matches!(conn.send_text("1"), Err(Error::Closed)));
        let mut queued = conn.shared().commands.take().into_iter();
        assert!(matches!(queued.next(), Some(Command::Send(_))));
        assert!(matches!(queued.next(), Some(Command::Close(CloseCode::POLICY_VIOLATION, _))));
        assert!(queued.next().is_none());
    }

    #[test]
    fn headers_are_kept_compactly() {
        let conn = Conn::for_tests(10);
        assert_eq!(conn.header("cookie"), Some("a=1"));
        assert_eq!(conn.headers().count(), 1);
        assert_eq!(conn.header("origin"), None);
    }

    #[test]
    fn user_data_by_type() {
        let conn = Conn::for_tests(10);
        conn.set_data(7u8);
        assert_eq!(conn.take_data::<u8>().as_deref(), Some(&7));
        assert_eq!(conn.take_data::<u8>(), None, "taken");
        assert!(conn.data::<String>().is_none());
        conn.set_data("alice".to_owned());
        conn.set_data(7u32);
        assert_eq!(conn.data::<String>().as_deref().map(String::as_str), Some("alice"));
        assert_eq!(conn.data::<u32>().as_deref(), Some(&7));
    }
}
