//! The node's publisher: clients' publishes go to Redis in the order they were made, several
//! in flight at once on the command connection (pipelined), each answered when its script
//! returns. Awaiting each publish in its connection's task made one connection wait a whole round
//! trip per publish, and on a node busy delivering to its own subscribers that round trip waits
//! behind the deliveries' tasks: about 90 publishes/s from one connection with 1,000 local
//! subscribers (docs/benchmarks.md).
//!
//! Order: a publish's script is handed to the connection at its first poll, which happens here,
//! one job after the other; the connection sends them in that order and Redis runs them in that
//! order, so one client's publishes keep their order in the channel.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::task::Poll;

use futures_util::stream::{FuturesOrdered, StreamExt};
use serde_json::value::RawValue;

use super::engine::RedisEngine;
use super::writes::{PublishDone, PublishJob};
use crate::hub::{Hub, HubInner};

/// Publishes in flight at most; more wait in the queue.
const IN_FLIGHT: usize = 1024;

impl Hub {
    /// Queues a client's publish for the publisher; a full queue is answered at once.
    pub(crate) fn redis_publish_queued(
        &self,
        engine: &RedisEngine,
        channel: &str,
        data: &RawValue,
        from: Option<&str>,
        done: PublishDone,
    ) {
        let job =
            PublishJob { channel: channel.to_owned(), data: data.to_owned(), from: from.map(str::to_owned), done };
        if let Err(refused) = engine.publishes.0.try_send(job) {
            let job = refused.into_inner();
            (job.done)(Err(engine.failed("publish", "too many publishes waiting", false)));
        }
    }
}

/// Runs the publishes for as long as the hub lives.
pub(crate) async fn run(
    engine: Arc<RedisEngine>,
    hub: Weak<HubInner>,
    mut jobs: tokio::sync::mpsc::Receiver<PublishJob>,
) {
    let mut in_flight = FuturesOrdered::new();
    loop {
        tokio::select! {
            job = jobs.recv(), if in_flight.len() < IN_FLIGHT => {
                let Some(job) = job else { break };
                let Some(inner) = hub.upgrade() else { break };
                let hub = Hub { inner };
                let engine = Arc::clone(&engine);
                let mut publish = Box::pin(async move {
                    let result = hub.redis_publish(&engine, &job.channel, &job.data, job.from.as_deref()).await;
                    if result.is_ok() {
                        hub.inner.publications.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    (job.done)(result.map(|(offset, _)| offset));
                });
                // The first poll hands the script to the connection: now, in the jobs' order.
                let first = std::future::poll_fn(|cx| Poll::Ready(publish.as_mut().poll(cx))).await;
                if first.is_pending() {
                    in_flight.push_back(publish);
                }
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
        }
    }
}
