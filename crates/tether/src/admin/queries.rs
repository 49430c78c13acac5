//! What the dashboard's tables ask for (`POST /admin/api/*`): a page of connections or channels
//! matching a search, a channel's newest history, a publish, a disconnect. Searching and paging
//! happen here, on the server: with 10,000 connections the page gets one page of [`PAGE_SIZE`]
//! rows and the total, never the whole list.

use std::time::UNIX_EPOCH;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tether_hub::{validate_channel, Hub, HubError};
use tether_tokio::{CloseCode, Conn, Registry};

use super::paths::SOCKET_PATH;

/// Rows of one page.
pub const PAGE_SIZE: usize = 50;
/// The longest search text.
pub const MAX_SEARCH: usize = 256;
/// Entries of a history peek.
pub const PEEK: usize = 10;
/// The most of an entry's JSON a peek shows.
pub const PEEK_BYTES: usize = 4096;
/// The close code and reason of the Disconnect button (the server API's `disconnect` default
/// code, 4000, with the admin named as the one who closed it).
pub const DISCONNECT_CODE: u16 = 4000;
pub const DISCONNECT_REASON: &str = "disconnected by admin";

/// A refusal: its status and a sentence for the page (`{"error": "..."}`).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<HubError> for Refusal {
    fn from(error: HubError) -> Self {
        let status = match error {
            HubError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HubError::NotFound(_) => StatusCode::NOT_FOUND,
            HubError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error.to_string())
    }
}

/// A table request: the search text (empty: everything) and the page, from 1.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableQuery {
    pub search: String,
    pub page: Option<usize>,
}

impl TableQuery {
    /// The lower-cased search text, checked.
    fn needle(&self) -> Result<String, Refusal> {
        let search = self.search.trim();
        if search.chars().count() > MAX_SEARCH {
            return Err(Refusal::bad_request(format!("the search text is longer than {MAX_SEARCH} characters")));
        }
        Ok(search.to_lowercase())
    }
}

/// One page of a table.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// Rows matching the search, over all pages.
    pub total: usize,
    /// This page (from 1; past the last, the last) and how many there are (at least 1).
    pub page: usize,
    pub pages: usize,
    pub page_size: usize,
    pub rows: Vec<T>,
}

/// The page `wanted` (from 1) of `matching`: the rows are made for that page only.
fn page_of<S, T>(matching: Vec<S>, wanted: Option<usize>, row: impl Fn(&S) -> T) -> Page<T> {
    let total = matching.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = wanted.unwrap_or(1).clamp(1, pages);
    let rows = matching.iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE).map(row).collect();
    Page { total, page, pages, page_size: PAGE_SIZE, rows }
}

#[derive(Debug, Serialize)]
pub struct ConnectionRow {
    pub id: String,
    pub user: Option<String>,
    pub route: String,
    pub protocol: Option<String>,
    pub remote: String,
    /// Milliseconds since the Unix epoch.
    pub connected_at: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub queued_bytes: usize,
}

fn millis(time: std::time::SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// The open connections (the dashboard's own sockets left out) whose id, user, route or remote
/// address contains the search text, oldest first.
pub fn connections(registry: &Registry, query: &TableQuery) -> Result<Page<ConnectionRow>, Refusal> {
    let needle = query.needle()?;
    let mut matching: Vec<(u64, Conn)> = registry
        .connections()
        .into_iter()
        .filter(|conn| conn.path() != SOCKET_PATH)
        .filter(|conn| {
            needle.is_empty()
                || conn.id().to_lowercase().contains(&needle)
                || conn.user().is_some_and(|user| user.to_lowercase().contains(&needle))
                || conn.path().to_lowercase().contains(&needle)
                || conn.remote_addr().to_string().contains(&needle)
        })
        .map(|conn| (millis(conn.connected_at()), conn))
        .collect();
    matching.sort_by(|(a_at, a), (b_at, b)| a_at.cmp(b_at).then_with(|| a.id().cmp(b.id())));
    Ok(page_of(matching, query.page, |(connected_at, conn)| {
        let counts = conn.counts();
        ConnectionRow {
            id: conn.id().to_owned(),
            user: conn.user().map(str::to_owned),
            route: conn.path().to_owned(),
            protocol: conn.protocol().map(str::to_owned),
            remote: conn.remote_addr().to_string(),
            connected_at: *connected_at,
            messages_in: counts.messages_received(),
            messages_out: counts.messages_sent,
            queued_bytes: conn.queued_bytes(),
        }
    }))
}

#[derive(Debug, Serialize)]
pub struct ChannelRow {
    pub name: String,
    pub subscribers: usize,
    pub last_offset: u64,
    pub history_size: usize,
}

/// The hub's channels whose name contains the search text, by name.
pub fn channels(hub: &Hub, query: &TableQuery) -> Result<Page<ChannelRow>, Refusal> {
    let needle = query.needle()?;
    let mut matching = hub.channels(None);
    matching.retain(|channel| needle.is_empty() || channel.name.to_lowercase().contains(&needle));
    Ok(page_of(matching, query.page, |channel| ChannelRow {
        name: channel.name.clone(),
        subscribers: channel.subscribers,
        last_offset: channel.last_offset,
        history_size: channel.history_size,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelQuery {
    pub channel: String,
}

#[derive(Debug, Serialize)]
pub struct Peek {
    pub channel: String,
    pub offset: u64,
    pub epoch: String,
    /// The newest entries, newest first.
    pub entries: Vec<PeekEntry>,
}

#[derive(Debug, Serialize)]
pub struct PeekEntry {
    pub offset: u64,
    pub from: Option<String>,
    /// The entry's JSON as text, at most [`PEEK_BYTES`] of it.
    pub data: String,
    pub truncated: bool,
}

/// The channel's newest [`PEEK`] history entries.
pub async fn history(hub: &Hub, query: &ChannelQuery) -> Result<Peek, Refusal> {
    validate_channel(&query.channel)?;
    let page = hub.history(&query.channel, None, Some(PEEK)).await?;
    let entries = page
        .publications
        .iter()
        .rev()
        .map(|publication| {
            let json = publication.data.get();
            let cut = (0..=PEEK_BYTES.min(json.len())).rev().find(|at| json.is_char_boundary(*at)).unwrap_or(0);
            PeekEntry {
                offset: publication.offset,
                from: publication.from.clone(),
                data: json[..cut].to_owned(),
                truncated: cut < json.len(),
            }
        })
        .collect();
    Ok(Peek { channel: query.channel.clone(), offset: page.offset, epoch: page.epoch, entries })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishQuery {
    pub channel: String,
    /// What the Publish box holds.
    pub data: String,
    /// Send it as a JSON string; otherwise it must be JSON.
    #[serde(default)]
    pub text: bool,
}

#[derive(Debug, Serialize)]
pub struct Published {
    pub offset: u64,
    pub epoch: String,
}

/// Publishes the box's content to the channel, as the server (no namespace policy applies; the
/// hub's limits do).
pub async fn publish(hub: &Hub, query: &PublishQuery) -> Result<Published, Refusal> {
    let data: Box<RawValue> = if query.text {
        serde_json::value::to_raw_value(&query.data).map_err(|error| Refusal::bad_request(error.to_string()))?
    } else {
        serde_json::from_str(&query.data).map_err(|error| {
            Refusal::bad_request(format!("not JSON ({error}); tick \"send as text\" to send it as a string"))
        })?
    };
    let published = hub.publish_json(&query.channel, &data).await?;
    Ok(Published { offset: published.offset, epoch: published.epoch })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectQuery {
    pub id: String,
}

#[derive(Debug, Serialize)]
pub struct Disconnected {
    pub code: u16,
}

/// Closes the connection with [`DISCONNECT_CODE`]; 404 when it is not open (or is closing).
pub fn disconnect(registry: &Registry, query: &DisconnectQuery) -> Result<Disconnected, Refusal> {
    let gone = || Refusal::new(StatusCode::NOT_FOUND, format!("no open connection {:?}", query.id));
    let conn = registry.get(&query.id).filter(|conn| conn.path() != SOCKET_PATH).ok_or_else(gone)?;
    conn.close(CloseCode::from(DISCONNECT_CODE), DISCONNECT_REASON).map_err(|_| gone())?;
    tracing::info!(id = %conn.id(), route = %conn.path(), "disconnected by admin");
    Ok(Disconnected { code: DISCONNECT_CODE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_hold_at_most_page_size_rows_and_clamp() {
        let rows: Vec<usize> = (0..120).collect();
        let page = page_of(rows.clone(), None, |n| *n);
        assert_eq!((page.total, page.page, page.pages, page.rows.len()), (120, 1, 3, 50));
        let last = page_of(rows.clone(), Some(3), |n| *n);
        assert_eq!(last.rows, (100..120).collect::<Vec<_>>());
        assert_eq!(page_of(rows, Some(99), |n| *n).page, 3, "past the last: the last");
        let empty = page_of(Vec::<usize>::new(), Some(0), |n| *n);
        assert_eq!((empty.total, empty.page, empty.pages), (0, 1, 1));
    }

    #[test]
    fn searches_are_bounded() {
        let long = TableQuery { search: "x".repeat(MAX_SEARCH + 1), page: None };
        assert_eq!(long.needle().unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(TableQuery { search: "  AbC ".into(), page: None }.needle().unwrap(), "abc");
    }

    #[tokio::test]
    async fn publish_takes_json_or_text() {
        let hub = Hub::new(tether_hub::HubConfig::default(), Registry::default());
        let json = PublishQuery { channel: "news".into(), data: r#"{"a":1}"#.into(), text: false };
        assert_eq!(publish(&hub, &json).await.unwrap().offset, 1);
        let text = PublishQuery { channel: "news".into(), data: "hello".into(), text: true };
        assert_eq!(publish(&hub, &text).await.unwrap().offset, 2);
        let bad = PublishQuery { channel: "news".into(), data: "hello".into(), text: false };
        assert_eq!(publish(&hub, &bad).await.unwrap_err().status, StatusCode::BAD_REQUEST);
        let peek = history(&hub, &ChannelQuery { channel: "news".into() }).await.unwrap();
        let shown: Vec<&str> = peek.entries.iter().map(|entry| entry.data.as_str()).collect();
        assert_eq!(shown, [r#""hello""#, r#"{"a":1}"#], "newest first");
        let bad_name = ChannelQuery { channel: "no spaces".into() };
        assert_eq!(history(&hub, &bad_name).await.unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
