//! The subscribers of a fan-out: opened in a ramp, each subscribes and reports whether the ack
//! came, then reads everything until it has every acknowledged message or the drain deadline
//! passes, measuring publish-to-delivery latency from the send time in each message.
//!
//! Subscribers may be spread over several endpoints (`--subscriber-url`, e.g. the nodes of a
//! cluster sharing channels through Redis): subscriber `k` of `n` URLs goes to URL `k % n`, and
//! what each group received is kept apart as well as added up.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde_json::json;
use tether_proto::Connection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::shared::{each_text, Reply, Shared};
use crate::bench::common::Common;
use crate::bench::net::{self, Output, Step, Stream, Target};
use crate::bench::progress::Ui;
use crate::bench::stats::SAMPLE_BATCH;

#[derive(Debug, Default)]
pub(super) struct SubStats {
    /// The subscriber URL this one used (its index in `--subscriber-url`).
    pub group: usize,
    pub deliveries: u64,
    /// When the last delivery was read, in microseconds since `origin` (0 if none).
    pub last_delivery_us: u64,
    pub missing: u64,
    /// Frames that looked like a message but carried no timestamp.
    pub malformed: u64,
    pub failure: Option<String>,
}

/// The subscribers once ramped up: their tasks, and the channel on which each reports its ack.
pub(super) struct Subscribers {
    tasks: JoinSet<SubStats>,
    ready: mpsc::UnboundedReceiver<(usize, Result<(), String>)>,
    /// Subscriber URLs.
    groups: usize,
    /// Connections opened, and those that could not be.
    pub opened: usize,
    pub connect_failed: usize,
    /// The first connection failure, for the report.
    pub first_error: Option<String>,
}

/// How the subscribe requests went.
#[derive(Debug, Default)]
pub(super) struct Acks {
    pub subscribed: usize,
    /// Subscribed, per subscriber URL.
    pub per_group: Vec<usize>,
    pub failed: usize,
    pub first_error: Option<String>,
}

/// What all subscribers received, added up.
#[derive(Debug, Default)]
pub(super) struct Received {
    pub totals: SubStats,
    /// Deliveries and missing deliveries per subscriber URL.
    pub per_group: Vec<GroupReceived>,
    /// Subscribers that failed (or never finished) after subscribing.
    pub failures: u64,
    pub first_failure: Option<String>,
}

/// What the subscribers of one URL received.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct GroupReceived {
    pub deliveries: u64,
    pub missing: u64,
}

/// How many of `count` subscribers go to URL `group` of `groups` (round-robin: `k % groups`).
pub(super) fn share(count: usize, groups: usize, group: usize) -> usize {
    count / groups + usize::from(group < count % groups)
}

/// Opens `count` subscribers on `channel`, spread round-robin over `targets` (one ramp per
/// target, in order); each subscribes as soon as it is open.
pub(super) async fn ramp(
    targets: &[Arc<Target>],
    shared: &Arc<Shared>,
    channel: &str,
    count: usize,
    common: &Common,
    ui: &Ui,
) -> Subscribers {
    let request = format!(r#"{{"type":"subscribe","id":1,"channel":{}}}"#, json!(channel));
    let timeout = Duration::from_secs_f64(common.connect_timeout);
    let (ready_tx, ready) = mpsc::unbounded_channel();
    let groups = targets.len().max(1);
    let mut subscribers =
        Subscribers { tasks: JoinSet::new(), ready, groups, opened: 0, connect_failed: 0, first_error: None };
    let mut first = 0;
    for (group, target) in targets.iter().enumerate() {
        let tasks = &mut subscribers.tasks;
        let count = share(count, groups, group);
        let ramp = net::open_many(target, count, first, common.ramp as usize, ui, "subscribers", |index, opened| {
            let job = Subscriber {
                shared: Arc::clone(shared),
                ready: ready_tx.clone(),
                request: request.clone(),
                timeout,
                index,
                group,
            };
            let net::Opened { stream, conn, leftover, .. } = opened;
            match stream {
                Stream::Plain(io) => tasks.spawn(job.run(io, conn, leftover)),
                Stream::Tls(io) => tasks.spawn(job.run(*io, conn, leftover)),
            };
        })
        .await;
        first += count;
        if let Some(error) = &ramp.first_error {
            ui.line(&format!("{} subscribers could not connect; the first: {error}", ramp.failed));
        }
        subscribers.opened += ramp.opened;
        subscribers.connect_failed += ramp.failed;
        if subscribers.first_error.is_none() {
            subscribers.first_error = ramp.first_error;
        }
    }
    subscribers
}

/// Waits for every opened subscriber's ack (or refusal), at most the connect timeout and a second;
/// the ones still silent then count as failed.
pub(super) async fn wait_for_acks(subscribers: &mut Subscribers, connect_timeout: Duration) -> Acks {
    let mut acks = Acks { per_group: vec![0; subscribers.groups], ..Acks::default() };
    let waited = tokio::time::timeout(connect_timeout + Duration::from_secs(1), async {
        while let Some((group, result)) = subscribers.ready.recv().await {
            match result {
                Ok(()) => {
                    acks.subscribed += 1;
                    acks.per_group[group] += 1;
                }
                Err(error) => {
                    acks.failed += 1;
                    acks.first_error.get_or_insert(error);
                }
            }
        }
    })
    .await;
    if waited.is_err() {
        acks.failed = subscribers.opened - acks.subscribed;
    }
    acks
}

/// Tells every subscriber how many deliveries to wait for (`expected`, the acknowledged publishes)
/// and until when (`drain` after the later of now and `end`), then collects what they received.
pub(super) async fn drain(
    mut subscribers: Subscribers,
    shared: &Shared,
    expected: u64,
    end: Instant,
    drain: Duration,
) -> Received {
    let give_up = Instant::now().max(end) + drain;
    shared.deadline_nanos.store(give_up.duration_since(shared.origin).as_nanos() as u64, Ordering::Relaxed);
    shared.expected.store(expected, Ordering::Release);
    shared.publishing_done.notify_waiters();
    let mut received =
        Received { per_group: vec![GroupReceived::default(); subscribers.groups], ..Received::default() };
    let tasks = &mut subscribers.tasks;
    let joined = tokio::time::timeout_at((give_up + Duration::from_secs(2)).into(), async {
        while let Some(result) = tasks.join_next().await {
            let stats = result.unwrap_or_else(|e| SubStats { failure: Some(e.to_string()), ..SubStats::default() });
            if let Some(group) = received.per_group.get_mut(stats.group) {
                group.deliveries += stats.deliveries;
                group.missing += stats.missing;
            }
            let totals = &mut received.totals;
            totals.deliveries += stats.deliveries;
            totals.last_delivery_us = totals.last_delivery_us.max(stats.last_delivery_us);
            totals.missing += stats.missing;
            totals.malformed += stats.malformed;
            if let Some(failure) = stats.failure {
                received.failures += 1;
                received.first_failure.get_or_insert(failure);
            }
        }
    })
    .await;
    if joined.is_err() {
        received.failures += tasks.len() as u64;
        tasks.abort_all();
    }
    received
}

/// One subscriber's job.
struct Subscriber {
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<(usize, Result<(), String>)>,
    request: String,
    timeout: Duration,
    index: usize,
    /// Which subscriber URL.
    group: usize,
}

impl Subscriber {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        self,
        mut io: S,
        mut conn: Connection,
        mut rbuf: BytesMut,
    ) -> SubStats {
        // Registered before anything else, so the signal cannot be missed.
        let mut done = std::pin::pin!(self.shared.publishing_done.notified());
        done.as_mut().enable();
        let mut out = Output::default();
        let subscribed = self.subscribe(&mut io, &mut conn, &mut out, &mut rbuf).await;
        let failed = subscribed.is_err();
        let _ = self.ready.send((self.group, subscribed.clone()));
        if failed {
            let _ = net::close(&mut io, &mut conn, &mut out, &mut rbuf, Instant::now() + Duration::from_secs(1)).await;
            // Counted as `subscribe_failed`, not as a failure here.
            return SubStats { group: self.group, ..SubStats::default() };
        }
        let mut stats = SubStats { group: self.group, ..SubStats::default() };
        let latencies = &self.shared.latencies[self.group];
        let mut samples = Vec::with_capacity(SAMPLE_BATCH);
        let mut deadline = std::pin::pin!(tokio::time::sleep(Duration::from_secs(86_400)));
        let mut publishing = true;
        let mut transport_failed = false;
        loop {
            if !publishing {
                let expected = self.shared.expected.load(Ordering::Acquire);
                if stats.deliveries >= expected {
                    break;
                }
            }
            out.take_from(&mut conn);
            let step = if publishing {
                net::step(&mut io, &mut out, &mut rbuf, 16 * 1024, done.as_mut()).await
            } else {
                net::step(&mut io, &mut out, &mut rbuf, 16 * 1024, deadline.as_mut()).await
            };
            match step {
                Step::Read => {}
                lost @ (Step::Eof | Step::Failed(_)) => {
                    stats.failure = lost.loss();
                    transport_failed = true;
                    break;
                }
                Step::Woken if publishing => {
                    publishing = false;
                    let nanos = self.shared.deadline_nanos.load(Ordering::Relaxed);
                    let at = self.shared.origin + Duration::from_nanos(nanos);
                    deadline.as_mut().reset(at.into());
                    continue;
                }
                Step::Woken => break,
            }
            let now_us = self.shared.origin.elapsed().as_micros() as u64;
            let mut delivered = 0;
            let read = each_text(&mut conn, &mut rbuf, |text| {
                match sent_at(text.as_bytes()) {
                    Parsed::Delivery(t) => {
                        delivered += 1;
                        samples.push(now_us.saturating_sub(t) * 1000);
                        if samples.len() == SAMPLE_BATCH {
                            latencies.record(self.index, &mut samples);
                        }
                    }
                    Parsed::Malformed => stats.malformed += 1,
                    Parsed::Other => {}
                }
                ControlFlow::<()>::Continue(())
            });
            if let Err(failure) = read {
                stats.failure = Some(failure);
            }
            if delivered > 0 {
                stats.deliveries += delivered;
                stats.last_delivery_us = now_us;
                self.shared.delivered.fetch_add(delivered, Ordering::Relaxed);
            }
            if stats.failure.is_some() {
                break;
            }
        }
        latencies.record(self.index, &mut samples);
        let expected = self.shared.expected.load(Ordering::Acquire);
        if expected != u64::MAX {
            stats.missing = expected.saturating_sub(stats.deliveries);
        }
        if !transport_failed {
            let deadline = Instant::now() + Duration::from_secs(2);
            net::close(&mut io, &mut conn, &mut out, &mut rbuf, deadline).await;
        }
        stats
    }

    /// Sends the subscribe request and waits for its ack.
    async fn subscribe<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut S,
        conn: &mut Connection,
        out: &mut Output,
        rbuf: &mut BytesMut,
    ) -> Result<(), String> {
        conn.send_text(&self.request).map_err(|e| e.to_string())?;
        let mut timeout = std::pin::pin!(tokio::time::sleep(self.timeout));
        loop {
            let answer = each_text(conn, rbuf, |text| {
                let Ok(reply) = serde_json::from_str::<Reply<'_>>(text) else { return ControlFlow::Continue(()) };
                match (reply.kind, reply.id) {
                    ("ack", Some(1)) => ControlFlow::Break(Ok(())),
                    ("error", Some(1)) => {
                        ControlFlow::Break(Err(format!("subscribe refused: {}", reply.code.unwrap_or("error"))))
                    }
                    _ => ControlFlow::Continue(()),
                }
            })?;
            if let Some(answer) = answer {
                return answer;
            }
            out.take_from(conn);
            match net::step(io, out, rbuf, 4096, timeout.as_mut()).await {
                Step::Read => {}
                lost @ (Step::Eof | Step::Failed(_)) => return Err(lost.loss().unwrap_or_default()),
                Step::Woken => return Err(format!("no answer to subscribe within {:?}", self.timeout)),
            }
        }
    }
}

enum Parsed {
    /// A message with its send time (microseconds since the origin).
    Delivery(u64),
    /// A message without a readable send time.
    Malformed,
    /// Something else (join, leave, ...).
    Other,
}

/// Reads the send time of a `message` frame. Tether writes `{"type":"message",...,"data":{"t":N...`
/// exactly so (data is passed through as published); anything else goes through a JSON parser.
fn sent_at(text: &[u8]) -> Parsed {
    const MESSAGE: &[u8] = br#"{"type":"message","#;
    const DATA: &[u8] = br#""data":{"t":"#;
    if text.starts_with(MESSAGE) {
        if let Some(at) = text.windows(DATA.len()).position(|w| w == DATA) {
            let digits = &text[at + DATA.len()..];
            let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            if len > 0 && len <= 19 && matches!(digits.get(len), Some(b',' | b'}')) {
                let t = digits[..len].iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
                return Parsed::Delivery(t);
            }
        }
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else { return Parsed::Other };
    if value.get("type").and_then(|t| t.as_str()) != Some("message") {
        return Parsed::Other;
    }
    match value.pointer("/data/t").and_then(serde_json::Value::as_u64) {
        Some(t) => Parsed::Delivery(t),
        None => Parsed::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_are_shared_round_robin() {
        assert_eq!((0..2).map(|g| share(1000, 2, g)).collect::<Vec<_>>(), [500, 500]);
        assert_eq!((0..3).map(|g| share(10, 3, g)).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!((0..3).map(|g| share(2, 3, g)).collect::<Vec<_>>(), [1, 1, 0]);
        assert_eq!(share(7, 1, 0), 7);
    }

    #[test]
    fn reads_send_times() {
        let fast = br#"{"type":"message","channel":"bench.fanout","offset":3,"data":{"t":12345},"from":"abc"}"#;
        assert!(matches!(sent_at(fast), Parsed::Delivery(12345)));
        let spaced = br#"{ "type": "message", "data": { "pad": "x", "t": 7 } }"#;
        assert!(matches!(sent_at(spaced), Parsed::Delivery(7)));
        assert!(matches!(sent_at(br#"{"type":"message","data":"hi"}"#), Parsed::Malformed));
        assert!(matches!(sent_at(br#"{"type":"join","channel":"x"}"#), Parsed::Other));
        assert!(matches!(sent_at(b"not json"), Parsed::Other));
    }
}
