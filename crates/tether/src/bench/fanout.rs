//! `tether bench fanout`: publish at a fixed rate to many subscribers of one channel of the token
//! protocol (`docs/protocol.md`), and measure deliveries and publish-to-delivery latency.
//!
//! Subscribers connect (ramping up), send `{"type":"subscribe","id":1,"channel":...}` and wait for
//! its ack; from then on they read everything and skip what is not a `message` (joins of the other
//! subscribers, for one). When all are subscribed, the publishers start: together they publish
//! `--rate` messages a second for `--duration` seconds, evenly spaced, each `data` carrying the
//! send time in microseconds since the start of the run (`{"t":...}`), and count the acks. Every
//! subscriber must then receive every acknowledged message; the drain timeout bounds the wait.
//!
//! The server limits publishes per connection (Tether: 50/s with bursts of 100 by default), so the
//! rate is spread over enough publisher connections to stay at 40/s each unless `--publishers`
//! says otherwise; `rate_limited` answers are counted as errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Args;
use serde_json::json;
use tether_proto::{Connection, Event, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

use super::common::{positive_secs, ws_url, Common, Outcome};
use super::net::{self, Output, Step, Stream, Target};
use super::progress::Ui;
use super::stats::{self, CpuMark, Latencies, SAMPLE_BATCH};

/// Publishes per second each publisher connection makes when `--publishers` is not given: under
/// the token protocol's default limit of 50 per second per connection.
const RATE_PER_PUBLISHER: f64 = 40.0;

/// The long help of `tether bench fanout`.
pub(super) const LONG_ABOUT: &str = "Fan-out over the token protocol (docs/protocol.md): --subscribers \
    connections subscribe to one channel and wait for their acks; then publishers publish --rate \
    messages a second, evenly spaced, for --duration seconds. Each message's data carries its send \
    time ({\"t\": microseconds since the start}); each subscriber measures the publish-to-delivery \
    latency of every message it receives.\n\n\
    Reported: published (acknowledged publishes), deliveries (messages received by subscribers; \
    ideally published x subscribers), deliveries/s over the delivery window (from the first \
    publish to the last delivery received, so a server that falls behind shows a lower rate), \
    latency percentiles, errors \
    (error answers such as rate_limited, publishes never acknowledged, deliveries still missing \
    after the drain timeout, subscribers that failed or were closed), and the generator's CPU use.\n\n\
    The URL is the token-protocol endpoint, e.g. ws://127.0.0.1:8787/tether; the sub-protocol \
    tether.json is offered unless --protocol is given.\n\n\
    Example: tether bench fanout ws://127.0.0.1:8787/tether -n 1000 -r 200 -d 5";

/// `tether bench fanout` arguments.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// The token-protocol endpoint, ws:// or wss:// (e.g. ws://127.0.0.1:8787/tether).
    #[arg(value_parser = ws_url)]
    url: String,
    /// Subscriber connections.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    subscribers: u32,
    /// Messages published per second, in total over all publishers.
    #[arg(long, short = 'r', value_name = "R", default_value_t = 100.0, value_parser = rate)]
    rate: f64,
    /// Seconds of publishing.
    #[arg(long, short = 'd', value_name = "SECS", default_value_t = 5.0, value_parser = positive_secs)]
    duration: f64,
    /// Publisher connections sharing the rate [default: enough for at most 40 publishes/s each,
    /// under the token protocol's default per-connection limit of 50/s].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    publishers: Option<u32>,
    /// The channel to use.
    #[arg(long, value_name = "NAME", default_value = "bench.fanout")]
    channel: String,
    /// Extra bytes of padding in each message's data (to test larger messages).
    #[arg(long, value_name = "BYTES", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=(1 << 20)))]
    pad: u32,
    #[command(flatten)]
    pub(super) common: Common,
}

fn rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value.parse().map_err(|_| format!("{value:?} is not a number"))?;
    if !(rate > 0.0 && rate <= 1e7) {
        return Err(format!("{value} is out of range (more than 0, at most 10000000 a second)"));
    }
    Ok(rate)
}

/// What subscribers and publishers share.
struct Shared {
    /// The zero of the timestamps in messages.
    origin: Instant,
    /// Deliveries every subscriber must get (acknowledged publishes); `u64::MAX` until known.
    expected: AtomicU64,
    /// When to give up on missing deliveries, in nanoseconds since `origin`; set with `expected`.
    deadline_nanos: AtomicU64,
    /// Signalled once `expected` and the deadline are set.
    publishing_done: Notify,
    /// Deliveries so far, all subscribers, for the progress line.
    delivered: AtomicU64,
    /// Publishes acknowledged so far, for the progress line.
    acked: AtomicU64,
    /// When the first message went out, in microseconds since `origin`; `u64::MAX` until then.
    first_publish_us: AtomicU64,
    latencies: Latencies,
}

#[derive(Debug, Default)]
struct SubStats {
    deliveries: u64,
    /// When the last delivery was read, in microseconds since `origin` (0 if none).
    last_delivery_us: u64,
    missing: u64,
    /// Frames that looked like a message but carried no timestamp.
    malformed: u64,
    failure: Option<String>,
}

#[derive(Debug, Default)]
struct PubStats {
    sent: u64,
    acked: u64,
    rate_limited: u64,
    other_errors: u64,
    first_error: Option<String>,
    failure: Option<String>,
}

pub async fn run(args: FanoutArgs, ui: Ui) -> Result<Outcome, String> {
    let common = &args.common;
    let mut options = common.target_options();
    if options.protocols.is_empty() {
        options.protocols.push("tether.json".into());
    }
    let subscribers = args.subscribers as usize;
    let publishers =
        args.publishers.map_or_else(|| (args.rate / RATE_PER_PUBLISHER).ceil().max(1.0) as usize, |n| n as usize);
    if let Some(warning) = stats::raise_file_limit((subscribers + publishers) as u64 + 64) {
        ui.line(&warning);
    }
    let target = Arc::new(Target::resolve(&args.url, options).await?);
    let connect_timeout = Duration::from_secs_f64(common.connect_timeout);
    let shared = Arc::new(Shared {
        origin: Instant::now(),
        expected: AtomicU64::new(u64::MAX),
        deadline_nanos: AtomicU64::new(u64::MAX),
        publishing_done: Notify::new(),
        delivered: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        first_publish_us: AtomicU64::new(u64::MAX),
        latencies: Latencies::new(usize::from(common.threads)),
    });
    let subscribe = format!(r#"{{"type":"subscribe","id":1,"channel":{}}}"#, json!(args.channel));

    // Subscribers: each subscribes as soon as it is open and reports whether the ack came.
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let mut subscriber_tasks = JoinSet::new();
    let ramp = net::open_many(&target, subscribers, 0, common.ramp as usize, &ui, "subscribers", |index, opened| {
        let job = Subscriber {
            shared: Arc::clone(&shared),
            ready: ready_tx.clone(),
            request: subscribe.clone(),
            timeout: connect_timeout,
            index,
        };
        let net::Opened { stream, conn, leftover, .. } = opened;
        match stream {
            Stream::Plain(io) => subscriber_tasks.spawn(job.run(io, conn, leftover)),
            Stream::Tls(io) => subscriber_tasks.spawn(job.run(*io, conn, leftover)),
        };
    })
    .await;
    drop(ready_tx);
    if let Some(error) = &ramp.first_error {
        ui.line(&format!("{} subscribers could not connect; the first: {error}", ramp.failed));
    }
    let (mut subscribed, mut subscribe_failed, mut subscribe_error) = (0usize, 0usize, None);
    let waited = tokio::time::timeout(connect_timeout + Duration::from_secs(1), async {
        while let Some(result) = ready_rx.recv().await {
            match result {
                Ok(()) => subscribed += 1,
                Err(error) => {
                    subscribe_failed += 1;
                    subscribe_error.get_or_insert(error);
                }
            }
        }
    })
    .await;
    if waited.is_err() {
        subscribe_failed = ramp.opened - subscribed;
    }
    if subscribed == 0 {
        let why = subscribe_error.or(ramp.first_error).unwrap_or_default();
        return Err(format!("no subscriber could subscribe at {}: {why}", args.url));
    }
    if let Some(error) = &subscribe_error {
        ui.line(&format!("{subscribe_failed} subscribers failed to subscribe; the first: {error}"));
    }
    ui.line(&format!("{subscribed} subscribers on {}", args.channel));

    // Publishers.
    let mut opened_publishers = Vec::new();
    let pub_ramp =
        net::open_many(&target, publishers, subscribers, common.ramp as usize, &ui, "publishers", |_, opened| {
            opened_publishers.push(opened);
        })
        .await;
    if opened_publishers.is_empty() {
        let why = pub_ramp.first_error.unwrap_or_default();
        return Err(format!("no publisher could connect to {}: {why}", args.url));
    }
    let publishers = opened_publishers.len();
    let total = (args.rate * args.duration).round().max(1.0) as u64;
    let start = Instant::now() + Duration::from_millis(10);
    let end = start + Duration::from_secs_f64(args.duration);
    let drain = common.drain();
    let plan = Plan {
        shared: Arc::clone(&shared),
        channel: json!(args.channel).to_string(),
        pad: "x".repeat(args.pad as usize),
        rate: args.rate,
        total,
        publishers: publishers as u64,
        start,
        give_up: end + drain,
    };
    let plan = Arc::new(plan);
    let mut publisher_tasks = JoinSet::new();
    for (index, opened) in opened_publishers.into_iter().enumerate() {
        let plan = Arc::clone(&plan);
        let net::Opened { stream, conn, leftover, .. } = opened;
        match stream {
            Stream::Plain(io) => publisher_tasks.spawn(publish(io, conn, leftover, plan, index as u64)),
            Stream::Tls(io) => publisher_tasks.spawn(publish(*io, conn, leftover, plan, index as u64)),
        };
    }

    // Progress until the end of publishing; CPU over the publishing interval.
    tokio::time::sleep_until(start.into()).await;
    let cpu_start = CpuMark::now();
    let status = ui.status();
    let mut next_tick = start + Duration::from_secs(1);
    let (mut last_at, mut last_count) = (start, 0);
    while Instant::now() < end {
        tokio::time::sleep_until(next_tick.min(end).into()).await;
        let now = Instant::now();
        if now >= next_tick {
            next_tick += Duration::from_secs(1);
            let count = shared.delivered.load(Ordering::Relaxed);
            let rate = (count - last_count) as f64 / now.duration_since(last_at).as_secs_f64();
            (last_at, last_count) = (now, count);
            status.update(format!(
                "publishing {:>4.0} s  {} published  {rate:>10.0} deliveries/s",
                now.duration_since(start).as_secs_f64(),
                shared.acked.load(Ordering::Relaxed)
            ));
        }
    }
    let cpu_end = CpuMark::now();
    status.finish();

    let mut published = PubStats::default();
    let mut publisher_failures = 0u64;
    let joined = tokio::time::timeout_at((end + drain + Duration::from_secs(1)).into(), async {
        while let Some(result) = publisher_tasks.join_next().await {
            let stats = result.unwrap_or_else(|e| PubStats { failure: Some(e.to_string()), ..PubStats::default() });
            published.sent += stats.sent;
            published.acked += stats.acked;
            published.rate_limited += stats.rate_limited;
            published.other_errors += stats.other_errors;
            if stats.first_error.is_some() && published.first_error.is_none() {
                published.first_error = stats.first_error;
            }
            if let Some(failure) = stats.failure {
                publisher_failures += 1;
                published.failure.get_or_insert(failure);
            }
        }
    })
    .await;
    if joined.is_err() {
        publisher_tasks.abort_all();
        publisher_failures += publisher_tasks.len() as u64;
    }
    let unanswered = published.sent.saturating_sub(published.acked + published.rate_limited + published.other_errors);

    // Now every subscriber knows how many deliveries to wait for, and until when.
    let give_up = Instant::now().max(end) + drain;
    shared.deadline_nanos.store(give_up.duration_since(shared.origin).as_nanos() as u64, Ordering::Relaxed);
    shared.expected.store(published.acked, Ordering::Release);
    shared.publishing_done.notify_waiters();
    let mut received = SubStats::default();
    let mut subscriber_failures = 0u64;
    let mut first_subscriber_failure = None;
    let joined = tokio::time::timeout_at((give_up + Duration::from_secs(2)).into(), async {
        while let Some(result) = subscriber_tasks.join_next().await {
            let stats = result.unwrap_or_else(|e| SubStats { failure: Some(e.to_string()), ..SubStats::default() });
            received.deliveries += stats.deliveries;
            received.last_delivery_us = received.last_delivery_us.max(stats.last_delivery_us);
            received.missing += stats.missing;
            received.malformed += stats.malformed;
            if let Some(failure) = stats.failure {
                subscriber_failures += 1;
                first_subscriber_failure.get_or_insert(failure);
            }
        }
    })
    .await;
    if joined.is_err() {
        subscriber_failures += subscriber_tasks.len() as u64;
        subscriber_tasks.abort_all();
    }

    let latency = shared.latencies.summary();
    let cpu = cpu_start.percent_until(&cpu_end);
    // Over the time the deliveries really took, first publish to last delivery: when the server
    // falls behind, deliveries arrive after the publishing window and the rate shows it.
    let first_publish_us = shared.first_publish_us.load(Ordering::Relaxed);
    let delivery_window = if received.deliveries > 0 && first_publish_us != u64::MAX {
        received.last_delivery_us.saturating_sub(first_publish_us) as f64 / 1e6
    } else {
        0.0
    };
    let deliveries_per_sec = if delivery_window > 0.0 { received.deliveries as f64 / delivery_window } else { 0.0 };
    let errors = published.rate_limited
        + published.other_errors
        + unanswered
        + publisher_failures
        + received.missing
        + received.malformed
        + subscriber_failures
        + subscribe_failed as u64;
    let expected = published.acked * subscribed as u64;
    let mut human = format!(
        "fanout {}: {subscribed} subscribers ({} could not connect, {subscribe_failed} could not subscribe), \
         {publishers} publisher{} at {} messages/s in total, {:.1} s\n\
         \x20 published   {} acknowledged of {} sent ({} rate-limited, {} other errors, {unanswered} unanswered)\n\
         \x20 deliveries  {} of {expected} expected ({deliveries_per_sec:.1}/s over {delivery_window:.3} s, \
         first publish to last delivery)\n\
         \x20 latency     {} (publish to delivery)\n\
         \x20 errors      {errors}\n\
         \x20 client CPU  {cpu:.1}% of one core\n",
        args.url,
        ramp.failed,
        if publishers == 1 { "" } else { "s" },
        args.rate,
        args.duration,
        published.acked,
        published.sent,
        published.rate_limited,
        published.other_errors,
        received.deliveries,
        latency.line(),
    );
    for (what, detail) in [
        ("publish error", &published.first_error),
        ("publisher failure", &published.failure),
        ("subscriber failure", &first_subscriber_failure),
    ] {
        if let Some(detail) = detail {
            human.push_str(&format!("  first {what}: {detail}\n"));
        }
    }
    let json = json!({
        "mode": "fanout",
        "url": args.url,
        "subscribers": subscribed,
        "connect_failed": ramp.failed,
        "subscribe_failed": subscribe_failed,
        "publishers": publishers,
        "rate": args.rate,
        "duration_s": args.duration,
        "published": published.acked,
        "publish_errors": published.rate_limited + published.other_errors + unanswered,
        "rate_limited": published.rate_limited,
        "deliveries": received.deliveries,
        "expected_deliveries": expected,
        "deliveries_per_sec": stats::round(deliveries_per_sec, 1),
        "delivery_window_s": stats::round(delivery_window, 6),
        "p50_us": latency.p50,
        "p90_us": latency.p90,
        "p99_us": latency.p99,
        "p999_us": latency.p999,
        "max_us": latency.max,
        "missing": received.missing,
        "errors": errors,
        "client_cpu_percent": cpu,
    });
    Ok(Outcome { human, json, connected: true })
}

/// One subscriber's job.
struct Subscriber {
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    request: String,
    timeout: Duration,
    index: usize,
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
        let _ = self.ready.send(subscribed.clone());
        if failed {
            let _ = net::close(&mut io, &mut conn, &mut out, &mut rbuf, Instant::now() + Duration::from_secs(1)).await;
            // Counted as `subscribe_failed`, not as a failure here.
            return SubStats::default();
        }
        let mut stats = SubStats::default();
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
            loop {
                match conn.receive(&mut rbuf) {
                    Ok(Some(Event::Message(Message::Text(text)))) => match sent_at(text.as_bytes()) {
                        Parsed::Delivery(t) => {
                            delivered += 1;
                            samples.push(now_us.saturating_sub(t) * 1000);
                            if samples.len() == SAMPLE_BATCH {
                                self.shared.latencies.record(self.index, &mut samples);
                            }
                        }
                        Parsed::Malformed => stats.malformed += 1,
                        Parsed::Other => {}
                    },
                    Ok(Some(Event::Close(_))) => {
                        stats.failure = Some("the server closed the connection".into());
                        break;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(error) => {
                        stats.failure = Some(format!("protocol error: {error}"));
                        break;
                    }
                }
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
        self.shared.latencies.record(self.index, &mut samples);
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
            loop {
                match conn.receive(rbuf) {
                    Ok(Some(Event::Message(Message::Text(text)))) => {
                        let Ok(reply) = serde_json::from_str::<Reply<'_>>(&text) else { continue };
                        match (reply.kind, reply.id) {
                            ("ack", Some(1)) => return Ok(()),
                            ("error", Some(1)) => {
                                return Err(format!("subscribe refused: {}", reply.code.unwrap_or("error")));
                            }
                            _ => {}
                        }
                    }
                    Ok(Some(Event::Close(frame))) => {
                        return Err(format!(
                            "the server closed the connection{}",
                            frame.map(|f| format!(" with {}", f.code.0)).unwrap_or_default()
                        ));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(error) => return Err(format!("protocol error: {error}")),
                }
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

/// The fields of a reply the bench looks at.
#[derive(serde::Deserialize)]
struct Reply<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    id: Option<u64>,
    #[serde(borrow)]
    code: Option<&'a str>,
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

/// What every publisher shares.
struct Plan {
    shared: Arc<Shared>,
    /// The channel name as a JSON string.
    channel: String,
    pad: String,
    rate: f64,
    /// Messages to publish, all publishers together.
    total: u64,
    publishers: u64,
    start: Instant,
    give_up: Instant,
}

impl Plan {
    /// How many messages publisher `index` sends in all: message number `index + k * publishers`.
    fn count(&self, index: u64) -> u64 {
        if index >= self.total {
            0
        } else {
            (self.total - index).div_ceil(self.publishers)
        }
    }

    /// How many messages publisher `index` should have sent `elapsed` into the run: message `n` of
    /// the whole run goes out at `n / rate`.
    fn due(&self, index: u64, elapsed: Duration) -> u64 {
        let slots = elapsed.as_secs_f64() * self.rate;
        if slots < index as f64 {
            return 0;
        }
        (((slots - index as f64) / self.publishers as f64).floor() as u64 + 1).min(self.count(index))
    }
}

/// One publisher: publishes its share on time, counts acks and errors.
async fn publish<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    mut conn: Connection,
    mut rbuf: BytesMut,
    plan: Arc<Plan>,
    index: u64,
) -> PubStats {
    use std::fmt::Write as _;
    let mut stats = PubStats::default();
    let count = plan.count(index);
    // Wake often enough to keep the spacing even, but not more than every millisecond.
    let per_publisher = plan.rate / plan.publishers as f64;
    let tick = Duration::from_secs_f64((1.0 / per_publisher).clamp(0.001, 0.010));
    let mut out = Output::default();
    let mut text = String::with_capacity(128 + plan.pad.len());
    let mut sleep = std::pin::pin!(tokio::time::sleep_until(plan.start.into()));
    let mut transport_failed = false;
    loop {
        let now = Instant::now();
        if stats.sent < count && now >= plan.start {
            let due = plan.due(index, now - plan.start);
            while stats.sent < due {
                stats.sent += 1;
                let t = plan.shared.origin.elapsed().as_micros() as u64;
                if stats.sent == 1 {
                    plan.shared.first_publish_us.fetch_min(t, Ordering::Relaxed);
                }
                text.clear();
                let _ = write!(
                    text,
                    r#"{{"type":"publish","id":{},"channel":{},"data":{{"t":{t}"#,
                    stats.sent, plan.channel
                );
                if !plan.pad.is_empty() {
                    let _ = write!(text, r#","pad":"{}""#, plan.pad);
                }
                text.push_str("}}");
                if conn.send_text(&text).is_err() {
                    break;
                }
            }
        }
        let answered = stats.acked + stats.rate_limited + stats.other_errors;
        if stats.sent >= count && answered >= stats.sent {
            break;
        }
        if now >= plan.give_up {
            break;
        }
        let wake = if stats.sent < count { (now + tick).max(plan.start) } else { plan.give_up };
        sleep.as_mut().reset(wake.into());
        out.take_from(&mut conn);
        match net::step(&mut io, &mut out, &mut rbuf, 16 * 1024, sleep.as_mut()).await {
            Step::Read => {}
            lost @ (Step::Eof | Step::Failed(_)) => {
                stats.failure = lost.loss();
                transport_failed = true;
                break;
            }
            Step::Woken => continue,
        }
        let mut acked = 0;
        loop {
            match conn.receive(&mut rbuf) {
                Ok(Some(Event::Message(Message::Text(reply)))) => {
                    let Ok(reply) = serde_json::from_str::<Reply<'_>>(&reply) else { continue };
                    match (reply.kind, reply.id) {
                        ("ack", Some(_)) => acked += 1,
                        ("error", _) => {
                            if reply.code == Some("rate_limited") {
                                stats.rate_limited += 1;
                            } else {
                                stats.other_errors += 1;
                            }
                            stats.first_error.get_or_insert_with(|| reply.code.unwrap_or("error").to_owned());
                        }
                        _ => {}
                    }
                }
                Ok(Some(Event::Close(frame))) => {
                    stats.failure = Some(format!(
                        "the server closed the connection{}",
                        frame.map(|f| format!(" with {}", f.code.0)).unwrap_or_default()
                    ));
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => {
                    stats.failure = Some(format!("protocol error: {error}"));
                    break;
                }
            }
        }
        stats.acked += acked;
        plan.shared.acked.fetch_add(acked, Ordering::Relaxed);
        if stats.failure.is_some() {
            break;
        }
    }
    if !transport_failed {
        net::close(&mut io, &mut conn, &mut out, &mut rbuf, Instant::now() + Duration::from_secs(2)).await;
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_plan_spreads_messages_evenly() {
        let shared = Arc::new(Shared {
            origin: Instant::now(),
            expected: AtomicU64::new(0),
            deadline_nanos: AtomicU64::new(0),
            publishing_done: Notify::new(),
            delivered: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            first_publish_us: AtomicU64::new(u64::MAX),
            latencies: Latencies::new(1),
        });
        let plan = Plan {
            shared,
            channel: String::new(),
            pad: String::new(),
            rate: 200.0,
            total: 200,
            publishers: 5,
            start: Instant::now(),
            give_up: Instant::now(),
        };
        assert_eq!((0..5).map(|i| plan.count(i)).sum::<u64>(), 200);
        let at = |secs: f64| (0..5).map(|i| plan.due(i, Duration::from_secs_f64(secs))).sum::<u64>();
        assert_eq!(at(0.0), 1);
        assert_eq!(at(0.5), 101);
        assert_eq!(at(2.0), 200);
    }
}
