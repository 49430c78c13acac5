//! The encoded page, built at most once per time-to-live.
//!
//! A build reads every open connection under the server's registry lock and clones the hub's view
//! of each; anyone who can reach `/metrics` could otherwise make the server do that as fast as
//! they can send requests. Here a scrape gets the last page while it is younger than the TTL (the
//! bytes are shared, not copied), and builds a new one only after. Scrapes that arrive while a
//! page is being built wait for that build (an async lock, so they hold no worker thread) and then
//! take its page: however many ask at once, there is one build at a time and at most one per TTL.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Mutex;

/// What builds a page: the registry's encoder in the server, a counter in the tests.
type Build = Box<dyn Fn() -> Result<String, fmt::Error> + Send + Sync>;

/// The last page and when its build started.
pub(super) struct PageCache {
    build: Build,
    ttl: Duration,
    last: Mutex<Option<(Instant, Bytes)>>,
}

impl PageCache {
    pub(super) fn new(ttl: Duration, build: impl Fn() -> Result<String, fmt::Error> + Send + Sync + 'static) -> Self {
        Self { build: Box::new(build), ttl, last: Mutex::new(None) }
    }

    /// The page: the cached one if it was built less than the TTL ago, else a new one (a failed
    /// build is not cached, and the next scrape tries again).
    pub(super) async fn get(&self) -> Result<Bytes, fmt::Error> {
        let mut last = self.last.lock().await;
        if let Some((built, page)) = last.as_ref() {
            if built.elapsed() < self.ttl {
                return Ok(page.clone());
            }
        }
        // Stamped at the start: the page shows the state of this moment, and is served for the
        // TTL from it.
        let started = Instant::now();
        let page = Bytes::from((self.build)()?);
        *last = Some((started, page.clone()));
        Ok(page)
    }
}

impl fmt::Debug for PageCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageCache").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}
