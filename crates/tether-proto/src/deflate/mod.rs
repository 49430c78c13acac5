//! permessage-deflate (RFC 7692): negotiation, the per-message codec, and per-connection contexts.
//!
//! - [`negotiation`]: the parameters, how a server picks an offer and answers it, how a client offers
//!   and checks the answer.
//! - [`codec`]: the [`Compressor`] and [`Decompressor`], with the `00 00 FF FF` tail handling of
//!   §7.2.1 and a hard bound on how far a message may inflate.
//! - `context`: what one connection remembers between messages (1 KiB of what it sent, the agreed window of what it received), and
//!   the per-thread pools that lend it zlib's state only while a message is being (de)compressed.

pub mod codec;
pub(crate) mod context;
pub mod negotiation;

pub use codec::{Compressor, CompressorSettings, Decompressor};
pub use negotiation::{DeflateConfig, DeflateParams};
