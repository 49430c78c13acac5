//! `tether bench idle`: open many connections and hold them.
//!
//! Connections are opened with at most `--ramp` handshakes at a time; each one then sits in a
//! small task that answers pings and notices when the server closes it. Once the ramp is over they
//! are held for `--hold` seconds, then closed with 1000. Memory per held connection is a socket, a
//! `Connection` and a read buffer of about 1 KiB.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Args;
use serde_json::json;
use tether_proto::{Connection, Event};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::common::{secs, ws_url, Common, Outcome};
use super::net::{self, Output, Step, Stream, Target};
use super::progress::Ui;
use super::stats::{self, CpuMark};

/// The long help of `tether bench idle`.
pub(super) const LONG_ABOUT: &str = "Open --connections connections (ramping up, --ramp handshakes at a time), \
    hold them for --hold seconds once all attempts are done, then close them with 1000. Pings from \
    the server are answered; nothing else is sent.\n\n\
    Reports how many connections opened (connected), how many could not (failed: refused, timed \
    out, reset), how many the server closed or lost during the hold (dropped), and the setup time \
    (TCP + TLS + handshake) percentiles.\n\n\
    Beyond ~28k connections to one server address, add --source-ips N (loopback servers) and \
    make sure both the server and `ulimit -n` allow that many.\n\n\
    Example: tether bench idle ws://127.0.0.1:8787/echo -c 10000 --hold 10";

/// `tether bench idle` arguments.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// The WebSocket endpoint, ws:// or wss:// (e.g. ws://127.0.0.1:8787/echo).
    #[arg(value_parser = ws_url)]
    url: String,
    /// Connections to open.
    #[arg(long, short = 'c', value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    connections: u32,
    /// Seconds to hold the connections open after the ramp-up.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = secs)]
    hold: f64,
    #[command(flatten)]
    pub(super) common: Common,
}

/// What the holding tasks share.
#[derive(Default)]
struct Shared {
    /// Connections open right now.
    open: AtomicUsize,
    /// Connections the server closed (or that failed) while held.
    dropped: AtomicUsize,
    first_drop: Mutex<Option<String>>,
}

pub async fn run(args: IdleArgs, ui: Ui) -> Result<Outcome, String> {
    let common = &args.common;
    let connections = args.connections as usize;
    if let Some(warning) = stats::raise_file_limit(connections as u64 + 64) {
        ui.line(&warning);
    }
    let target = Arc::new(Target::resolve(&args.url, common.target_options()).await?);
    let shared = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let cpu_start = CpuMark::now();
    let drain = common.drain();
    let ramp = net::open_many(&target, connections, 0, common.ramp as usize, &ui, "connecting", |_, opened| {
        let (shared, stop) = (Arc::clone(&shared), stop_rx.clone());
        let net::Opened { stream, conn, leftover, .. } = opened;
        shared.open.fetch_add(1, Ordering::Relaxed);
        match stream {
            Stream::Plain(io) => tasks.spawn(hold(io, conn, leftover, stop, shared, drain)),
            Stream::Tls(io) => tasks.spawn(hold(*io, conn, leftover, stop, shared, drain)),
        };
    })
    .await;
    if let Some(error) = &ramp.first_error {
        ui.line(&format!("{} connections failed; the first: {error}", ramp.failed));
    }

    // Nothing to hold when nothing opened.
    let hold = if ramp.opened == 0 { Duration::ZERO } else { Duration::from_secs_f64(args.hold) };
    let hold_end = Instant::now() + hold;
    let status = ui.status();
    loop {
        let now = Instant::now();
        if now >= hold_end {
            break;
        }
        tokio::time::sleep_until((now + Duration::from_secs(1)).min(hold_end).into()).await;
        status.update(format!(
            "holding {} connections, {:.0} s left",
            shared.open.load(Ordering::Relaxed),
            hold_end.saturating_duration_since(Instant::now()).as_secs_f64()
        ));
    }
    status.finish();
    let still_open = shared.open.load(Ordering::Relaxed);
    let cpu = cpu_start.percent_until(&CpuMark::now());

    // Close everything (each connection is bounded by the drain timeout) and wait for it.
    let _ = stop_tx.send(true);
    let closing =
        tokio::time::timeout(drain + Duration::from_secs(2), async { while tasks.join_next().await.is_some() {} })
            .await;
    if closing.is_err() {
        tasks.abort_all();
    }

    let dropped = shared.dropped.load(Ordering::Relaxed);
    let setup = ramp.setup.summary();
    let ms = |us: f64| stats::round(us / 1000.0, 2);
    let mut human = format!(
        "idle {}: {} of {connections} connections opened ({} failed) in {:.2} s, held {:.1} s\n\
         \x20 dropped during the hold  {dropped}\n\
         \x20 open at the end          {still_open}\n\
         \x20 setup time               p50 {} ms  p99 {} ms  max {} ms (TCP + TLS + handshake)\n\
         \x20 client CPU               {cpu:.1}% of one core\n",
        args.url,
        ramp.opened,
        ramp.failed,
        ramp.elapsed.as_secs_f64(),
        args.hold,
        ms(setup.p50),
        ms(setup.p99),
        ms(setup.max),
    );
    if let Some(error) = &ramp.first_error {
        human.push_str(&format!("  first failure: {error}\n"));
    }
    if let Some(reason) = shared.first_drop.lock().expect("not poisoned").as_ref() {
        human.push_str(&format!("  first drop: {reason}\n"));
    }
    let json = json!({
        "mode": "idle",
        "url": args.url,
        "connections": connections,
        "connected": ramp.opened,
        "failed": ramp.failed,
        "dropped": dropped,
        "still_open": still_open,
        "hold_s": args.hold,
        "ramp_s": stats::round(ramp.elapsed.as_secs_f64(), 3),
        "setup_p50_ms": ms(setup.p50),
        "setup_p99_ms": ms(setup.p99),
        "setup_max_ms": ms(setup.max),
        "client_cpu_percent": cpu,
    });
    Ok(Outcome { human, json, connected: ramp.opened > 0 })
}

/// Holds one connection until `stop`, then closes it.
async fn hold<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    mut conn: Connection,
    mut rbuf: BytesMut,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
    drain: Duration,
) {
    let mut out = Output::default();
    let mut stopped = std::pin::pin!(async move {
        let _ = stop.wait_for(|stop| *stop).await;
    });
    let drop_reason = loop {
        out.take_from(&mut conn);
        match net::step(&mut io, &mut out, &mut rbuf, 1024, stopped.as_mut()).await {
            Step::Read => {}
            lost @ (Step::Eof | Step::Failed(_)) => break lost.loss(),
            Step::Woken => break None,
        }
        // Pongs are queued by the connection itself; messages are ignored.
        let reason = loop {
            match conn.receive(&mut rbuf) {
                Ok(Some(Event::Close(frame))) => {
                    break Some(match frame {
                        Some(frame) => format!("the server closed the connection with {}", frame.code.0),
                        None => "the server closed the connection".to_owned(),
                    })
                }
                Ok(Some(_)) => {}
                Ok(None) => break None,
                Err(error) => break Some(format!("protocol error: {error}")),
            }
        };
        if reason.is_some() {
            // Send the Close echo the connection queued, briefly.
            out.take_from(&mut conn);
            let _ = net::close(&mut io, &mut conn, &mut out, &mut rbuf, Instant::now() + Duration::from_secs(1)).await;
            break reason;
        }
    };
    shared.open.fetch_sub(1, Ordering::Relaxed);
    match drop_reason {
        Some(reason) => {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            shared.first_drop.lock().expect("not poisoned").get_or_insert(reason);
        }
        None => {
            let deadline = Instant::now() + drain;
            net::close(&mut io, &mut conn, &mut out, &mut rbuf, deadline).await;
        }
    }
}
