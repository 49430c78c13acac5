//! The publishers of a fan-out: together they publish `--rate` messages a second, evenly spaced
//! over the publishers ([`Plan`]), each message carrying its send time, and count the acks and the
//! error answers (`rate_limited` among them).

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tether_proto::Connection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;

use super::shared::{each_text, Reply, Shared};
use crate::bench::common::Common;
use crate::bench::net::{self, Opened, Output, Step, Stream, Target};
use crate::bench::progress::Ui;

#[derive(Debug, Default)]
pub(super) struct PubStats {
    pub sent: u64,
    pub acked: u64,
    pub rate_limited: u64,
    pub other_errors: u64,
    pub first_error: Option<String>,
    pub failure: Option<String>,
}

/// What all publishers did, added up.
#[derive(Debug, Default)]
pub(super) struct Published {
    pub totals: PubStats,
    /// Publishers that failed or did not finish in time.
    pub failures: u64,
}

impl Published {
    /// Publishes sent that got neither an ack nor an error.
    pub(super) fn unanswered(&self) -> u64 {
        let t = &self.totals;
        t.sent.saturating_sub(t.acked + t.rate_limited + t.other_errors)
    }
}

/// Opens `count` publisher connections, numbered after the `first` subscribers (the number picks
/// the source address). Fails when none opens.
pub(super) async fn open(
    target: &Arc<Target>,
    count: usize,
    first: usize,
    common: &Common,
    ui: &Ui,
    url: &str,
) -> Result<Vec<Opened>, String> {
    let mut opened = Vec::new();
    let ramp = net::open_many(target, count, first, common.ramp as usize, ui, "publishers", |_, connection| {
        opened.push(connection);
    })
    .await;
    if opened.is_empty() {
        let why = ramp.first_error.unwrap_or_default();
        return Err(format!("no publisher could connect to {url}: {why}"));
    }
    Ok(opened)
}

/// Starts one task per publisher; they wait for the plan's start.
pub(super) fn start(opened: Vec<Opened>, plan: &Arc<Plan>) -> JoinSet<PubStats> {
    let mut tasks = JoinSet::new();
    for (index, connection) in opened.into_iter().enumerate() {
        let plan = Arc::clone(plan);
        let Opened { stream, conn, leftover, .. } = connection;
        match stream {
            Stream::Plain(io) => tasks.spawn(publish(io, conn, leftover, plan, index as u64)),
            Stream::Tls(io) => tasks.spawn(publish(*io, conn, leftover, plan, index as u64)),
        };
    }
    tasks
}

/// Collects what the publishers did, waiting at most until `deadline`; the ones not done by then
/// are stopped and count as failed.
pub(super) async fn collect(mut tasks: JoinSet<PubStats>, deadline: Instant) -> Published {
    let mut published = Published::default();
    let joined = tokio::time::timeout_at(deadline.into(), async {
        while let Some(result) = tasks.join_next().await {
            let stats = result.unwrap_or_else(|e| PubStats { failure: Some(e.to_string()), ..PubStats::default() });
            let totals = &mut published.totals;
            totals.sent += stats.sent;
            totals.acked += stats.acked;
            totals.rate_limited += stats.rate_limited;
            totals.other_errors += stats.other_errors;
            if stats.first_error.is_some() && totals.first_error.is_none() {
                totals.first_error = stats.first_error;
            }
            if let Some(failure) = stats.failure {
                published.failures += 1;
                totals.failure.get_or_insert(failure);
            }
        }
    })
    .await;
    if joined.is_err() {
        tasks.abort_all();
        published.failures += tasks.len() as u64;
    }
    published
}

/// What every publisher shares.
pub(super) struct Plan {
    pub shared: Arc<Shared>,
    /// The channel name as a JSON string.
    pub channel: String,
    pub pad: String,
    pub rate: f64,
    /// Messages to publish, all publishers together.
    pub total: u64,
    pub publishers: u64,
    pub start: Instant,
    pub give_up: Instant,
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
        let read = each_text(&mut conn, &mut rbuf, |reply| {
            let Ok(reply) = serde_json::from_str::<Reply<'_>>(reply) else { return ControlFlow::<()>::Continue(()) };
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
            ControlFlow::Continue(())
        });
        if let Err(failure) = read {
            stats.failure = Some(failure);
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
    fn the_plan_spreads_messages_evenly() {
        let shared = Arc::new(Shared::new(1, 1));
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
