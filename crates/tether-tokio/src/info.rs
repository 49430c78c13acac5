//! What a connection is, fixed at its handshake: [`ConnInfo`] (id, peer, sub-protocol, path,
//! query, headers, identity), with the headers packed by [`CompactHeaders`] and the id in a
//! [`ConnId`]. Kept small on purpose: every open connection holds one (see
//! `docs/memory-per-connection.md`, rule 6).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tether_proto::handshake::head::Headers;

use crate::identity::Identity;

/// Facts about a connection, fixed at the handshake.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub id: ConnId,
    pub remote_addr: SocketAddr,
    pub protocol: Option<String>,
    /// Shared by every connection of a server route (the route's own path).
    pub path: Arc<str>,
    pub query: Option<String>,
    pub headers: CompactHeaders,
    /// What the route's authorize hook said of the user; `None` without a hook, or anonymous.
    pub identity: Option<Box<Identity>>,
}

/// Request headers in one allocation: `name NUL value NUL` pairs. A connection keeps its
/// handshake headers for its whole life, and a `Vec` of owned strings costs several times the
/// bytes it holds.
#[derive(Debug, Default)]
pub(crate) struct CompactHeaders(Box<[u8]>);

impl CompactHeaders {
    /// The headers an application may want later (cookies, authorization, user agent...), without
    /// those that only served the handshake itself.
    pub(crate) fn for_application(headers: &Headers) -> Self {
        const HANDSHAKE_ONLY: [&str; 5] =
            ["upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"];
        let kept: Vec<_> = headers
            .0
            .iter()
            .filter(|h| !HANDSHAKE_ONLY.iter().any(|name| h.name.eq_ignore_ascii_case(name)))
            .cloned()
            .collect();
        Self::from(&Headers(kept))
    }
}

impl From<&Headers> for CompactHeaders {
    fn from(headers: &Headers) -> Self {
        let mut packed = Vec::with_capacity(headers.0.iter().map(|h| h.name.len() + h.value.len() + 2).sum());
        for header in &headers.0 {
            packed.extend_from_slice(header.name.as_bytes());
            packed.push(0);
            packed.extend_from_slice(&header.value);
            packed.push(0);
        }
        Self(packed.into_boxed_slice())
    }
}

impl CompactHeaders {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut parts = self.0.split(|&b| b == 0);
        std::iter::from_fn(move || {
            let name = parts.next().filter(|n| !n.is_empty())?;
            let value = parts.next()?;
            // Names came from httparse, which only accepts token characters.
            Some((std::str::from_utf8(name).unwrap_or_default(), value))
        })
    }
}

/// A connection id: 96 random bits in URL-safe base64, 16 characters kept inline, so neither the
/// connection nor the server's registry of connections allocates for it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnId([u8; 16]);

impl ConnId {
    /// A fresh random id.
    pub(crate) fn new() -> Self {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut random = [0u8; 12];
        getrandom::fill(&mut random).expect("the operating system's random source works");
        let mut id = [0u8; 16];
        for (chunk, out) in random.chunks(3).zip(id.chunks_mut(4)) {
            let n = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
            for (slot, shift) in out.iter_mut().zip([18, 12, 6, 0]) {
                *slot = ALPHABET[(n >> shift & 63) as usize];
            }
        }
        Self(id)
    }

    /// The id of this text, if it has an id's length (any such text may name a connection; a
    /// lookup decides whether one has that id).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        <[u8; 16]>::try_from(text.as_bytes()).ok().map(Self)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Made from ASCII, or from the bytes of a `str` of exactly this length.
        std::str::from_utf8(&self.0).expect("an id is UTF-8")
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
