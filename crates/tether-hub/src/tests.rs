//! Unit tests of the hub's memory bounds: the sweeper (on tokio's paused clock), the channel cap,
//! the global history byte budget and its ledger, and the reply cap of `history`.

use std::time::Duration;

use serde_json::json;
use tether_tokio::Registry;

use crate::channel::entry_cost;
use crate::config::HubConfig;
use crate::error::HubError;
use crate::hub::Hub;

fn cost_of(data: &serde_json::Value) -> usize {
    entry_cost(&serde_json::value::to_raw_value(data).unwrap(), None)
}

fn offsets(hub: &Hub, channel: &str, since: Option<u64>) -> Vec<u64> {
    ready(hub.history(channel, since, None)).unwrap().publications.iter().map(|p| p.offset).collect()
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_drops_expired_history_and_forgets_unused_channels() {
    let config = HubConfig {
        history_ttl: Duration::from_secs(10),
        sweep_interval: Duration::from_secs(1),
        ..HubConfig::default()
    };
    let hub = Hub::new(config, Registry::default());
    for i in 0..3 {
        ready(hub.publish(&format!("c{i}"), &"x".repeat(100))).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    ready(hub.publish("late", &1)).unwrap();
    assert_eq!(
        (hub.channel_count(), hub.history_bytes()),
        (4, 3 * cost_of(&json!("x".repeat(100))) + cost_of(&json!(1)))
    );

    // Nobody touches c0..c2 again; the sweeper alone gives their memory back.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    assert_eq!((hub.channel_count(), hub.history_bytes()), (1, cost_of(&json!(1))), "only `late` is left");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!((hub.channel_count(), hub.history_bytes()), (0, 0));
    assert_eq!(hub.inner.ledger.len(), 0, "the sweep took the expired entries off the ledger");
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_ends_with_its_hub() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let hub = Hub::new(HubConfig::default(), Registry::default());
    ready(hub.publish("a", &1)).unwrap();
    assert_eq!(metrics.num_alive_tasks(), before + 1, "the first use started the sweeper");
    ready(hub.publish("b", &1)).unwrap();
    assert_eq!(metrics.num_alive_tasks(), before + 1, "one sweeper per hub");
    drop(hub);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(metrics.num_alive_tasks(), before, "it holds the hub weakly and stops");
}

#[test]
fn a_hub_works_outside_a_runtime_and_can_be_swept_by_hand() {
    let hub =
        Hub::new(HubConfig { history_ttl: Duration::from_millis(1), ..HubConfig::default() }, Registry::default());
    assert_eq!(ready(hub.publish("a", &1)), Ok(1));
    assert_eq!(hub.channel_count(), 1);
    std::thread::sleep(Duration::from_millis(5));
    hub.sweep();
    assert_eq!((hub.channel_count(), hub.history_bytes()), (0, 0), "expired, then no subscribers: forgotten");
    assert!(!hub.inner.sweeping.load(std::sync::atomic::Ordering::Relaxed), "no runtime, no sweeper task");
}

/// The sweep only looks at expired history, so every other way of leaving a channel unused must
/// forget it on the spot.
#[test]
fn a_channel_left_unused_without_expiring_is_forgotten_at_once() {
    let hub = Hub::new(HubConfig { history_size: 0, ..HubConfig::default() }, Registry::default());
    ready(hub.publish("no.history", &1)).unwrap();
    assert_eq!(hub.channel_count(), 0, "a publish without history and without subscribers");

    let hub =
        Hub::new(HubConfig { history_ttl: Duration::from_millis(1), ..HubConfig::default() }, Registry::default());
    ready(hub.publish("read", &1)).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert!(ready(hub.history("read", None, None)).unwrap().publications.is_empty());
    assert_eq!((hub.channel_count(), hub.history_bytes()), (0, 0), "a read that pruned the last entry");
}

#[test]
fn channels_beyond_the_cap_are_refused_and_reads_create_none() {
    let hub = Hub::new(HubConfig { max_channels: 2, ..HubConfig::default() }, Registry::default());
    ready(hub.publish("a", &1)).unwrap();
    ready(hub.publish("b", &1)).unwrap();
    let refused = ready(hub.publish("c", &1)).unwrap_err();
    assert_eq!((refused.clone(), refused.code()), (HubError::TooManyChannels(2), "limit_exceeded"));
    assert_eq!(ready(hub.publish("a", &2)), Ok(2), "existing channels go on");
    let page = ready(hub.history("unknown", None, None)).unwrap();
    assert_eq!((page.offset, page.publications.len(), page.truncated), (0, 0, false));
    assert!(ready(hub.presence("unknown")).unwrap().is_empty());
    assert_eq!(hub.channel_count(), 2);
}

#[test]
fn the_history_byte_budget_drops_the_oldest_entries_of_any_channel() {
    let each = cost_of(&json!("x".repeat(1000)));
    let hub = Hub::new(HubConfig { max_history_bytes: 3 * each, ..HubConfig::default() }, Registry::default());
    let big = json!("x".repeat(1000));
    for channel in ["a", "b", "a", "c", "b"] {
        ready(hub.publish(channel, &big)).unwrap();
    }
    assert_eq!(hub.history_bytes(), 3 * each);
    // Published a1 b1 a2 c1 b2: a1 and b1 (the two oldest) went, wherever they were.
    assert_eq!(
        (offsets(&hub, "a", None), offsets(&hub, "b", None), offsets(&hub, "c", None)),
        (vec![2], vec![2], vec![1])
    );
    ready(hub.publish("d", &big)).unwrap();
    assert_eq!(offsets(&hub, "a", None), Vec::<u64>::new(), "a2 was the oldest");
    assert_eq!(hub.channel_count(), 3, "a, emptied by the budget, is forgotten at once");
}

#[test]
fn the_ledger_stays_near_the_live_history_when_channels_drop_entries_themselves() {
    let hub = Hub::new(HubConfig { history_size: 10, ..HubConfig::default() }, Registry::default());
    for i in 0..5000 {
        ready(hub.publish("hot", &i)).unwrap();
    }
    assert_eq!(hub.inner.history_entries.load(std::sync::atomic::Ordering::Relaxed), 10);
    assert!(hub.inner.ledger.len() <= 2 * 10 + 1024 + 1, "{}", hub.inner.ledger.len());
    assert_eq!(hub.history_bytes(), (4990..5000).map(|i| cost_of(&json!(i))).sum::<usize>());
}

#[test]
fn a_history_answer_keeps_the_newest_without_since_and_the_oldest_with_it() {
    let data = json!("x".repeat(1000));
    let reply_cost = 1002 + 4 + 50; // data, "from":null, the fields
    let config = HubConfig { max_history_reply_bytes: 320 + 3 * reply_cost, ..HubConfig::default() }; // 320: the envelope
    let hub = Hub::new(config, Registry::default());
    for _ in 0..10 {
        ready(hub.publish("h", &data)).unwrap();
    }
    let page = ready(hub.history("h", None, None)).unwrap();
    assert_eq!(
        (page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), page.truncated),
        (vec![8, 9, 10], true)
    );
    let page = ready(hub.history("h", Some(0), None)).unwrap();
    assert_eq!((page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), page.truncated), (vec![1, 2, 3], true));
    let page = ready(hub.history("h", Some(7), None)).unwrap();
    assert_eq!(
        (page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), page.truncated),
        (vec![8, 9, 10], false)
    );
    let page = ready(hub.history("h", Some(0), Some(2))).unwrap();
    assert_eq!((page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), page.truncated), (vec![9, 10], false));
}

#[test]
fn a_publication_larger_than_the_reply_cap_is_still_returned_alone() {
    let hub = Hub::new(HubConfig { max_history_reply_bytes: 100, ..HubConfig::default() }, Registry::default());
    ready(hub.publish("h", &"x".repeat(1000))).unwrap();
    ready(hub.publish("h", &"x".repeat(1000))).unwrap();
    let page = ready(hub.history("h", Some(0), None)).unwrap();
    assert_eq!((page.publications.len(), page.publications[0].offset, page.truncated), (1, 1, true), "paging goes on");
}

#[test]
fn concurrent_publishers_keep_the_byte_count_exact_and_within_the_budget() {
    let each = cost_of(&json!(7));
    let hub = Hub::new(
        HubConfig { history_size: 3, max_history_bytes: 40 * each, ..HubConfig::default() },
        Registry::default(),
    );
    std::thread::scope(|scope| {
        for t in 0..4 {
            let hub = hub.clone();
            scope.spawn(move || {
                for i in 0..3000 {
                    ready(hub.publish(&format!("t{t}.{}", i % 50), &7)).unwrap();
                }
            });
        }
    });
    let held: usize = (0..4)
        .flat_map(|t| (0..50).map(move |c| format!("t{t}.{c}")))
        .map(|name| ready(hub.history(&name, None, None)).unwrap().publications.len())
        .sum();
    assert!(held <= 40, "{held}");
    assert_eq!(hub.history_bytes(), held * each, "the counter is what the channels hold");
}

#[test]
fn epochs_are_eight_url_safe_characters_and_differ() {
    let (a, b) = (
        crate::channel::Channel::new("a", &HubConfig::default()),
        crate::channel::Channel::new("a", &HubConfig::default()),
    );
    assert_eq!(a.epoch().len(), 8);
    assert!(a.epoch().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{}", a.epoch());
    assert_ne!(a.epoch(), b.epoch(), "48 random bits each");
}

/// The value of a hub call that cannot wait: the memory engine never does, so its async methods
/// run to the end at the first poll, with or without a runtime.
fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("the memory engine never waits"),
    }
}
