//! `tether bench echo`: round trips against an echo endpoint.
//!
//! All connections are opened first (ramp-up), then every one starts at the same instant with K
//! messages in flight. Each time an echo arrives it is checked byte for byte (and for its type)
//! against the payload, its round-trip time goes into the histogram, and a new message takes its
//! place. Only echoes received between the end of the warmup and the end of the run count; then no
//! new messages are sent, the ones in flight are waited for (the drain timeout) and every
//! connection is closed with 1000.
//!
//! The hot loop per connection: one write for everything queued, one read for everything that
//! arrived, all frames of that read parsed, all refills queued, repeat. The payload is made once;
//! send timestamps live in a ring of K entries; latency samples go to a shared histogram in batches.
//!
//! Size: one file of about 400 lines on purpose: the run, its progress line and the hot loop are one
//! mechanism sharing `Shared` and `ConnStats`, and split apart each would be read with the others.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Args;
use serde_json::json;
use tether_proto::{CloseFrame, Connection, Event, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;

use super::common::{positive_secs, secs, ws_url, Common, Outcome};
use super::net::{self, Output, Step, Stream, Target};
use super::progress::Ui;
use super::stats::{self, CpuMark, Latencies, SAMPLE_BATCH};

/// The long help of `tether bench echo`.
pub(super) const LONG_ABOUT: &str = "Round trips against an echo endpoint (one that sends every message back, \
    with its type). Opens --connections connections (ramping up), then each keeps --pipeline \
    messages in flight for --warmup + --duration seconds, checking that every echo is byte-exact.\n\n\
    Reported over the measured --duration only:\n\
    - messages/s: echoes received and verified;\n\
    - MB/s: payload bytes of those echoes (1 MB = 10^6 bytes, counted once, the same amount was sent);\n\
    - latency: round-trip time from queueing a message to reading its echo, p50/p90/p99/p99.9/max \
      (HDR histogram, 3 significant digits);\n\
    - errors: echoes that differ from what was sent, messages still unanswered after the drain \
      timeout (lost), and connections that failed or were closed by the server during the run;\n\
    - client CPU: user + system CPU time of this process over the measured interval, as a percentage \
      of one core. Near 100% per thread, the generator is the bottleneck and the numbers understate \
      the server.\n\n\
    Example: tether bench echo ws://127.0.0.1:8787/echo -c 100 -p 16 -s 16 -d 5";

/// `tether bench echo` arguments.
#[derive(Debug, Args)]
pub struct EchoArgs {
    /// The echo endpoint, ws:// or wss:// (e.g. ws://127.0.0.1:8787/echo).
    #[arg(value_parser = ws_url)]
    url: String,
    /// Connections to open.
    #[arg(long, short = 'c', value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    connections: u32,
    /// Payload bytes per message (letters and digits, the same payload every time).
    #[arg(long, short = 's', value_name = "BYTES", default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=(64 << 20)))]
    size: u32,
    /// Messages each connection keeps in flight: sent and not yet echoed.
    #[arg(long, short = 'p', value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pipeline: u32,
    /// Seconds measured, after the warmup.
    #[arg(long, short = 'd', value_name = "SECS", default_value_t = 5.0, value_parser = positive_secs)]
    duration: f64,
    /// Seconds of load before measuring starts (connections, caches and the server warm up).
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = secs)]
    warmup: f64,
    /// Send binary messages (default: text).
    #[arg(long)]
    binary: bool,
    #[command(flatten)]
    pub(super) common: Common,
}

/// What every connection's task shares.
struct Shared {
    payload: Vec<u8>,
    binary: bool,
    pipeline: usize,
    read_chunk: usize,
    measure_start: Instant,
    measure_end: Instant,
    hard_deadline: Instant,
    /// Verified echoes in any phase, for the progress line.
    echoed: AtomicU64,
    /// Connections still running.
    running: AtomicUsize,
    latencies: Latencies,
}

/// One connection's results.
#[derive(Debug, Default)]
struct ConnStats {
    /// Verified echoes received in the measured interval.
    measured: u64,
    mismatches: u64,
    lost: u64,
    /// Why the connection ended early.
    failure: Option<String>,
    /// The transport failed (no closing handshake is possible).
    transport_failed: bool,
}

pub async fn run(args: EchoArgs, ui: Ui) -> Result<Outcome, String> {
    let common = &args.common;
    let connections = args.connections as usize;
    if let Some(warning) = stats::raise_file_limit(connections as u64 + 64) {
        ui.line(&warning);
    }
    let target = Arc::new(Target::resolve(&args.url, common.target_options()).await?);

    let mut opened = Vec::with_capacity(connections);
    let ramp = net::open_many(&target, connections, 0, common.ramp as usize, &ui, "connecting", |index, conn| {
        opened.push((index, conn));
    })
    .await;
    let compressed = opened.iter().filter(|(_, c)| c.compressed).count();
    if opened.is_empty() {
        let why = ramp.first_error.unwrap_or_default();
        return Err(format!("no connection could be opened to {}: {why}", args.url));
    }
    if let Some(error) = &ramp.first_error {
        ui.line(&format!("{} connections failed; the first: {error}", ramp.failed));
    }

    let size = args.size as usize;
    let pipeline = args.pipeline as usize;
    let frame_bytes = pipeline * (size + tether_proto::frame::MAX_HEADER_LEN);
    let start = Instant::now();
    let measure_start = start + Duration::from_secs_f64(args.warmup);
    let measure_end = measure_start + Duration::from_secs_f64(args.duration);
    let shared = Arc::new(Shared {
        payload: stats::payload(size),
        binary: args.binary,
        pipeline,
        read_chunk: (2 * frame_bytes).clamp(4096, 64 * 1024),
        measure_start,
        measure_end,
        hard_deadline: measure_end + common.drain(),
        echoed: AtomicU64::new(0),
        running: AtomicUsize::new(opened.len()),
        latencies: Latencies::new(usize::from(common.threads)),
    });
    let mut tasks = JoinSet::new();
    let connected = opened.len();
    for (index, conn) in opened {
        let shared = Arc::clone(&shared);
        let net::Opened { stream, conn, leftover, .. } = conn;
        match stream {
            Stream::Plain(io) => tasks.spawn(drive(io, conn, leftover, shared, index)),
            Stream::Tls(io) => tasks.spawn(drive(*io, conn, leftover, shared, index)),
        };
    }

    let (cpu_start, cpu_end) = watch_run(&ui, &shared, start).await;
    let mut total = ConnStats::default();
    let (mut disconnects, mut first_failure) = (0u64, None);
    let joined = tokio::time::timeout_at((shared.hard_deadline + Duration::from_secs(2)).into(), async {
        while let Some(result) = tasks.join_next().await {
            let stats = result.unwrap_or_else(|e| ConnStats { failure: Some(e.to_string()), ..ConnStats::default() });
            total.measured += stats.measured;
            total.mismatches += stats.mismatches;
            total.lost += stats.lost;
            if let Some(failure) = stats.failure {
                disconnects += 1;
                first_failure.get_or_insert(failure);
            }
        }
    })
    .await;
    if joined.is_err() {
        disconnects += tasks.len() as u64;
        first_failure.get_or_insert_with(|| "connections did not finish in time".to_owned());
        tasks.abort_all();
    }

    let latency = shared.latencies.summary();
    let cpu = cpu_start.percent_until(&cpu_end);
    let messages_per_sec = total.measured as f64 / args.duration;
    let mb_per_sec = messages_per_sec * size as f64 / 1e6;
    let errors = total.mismatches + total.lost + disconnects;
    let kind = if args.binary { "binary" } else { "text" };
    let agreed = match compressed {
        _ if !common.compression => "off".to_owned(),
        0 => "offered, declined by the server".to_owned(),
        n if n == connected => "on".to_owned(),
        n => format!("on for {n} of {connected} connections"),
    };
    let mut human = format!(
        "echo {}: {connected} connections ({} failed), {size}-byte {kind} messages, {pipeline} in flight each, \
         compression {agreed}, {} thread{}\n\
         measured {:.1} s after a {:.1} s warmup\n\
         \x20 messages    {} ({:.1}/s)\n\
         \x20 throughput  {:.3} MB/s of echoed payload\n\
         \x20 latency     {}\n\
         \x20 errors      {errors} ({} mismatched, {} lost, {disconnects} connections failed)\n\
         \x20 client CPU  {cpu:.1}% of one core\n",
        args.url,
        ramp.failed,
        common.threads,
        if common.threads == 1 { "" } else { "s" },
        args.duration,
        args.warmup,
        total.measured,
        messages_per_sec,
        mb_per_sec,
        latency.line(),
        total.mismatches,
        total.lost,
    );
    if let Some(failure) = &first_failure {
        human.push_str(&format!("  first connection failure: {failure}\n"));
    }
    if cpu >= 90.0 * f64::from(common.threads) {
        human.push_str("  note: the generator used (nearly) all of its CPU; it may be the bottleneck\n");
    }
    let json = json!({
        "mode": "echo",
        "url": args.url,
        "connections": connected,
        "connect_failed": ramp.failed,
        "pipeline": pipeline,
        "size": size,
        "binary": args.binary,
        "compression": compressed > 0,
        "threads": common.threads,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "messages": total.measured,
        "messages_per_sec": stats::round(messages_per_sec, 1),
        "mb_per_sec": stats::round(mb_per_sec, 3),
        "p50_us": latency.p50,
        "p90_us": latency.p90,
        "p99_us": latency.p99,
        "p999_us": latency.p999,
        "max_us": latency.max,
        "errors": errors,
        "mismatches": total.mismatches,
        "lost": total.lost,
        "disconnects": disconnects,
        "client_cpu_percent": cpu,
    });
    Ok(Outcome { human, json, connected: true })
}

/// Shows progress once a second until the end of the measured interval; returns the CPU marks at
/// its start and end.
async fn watch_run(ui: &Ui, shared: &Shared, start: Instant) -> (CpuMark, CpuMark) {
    let status = ui.status();
    let mut cpu_start = (shared.measure_start <= Instant::now()).then(CpuMark::now);
    let mut next_tick = start + Duration::from_secs(1);
    let (mut last_at, mut last_count) = (start, 0);
    loop {
        let mut wake = next_tick.min(shared.measure_end);
        if cpu_start.is_none() {
            wake = wake.min(shared.measure_start);
        }
        tokio::time::sleep_until(wake.into()).await;
        let now = Instant::now();
        if cpu_start.is_none() && now >= shared.measure_start {
            cpu_start = Some(CpuMark::now());
        }
        if now >= shared.measure_end {
            let end = CpuMark::now();
            status.finish();
            return (cpu_start.unwrap_or(end), end);
        }
        if now >= next_tick {
            next_tick += Duration::from_secs(1);
            let count = shared.echoed.load(Ordering::Relaxed);
            let rate = (count - last_count) as f64 / now.duration_since(last_at).as_secs_f64();
            (last_at, last_count) = (now, count);
            let phase = if now < shared.measure_start { "warmup" } else { "measuring" };
            status.update(format!(
                "{phase} {:>4.0} s  {rate:>10.0} msg/s  {} connections running",
                now.duration_since(start).as_secs_f64(),
                shared.running.load(Ordering::Relaxed)
            ));
        }
    }
}

/// One connection's run. See the module docs.
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    mut conn: Connection,
    mut rbuf: BytesMut,
    shared: Arc<Shared>,
    index: usize,
) -> ConnStats {
    let stats = run_loop(&mut io, &mut conn, &mut rbuf, &shared, index).await;
    shared.running.fetch_sub(1, Ordering::Relaxed);
    // Close with 1000 (or complete the server's close) unless the transport already failed.
    if !stats.transport_failed && Instant::now() < shared.hard_deadline {
        let mut out = Output::default();
        let deadline = shared.hard_deadline.max(Instant::now() + Duration::from_millis(500));
        net::close(&mut io, &mut conn, &mut out, &mut rbuf, deadline).await;
    }
    stats
}

async fn run_loop<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    conn: &mut Connection,
    rbuf: &mut BytesMut,
    shared: &Shared,
    index: usize,
) -> ConnStats {
    let mut stats = ConnStats::default();
    let payload = &shared.payload[..];
    let text = if shared.binary { None } else { Some(std::str::from_utf8(payload).expect("the payload is ASCII")) };
    let send = |conn: &mut Connection| match text {
        Some(text) => conn.send_text(text).is_ok(),
        None => conn.send_binary(payload).is_ok(),
    };
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(shared.pipeline);
    let mut samples = Vec::with_capacity(SAMPLE_BATCH);
    let mut out = Output::default();
    let mut deadline = std::pin::pin!(tokio::time::sleep_until(shared.hard_deadline.into()));
    let mut sending = true;
    let now = Instant::now();
    for _ in 0..shared.pipeline {
        if send(conn) {
            in_flight.push_back(now);
        }
    }
    loop {
        out.take_from(conn);
        match net::step(io, &mut out, rbuf, shared.read_chunk, deadline.as_mut()).await {
            Step::Read => {}
            Step::Eof => {
                stats.failure = Some("the server closed TCP without a closing handshake".into());
                stats.transport_failed = true;
                break;
            }
            failed @ Step::Failed(_) => {
                stats.failure = failed.loss();
                stats.transport_failed = true;
                break;
            }
            // The drain timeout is over: what is still in flight is lost.
            Step::Woken => break,
        }
        let now = Instant::now();
        if now >= shared.measure_end {
            sending = false;
        }
        let measuring = sending && now >= shared.measure_start;
        let (mut echoed, mut refills) = (0, 0);
        loop {
            match conn.receive(rbuf) {
                Ok(Some(Event::Message(message))) => {
                    let Some(sent) = in_flight.pop_front() else {
                        stats.mismatches += 1; // An answer to nothing we sent.
                        continue;
                    };
                    let same_type = matches!(message, Message::Binary(_)) == shared.binary;
                    if same_type && message.as_bytes() == payload {
                        echoed += 1;
                        if measuring {
                            stats.measured += 1;
                            samples.push(now.duration_since(sent).as_nanos() as u64);
                            if samples.len() == SAMPLE_BATCH {
                                shared.latencies.record(index, &mut samples);
                            }
                        }
                    } else {
                        stats.mismatches += 1;
                    }
                    if sending && send(conn) {
                        refills += 1;
                    }
                }
                Ok(Some(Event::Ping(_) | Event::Pong(_))) => {}
                Ok(Some(Event::Close(frame))) => {
                    stats.failure = Some(format!("the server closed the connection ({})", describe(frame.as_ref())));
                    break;
                }
                Ok(None) => break,
                Err(error) => {
                    stats.failure = Some(format!("protocol error: {error}"));
                    break;
                }
            }
        }
        shared.echoed.fetch_add(echoed, Ordering::Relaxed);
        if refills > 0 {
            let sent = Instant::now();
            in_flight.extend(std::iter::repeat_n(sent, refills));
        }
        if stats.failure.is_some() || (!sending && in_flight.is_empty()) {
            break;
        }
    }
    stats.lost = in_flight.len() as u64;
    shared.latencies.record(index, &mut samples);
    stats
}

fn describe(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(frame) if frame.reason.is_empty() => format!("code {}", frame.code.0),
        Some(frame) => format!("code {}: {}", frame.code.0, frame.reason),
        None => "no code".into(),
    }
}
