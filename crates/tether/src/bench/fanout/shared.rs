//! What the subscribers, the publishers and the run share while a fan-out runs: the clock zero of
//! the timestamps, the counters the progress line reads, the latency samples, and the signal that
//! publishing is over (with how many deliveries each subscriber must then wait for).

use std::ops::ControlFlow;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use bytes::BytesMut;
use tether_proto::{Connection, Event, Message};
use tokio::sync::Notify;

use crate::bench::stats::Latencies;

/// What subscribers and publishers share.
pub(super) struct Shared {
    /// The zero of the timestamps in messages.
    pub origin: Instant,
    /// Deliveries every subscriber must get (acknowledged publishes); `u64::MAX` until known.
    pub expected: AtomicU64,
    /// When to give up on missing deliveries, in nanoseconds since `origin`; set with `expected`.
    pub deadline_nanos: AtomicU64,
    /// Signalled once `expected` and the deadline are set.
    pub publishing_done: Notify,
    /// Deliveries so far, all subscribers, for the progress line.
    pub delivered: AtomicU64,
    /// Publishes acknowledged so far, for the progress line.
    pub acked: AtomicU64,
    /// When the first message went out, in microseconds since `origin`; `u64::MAX` until then.
    pub first_publish_us: AtomicU64,
    /// Publish-to-delivery latencies, one set per subscriber URL (`--subscriber-url`), in order.
    pub latencies: Vec<Latencies>,
}

impl Shared {
    /// Nothing known yet: `expected`, the deadline and the first publish at their "not yet" values.
    /// `groups` is the number of subscriber URLs, each with its own latencies.
    pub(super) fn new(latency_shards: usize, groups: usize) -> Self {
        Self {
            origin: Instant::now(),
            expected: AtomicU64::new(u64::MAX),
            deadline_nanos: AtomicU64::new(u64::MAX),
            publishing_done: Notify::new(),
            delivered: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            first_publish_us: AtomicU64::new(u64::MAX),
            latencies: (0..groups.max(1)).map(|_| Latencies::new(latency_shards)).collect(),
        }
    }
}

/// The fields of a reply the bench looks at.
#[derive(serde::Deserialize)]
pub(super) struct Reply<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: &'a str,
    pub id: Option<u64>,
    #[serde(borrow)]
    pub code: Option<&'a str>,
}

/// Hands every text message `conn` decodes from `rbuf` to `on_text`, until the input runs out
/// (`Ok(None)`) or `on_text` breaks with a value (`Ok(Some(value))`). The server's Close or a
/// protocol error ends the connection for the bench: `Err` with the sentence to report.
pub(super) fn each_text<T>(
    conn: &mut Connection,
    rbuf: &mut BytesMut,
    mut on_text: impl FnMut(&str) -> ControlFlow<T>,
) -> Result<Option<T>, String> {
    loop {
        match conn.receive(rbuf) {
            Ok(Some(Event::Message(Message::Text(text)))) => {
                if let ControlFlow::Break(value) = on_text(&text) {
                    return Ok(Some(value));
                }
            }
            Ok(Some(Event::Close(frame))) => {
                return Err(format!(
                    "the server closed the connection{}",
                    frame.map(|f| format!(" with {}", f.code.0)).unwrap_or_default()
                ));
            }
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(error) => return Err(format!("protocol error: {error}")),
        }
    }
}
