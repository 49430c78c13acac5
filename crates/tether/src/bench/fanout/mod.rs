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
//! With `--subscriber-url` (repeatable), the subscribers go to those endpoints instead, spread
//! round-robin, while the publishers stay on URL: several nodes sharing channels (through Redis,
//! `docs/scaling.md`) measured from one process and one clock, with what each URL's subscribers
//! received reported apart.
//!
//! The server limits publishes per connection (Tether: 50/s with bursts of 100 by default), so the
//! rate is spread over enough publisher connections to stay at 40/s each unless `--publishers`
//! says otherwise; `rate_limited` answers are counted as errors.
//!
//! [`run`] reads as the phases: ramp the subscribers up and wait for their acks
//! ([`subscribers`]), open and start the publishers ([`publishers`]), show progress while they
//! publish, collect the publishers, let the subscribers drain, and report ([`report`]).

mod publishers;
mod report;
mod shared;
mod subscribers;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use crate::bench::common::{positive_secs, ws_url, Common, Outcome};
use crate::bench::net::Target;
use crate::bench::progress::Ui;
use crate::bench::stats::{self, CpuMark};
use publishers::Plan;
use report::Report;
use shared::Shared;

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
    --subscriber-url (repeatable, or comma-separated) puts the subscribers on those endpoints \
    instead of URL, spread round-robin (subscriber k on URL k mod n), while the publishers stay on \
    URL: e.g. two nodes sharing channels through Redis. The report then also gives each URL's \
    subscribers, deliveries and latency.\n\n\
    Example: tether bench fanout ws://127.0.0.1:8787/tether -n 1000 -r 200 -d 5\n\
    Two nodes: tether bench fanout ws://127.0.0.1:8787/tether -n 1000 -r 200 \
    --subscriber-url ws://127.0.0.1:8787/tether --subscriber-url ws://127.0.0.1:8788/tether";

/// `tether bench fanout` arguments.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// The token-protocol endpoint, ws:// or wss:// (e.g. ws://127.0.0.1:8787/tether): the
    /// publishers', and the subscribers' unless --subscriber-url is given.
    #[arg(value_parser = ws_url)]
    url: String,
    /// Put the subscribers on this endpoint instead of URL (repeatable, or comma-separated):
    /// spread round-robin over all of them; the publishers stay on URL.
    #[arg(long = "subscriber-url", value_name = "URL", value_delimiter = ',', value_parser = ws_url)]
    subscriber_urls: Vec<String>,
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

/// Runs the fan-out, phase by phase (see the module doc).
pub async fn run(args: FanoutArgs, ui: Ui) -> Result<Outcome, String> {
    let common = &args.common;
    let mut options = common.target_options();
    if options.protocols.is_empty() {
        options.protocols.push("tether.json".into());
    }
    let subscriber_count = args.subscribers as usize;
    let publisher_count =
        args.publishers.map_or_else(|| (args.rate / RATE_PER_PUBLISHER).ceil().max(1.0) as usize, |n| n as usize);
    if let Some(warning) = stats::raise_file_limit((subscriber_count + publisher_count) as u64 + 64) {
        ui.line(&warning);
    }
    let sub_urls = if args.subscriber_urls.is_empty() { vec![args.url.clone()] } else { args.subscriber_urls.clone() };
    let target = Arc::new(Target::resolve(&args.url, options.clone()).await?);
    let mut sub_targets = Vec::with_capacity(sub_urls.len());
    for url in &sub_urls {
        let same = *url == args.url;
        sub_targets.push(if same {
            Arc::clone(&target)
        } else {
            Arc::new(Target::resolve(url, options.clone()).await?)
        });
    }
    let connect_timeout = Duration::from_secs_f64(common.connect_timeout);
    let shared = Arc::new(Shared::new(usize::from(common.threads), sub_urls.len()));

    let mut subscribers = subscribers::ramp(&sub_targets, &shared, &args.channel, subscriber_count, common, &ui).await;
    let acks = subscribers::wait_for_acks(&mut subscribers, connect_timeout).await;
    if acks.subscribed == 0 {
        let why = acks.first_error.or(subscribers.first_error).unwrap_or_default();
        return Err(format!("no subscriber could subscribe at {}: {why}", sub_urls.join(", ")));
    }
    if let Some(error) = &acks.first_error {
        ui.line(&format!("{} subscribers failed to subscribe; the first: {error}", acks.failed));
    }
    ui.line(&format!("{} subscribers on {}", acks.subscribed, args.channel));

    let opened = publishers::open(&target, publisher_count, subscriber_count, common, &ui, &args.url).await?;
    let publisher_count = opened.len();
    let start = Instant::now() + Duration::from_millis(10);
    let end = start + Duration::from_secs_f64(args.duration);
    let drain = common.drain();
    let plan = Arc::new(Plan {
        shared: Arc::clone(&shared),
        channel: json!(args.channel).to_string(),
        pad: "x".repeat(args.pad as usize),
        rate: args.rate,
        total: (args.rate * args.duration).round().max(1.0) as u64,
        publishers: publisher_count as u64,
        start,
        give_up: end + drain,
    });
    let publishing = publishers::start(opened, &plan);
    let cpu = show_progress(&shared, start, end, &ui).await;
    // A publisher gives up at `give_up` and then has up to 2 s for its closing handshake: wait for
    // that too, so a publisher that fell behind still reports what it sent and what was acked.
    let published = publishers::collect(publishing, end + drain + Duration::from_secs(3)).await;
    let connect_failed = subscribers.connect_failed;
    let received = subscribers::drain(subscribers, &shared, published.totals.acked, end, drain).await;

    let groups = sub_urls
        .iter()
        .enumerate()
        .map(|(group, url)| report::Group {
            url,
            subscribed: acks.per_group.get(group).copied().unwrap_or(0),
            received: received.per_group.get(group).copied().unwrap_or_default(),
            latency: shared.latencies[group].summary(),
        })
        .collect();
    Ok(Report {
        url: &args.url,
        groups,
        rate: args.rate,
        duration: args.duration,
        connect_failed,
        acks,
        publishers: publisher_count,
        published,
        received,
        latency: stats::Latencies::summary_of(&shared.latencies),
        cpu,
        first_publish_us: shared.first_publish_us.load(Ordering::Relaxed),
    }
    .outcome())
}

/// Shows deliveries per second once a second while the publishers publish (from `start` to
/// `end`); returns the generator's CPU use over that interval, in % of one core.
async fn show_progress(shared: &Shared, start: Instant, end: Instant, ui: &Ui) -> f64 {
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
    cpu_start.percent_until(&cpu_end)
}
