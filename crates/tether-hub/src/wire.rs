//! The shapes of the token protocol's JSON (see `docs/protocol.md`).
//!
//! Incoming `data` and `info` stay raw JSON ([`RawValue`]): the server never needs to look inside
//! them, so it neither builds a tree for them nor prints them again.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A client request. Every field but `type` depends on the type.
#[derive(Debug, Deserialize)]
pub(crate) struct Request<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Option<Cow<'a, str>>,
    pub id: Option<u64>,
    #[serde(borrow)]
    pub channel: Option<Cow<'a, str>>,
    /// `Some` whenever the field is present, `null` included (`None` only when it is missing):
    /// `data` may be any JSON value.
    #[serde(borrow, default, deserialize_with = "present")]
    pub data: Option<&'a RawValue>,
    #[serde(borrow)]
    pub info: Option<&'a RawValue>,
    pub since: Option<u64>,
    #[serde(borrow)]
    pub epoch: Option<Cow<'a, str>>,
    pub limit: Option<usize>,
    #[serde(borrow)]
    pub to: Option<Cow<'a, str>>,
    /// A `refresh`'s connection token, or a `subscribe`'s subscription token.
    #[serde(borrow)]
    pub token: Option<Cow<'a, str>>,
}

/// Deserializes a field that is present as `Some`, even when it is `null` (serde's `Option` would
/// make that `None`, indistinguishable from a missing field); with `#[serde(default)]` a missing
/// field is still `None`.
fn present<'de: 'a, 'a, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<&'a RawValue>, D::Error> {
    <&'a RawValue>::deserialize(deserializer).map(Some)
}

/// Just the `id` of a request, for answering one that is refused before it is read in full.
#[derive(Debug, Deserialize)]
pub(crate) struct IdOnly {
    pub id: Option<u64>,
}

#[derive(Serialize)]
pub(crate) struct MessageOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub channel: &'a str,
    pub offset: u64,
    pub data: &'a RawValue,
    pub from: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct Presence<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub channel: &'a str,
    #[serde(rename = "connectionId")]
    pub connection_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<&'a RawValue>,
}

#[derive(Serialize)]
pub(crate) struct Direct<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub from: Option<&'a str>,
    pub data: &'a RawValue,
}

#[derive(Serialize)]
pub(crate) struct PublicationOut<'a> {
    pub offset: u64,
    pub data: &'a RawValue,
    pub from: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct MemberOut<'a> {
    #[serde(rename = "connectionId")]
    pub connection_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<&'a RawValue>,
}

#[derive(Serialize)]
pub(crate) struct ErrorOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub code: &'a str,
    pub message: &'a str,
}

/// An ack; only the fields a request type answers with are present.
#[derive(Serialize, Default)]
pub(crate) struct Ack<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// `Some(true)` when publications were left out to stay within the reply cap; else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publications: Option<Vec<PublicationOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberOut<'a>>>,
    /// A `refresh` ack: the new expiry in ms since the epoch (`Some(None)` is `null`: never).
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<u64>>,
    /// With `expires_at`: milliseconds left until then, by the server's clock.
    #[serde(rename = "expiresIn", skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<Option<u64>>,
}

impl Ack<'_> {
    pub fn new(id: u64) -> Self {
        Self { kind: "ack", id, ..Self::default() }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }
}

/// A server-side subscription, pushed to the connection it subscribed (`id` is not part of it:
/// nobody asked).
#[derive(Serialize)]
pub(crate) struct Subscribed<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<&'a str>,
}
