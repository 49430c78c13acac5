//! TEMPORARY: the i12-core API (docs: /work/notes/issue12-contracts.md) until it is merged.
#![allow(dead_code)]
use std::time::SystemTime;

use tether_tokio::Conn;

#[derive(Clone, Default)]
pub struct ServerStats;
impl ServerStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot::default()
    }
}
#[derive(Debug, Clone, Default)]
pub struct StatsSnapshot {
    pub routes: Vec<RouteStats>,
    pub handshake_rejections: Vec<(u16, u64)>,
    pub closes: Vec<(String, u64)>,
    pub slow_consumer_disconnects: u64,
}
#[derive(Debug, Clone, Default)]
pub struct RouteStats {
    pub path: String,
    pub open: u64,
    pub accepted: u64,
    pub text_received: u64,
    pub binary_received: u64,
    pub messages_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub queued_bytes: u64,
}
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCounts {
    pub text_received: u64,
    pub binary_received: u64,
    pub messages_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
}
impl ConnCounts {
    pub fn messages_received(&self) -> u64 {
        self.text_received + self.binary_received
    }
}
pub trait ConnShim {
    fn connected_at(&self) -> SystemTime;
    fn queued_bytes(&self) -> usize;
    fn counts(&self) -> ConnCounts;
}
impl ConnShim for Conn {
    fn connected_at(&self) -> SystemTime {
        SystemTime::now()
    }
    fn queued_bytes(&self) -> usize {
        0
    }
    fn counts(&self) -> ConnCounts {
        ConnCounts::default()
    }
}
pub fn channel_extra(_: &tether_hub::ChannelSummary) -> (u64, usize) {
    (0, 0)
}
pub fn hub_counts(stats: &tether_hub::HubStats) -> super::sampler::HubCounts {
    super::sampler::HubCounts { users: stats.users, channels: stats.channels, subscriptions: 0 }
}
