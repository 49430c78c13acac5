//! permessage-deflate (RFC 7692): negotiation and the per-message codec.
//!
//! - [`negotiation`]: the parameters, how a server picks an offer and answers it, how a client offers
//!   and checks the answer.
//! - [`codec`]: the [`Compressor`] and [`Decompressor`] one connection uses, with the
//!   `00 00 FF FF` tail handling of §7.2.1 and a hard bound on how far a message may inflate.

pub mod codec;
pub mod negotiation;

pub use codec::{Compressor, Decompressor};
pub use negotiation::{DeflateConfig, DeflateParams};
