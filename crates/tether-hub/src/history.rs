//! Reading a channel's history from Rust: [`Hub::history`] and the [`HistoryPage`] it answers,
//! within `max_history_reply_bytes` (`channel::reply_budget`, shared with a subscribe's recovery).

use crate::channel::{self, reply_budget, Publication};
use crate::hub::Hub;

/// A `history` answer: the channel's last offset and epoch, and publications oldest first.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HistoryPage {
    /// The channel's last offset (0 when nothing was published).
    pub offset: u64,
    /// The channel's epoch.
    pub epoch: String,
    /// The publications, oldest first.
    pub publications: Vec<Publication>,
    /// Whether some that were asked for were left out to stay within
    /// [`crate::HubConfig::max_history_reply_bytes`].
    pub truncated: bool,
}

impl Hub {
    /// The channel's history: messages after `since` (all when `None`), at most the newest `limit`,
    /// and within [`crate::HubConfig::max_history_reply_bytes`]: with `since` the oldest that fit (page
    /// forward from the last offset returned), without it the newest. A channel that does not
    /// exist is not created: the answer is offset 0, no publications, and a fresh epoch (what the
    /// channel would have).
    ///
    /// On the Redis engine the history is Redis's (`Err(Unavailable)` while it cannot be reached).
    pub async fn history(
        &self,
        channel_name: &str,
        since: Option<u64>,
        limit: Option<usize>,
    ) -> Result<HistoryPage, crate::HubError> {
        #[cfg(feature = "redis")]
        if let Some(engine) = self.redis() {
            return self.redis_history(engine, channel_name, since, limit).await;
        }
        Ok(self.local_history(channel_name, since, limit))
    }

    fn local_history(&self, channel_name: &str, since: Option<u64>, limit: Option<usize>) -> HistoryPage {
        let config = &self.inner.config;
        let Some(handle) = self.existing_channel(channel_name) else {
            return HistoryPage { offset: 0, epoch: channel::new_epoch(), publications: Vec::new(), truncated: false };
        };
        let mut channel = handle.lock().expect("not poisoned");
        let freed = channel.prune(tokio::time::Instant::now());
        self.inner.release(freed);
        let len = channel.history_len();
        let start = since.and_then(|since| channel.start_after(since)).unwrap_or(0);
        let start = limit.map_or(start, |limit| start.max(len.saturating_sub(limit)));
        let (publications, truncated) = channel.select(start..len, reply_budget(config), since.is_some());
        let page =
            HistoryPage { offset: channel.last_offset(), epoch: channel.epoch().to_owned(), publications, truncated };
        let unused = channel.is_unused();
        drop(channel);
        if unused {
            // Its history just expired here, not in the sweeper: forget it here too.
            self.forget_if_unused(channel_name);
        }
        page
    }
}
