//! Negotiating permessage-deflate parameters (RFC 7692 §5 and §7.1).

use std::collections::HashSet;

use crate::handshake::extensions::ExtensionOffer;

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// How this endpoint wants to use permessage-deflate. One struct serves both roles: "own" settings
/// are about what we send, "peer" settings are what we ask of the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// zlib compression level, 0-9. Default 1: most of the size win for a fraction of the CPU, since
    /// a server compresses every message it sends.
    pub level: u32,
    /// Reset our compressor after every message, so no compression context is kept between messages
    /// (less memory per connection, worse ratio). Default false.
    pub no_context_takeover: bool,
    /// The largest LZ77 window (in bits, 9-15) we compress with. Default 12 (4 KiB), which a
    /// connection with context takeover keeps a copy of: most of the ratio of 15 bits on chat-sized
    /// JSON for an eighth of the memory (docs/limits.md has the measurements). A peer can ask for
    /// less; a peer that asks for 8 bits gets uncompressed messages, because zlib cannot make raw
    /// deflate streams with a 256-byte window.
    pub max_window_bits: u8,
    /// zlib's memLevel (1-9) for our compressor: its block buffer is `7 << (mem_level + 6)` bytes.
    /// Compressors are per thread, not per connection, so this costs memory once a thread.
    /// Default 5 ([`DEFAULT_MEM_LEVEL`]).
    pub mem_level: u8,
    /// Ask the peer to reset its compressor after every message. Default false.
    pub request_peer_no_context_takeover: bool,
    /// Ask the peer to compress with at most this window (8-15 bits), which bounds the copy of the
    /// peer's window a connection keeps with context takeover. A server asks only peers that offer
    /// `client_max_window_bits`; a client's offer always carries it. Default `None` (no request);
    /// a server's default is [`DEFAULT_WINDOW_BITS`] (see [`DeflateConfig::server`]).
    pub request_peer_max_window_bits: Option<u8>,
    /// Messages shorter than this are sent uncompressed (RFC 7692 lets each message choose). Default 0.
    pub min_message_size: usize,
}

/// The window a server compresses with, and asks its clients to compress with, unless told
/// otherwise.
pub const DEFAULT_WINDOW_BITS: u8 = 12;

/// The memLevel of our compressors: on chat and feed JSON it compresses exactly as well as
/// zlib's default 8 (docs/limits.md, "Compression"), a little faster, and its block buffer is
/// 14 KiB instead of 112 KiB per pooled compressor.
pub const DEFAULT_MEM_LEVEL: u8 = 5;

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            level: 1,
            no_context_takeover: false,
            max_window_bits: DEFAULT_WINDOW_BITS,
            mem_level: DEFAULT_MEM_LEVEL,
            request_peer_no_context_takeover: false,
            request_peer_max_window_bits: None,
            min_message_size: 0,
        }
    }
}

impl DeflateConfig {
    /// The settings our compressor uses when nothing smaller was agreed: those of a broadcast's
    /// shared compressed copy.
    pub fn shared_settings(&self) -> crate::deflate::CompressorSettings {
        crate::deflate::CompressorSettings::new(self.level, self.max_window_bits, self.mem_level)
    }

    /// A server's defaults: [`DeflateConfig::default`], and clients that can limit their window
    /// are asked to use [`DEFAULT_WINDOW_BITS`] too (browsers and most libraries can).
    pub fn server() -> Self {
        Self { request_peer_max_window_bits: Some(DEFAULT_WINDOW_BITS), ..Self::default() }
    }
}

/// The parameters both sides agreed on, in the RFC's terms (server = the side that accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server compresses with at most this window.
    pub server_max_window_bits: u8,
    /// The client compresses with at most this window.
    pub client_max_window_bits: u8,
}

/// The parameters of one offer or response, parsed and checked for duplicates and bad values.
#[derive(Debug, Default)]
struct ParsedParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in offers only).
    client_max_window_bits: Option<Option<u8>>,
}

fn parse_window_bits(value: Option<&str>) -> Option<u8> {
    let value = value?;
    // RFC 7692 §7.1.2: 1*DIGIT without leading zeroes, 8 to 15.
    if value.is_empty() || value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u8>().ok().filter(|bits| (8..=15).contains(bits))
}

/// Parses the parameters of a permessage-deflate element. `None` when the element must be declined
/// (offer) or rejected (response): an unknown parameter, a duplicate, or a bad value.
fn parse_params(offer: &ExtensionOffer, is_offer: bool) -> Option<ParsedParams> {
    let mut seen = HashSet::new();
    let mut parsed = ParsedParams::default();
    for (name, value) in &offer.params {
        if !seen.insert(name.as_str()) {
            return None;
        }
        match name.as_str() {
            "server_no_context_takeover" if value.is_none() => parsed.server_no_context_takeover = true,
            "client_no_context_takeover" if value.is_none() => parsed.client_no_context_takeover = true,
            "server_max_window_bits" => parsed.server_max_window_bits = Some(parse_window_bits(value.as_deref())?),
            "client_max_window_bits" => {
                parsed.client_max_window_bits = match value {
                    None if is_offer => Some(None),
                    None => return None,
                    Some(_) => Some(Some(parse_window_bits(value.as_deref())?)),
                }
            }
            _ => return None,
        }
    }
    Some(parsed)
}

/// Server side: picks the first acceptable permessage-deflate offer, in the client's order.
///
/// Returns the agreed parameters and the `Sec-WebSocket-Extensions` element to answer with, or
/// `None` when no offer can be accepted (the connection then goes on without compression).
pub fn accept_offer(config: &DeflateConfig, offers: &[ExtensionOffer]) -> Option<(DeflateParams, String)> {
    offers.iter().filter(|offer| offer.name.eq_ignore_ascii_case(EXTENSION_NAME)).find_map(|offer| {
        let offered = parse_params(offer, true)?;
        let server_bits = offered.server_max_window_bits.unwrap_or(15).min(config.max_window_bits);
        let server_no_context_takeover = offered.server_no_context_takeover || config.no_context_takeover;
        let client_no_context_takeover = offered.client_no_context_takeover || config.request_peer_no_context_takeover;
        // We may only ask the client to limit its window if it said it can (client_max_window_bits
        // in the offer). A value in the offer binds the client only once our answer repeats it
        // (RFC 7692 §7.1.2.2: without it in the answer the client may use 32 KiB), so we repeat
        // it: the window a connection keeps of what it received is then the one agreed.
        let client_bits_answer = match offered.client_max_window_bits {
            Some(limit) => match config.request_peer_max_window_bits {
                Some(ours) => Some(ours.min(limit.unwrap_or(15))),
                None => limit,
            },
            None => None,
        };
        let client_bits = client_bits_answer.unwrap_or(15);

        let mut response = String::from(EXTENSION_NAME);
        if server_no_context_takeover {
            response.push_str("; server_no_context_takeover");
        }
        if client_no_context_takeover {
            response.push_str("; client_no_context_takeover");
        }
        if offered.server_max_window_bits.is_some() || server_bits < 15 {
            response.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if let Some(bits) = client_bits_answer {
            response.push_str(&format!("; client_max_window_bits={bits}"));
        }
        let params = DeflateParams {
            server_no_context_takeover,
            client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        };
        Some((params, response))
    })
}

/// Client side: the offer to put in `Sec-WebSocket-Extensions`.
pub fn client_offer(config: &DeflateConfig) -> String {
    let mut offer = String::from(EXTENSION_NAME);
    if config.max_window_bits < 15 {
        offer.push_str(&format!("; client_max_window_bits={}", config.max_window_bits));
    } else {
        offer.push_str("; client_max_window_bits");
    }
    if config.no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if config.request_peer_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if let Some(bits) = config.request_peer_max_window_bits {
        offer.push_str(&format!("; server_max_window_bits={bits}"));
    }
    offer
}

/// Client side: checks the server's answer to [`client_offer`].
///
/// `Err` with a reason when the answer is one the client must fail the connection for (RFC 7692
/// §5.1 and §7.1): an unknown or duplicated parameter, a bad value, or a window larger than asked.
pub fn accept_response(config: &DeflateConfig, response: &ExtensionOffer) -> Result<DeflateParams, &'static str> {
    let answered = parse_params(response, false).ok_or("invalid permessage-deflate parameters in the response")?;
    let server_bits = answered.server_max_window_bits.unwrap_or(15);
    if let Some(requested) = config.request_peer_max_window_bits {
        if server_bits > requested {
            return Err("server_max_window_bits larger than requested");
        }
    }
    let client_bits = answered.client_max_window_bits.flatten().unwrap_or(15).min(config.max_window_bits);
    Ok(DeflateParams {
        server_no_context_takeover: answered.server_no_context_takeover,
        client_no_context_takeover: answered.client_no_context_takeover || config.no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::extensions::parse_extensions;

    fn offers(header: &str) -> Vec<ExtensionOffer> {
        parse_extensions([header.as_bytes()]).unwrap()
    }

    #[test]
    fn accepts_a_plain_offer() {
        let (params, response) = accept_offer(&DeflateConfig::default(), &offers("permessage-deflate")).unwrap();
        assert_eq!(response, "permessage-deflate; server_max_window_bits=12");
        assert_eq!((params.server_max_window_bits, params.client_max_window_bits), (12, 15));
        assert!(!params.server_no_context_takeover);
        let fifteen = DeflateConfig { max_window_bits: 15, ..DeflateConfig::default() };
        let (params, response) = accept_offer(&fifteen, &offers("permessage-deflate")).unwrap();
        assert_eq!(response, "permessage-deflate");
        assert_eq!(params.server_max_window_bits, 15);
    }

    #[test]
    fn a_server_by_default_asks_clients_that_can_for_its_own_window() {
        // As Chrome and Python websockets offer: the client may be told a window.
        let (params, response) =
            accept_offer(&DeflateConfig::server(), &offers("permessage-deflate; client_max_window_bits")).unwrap();
        assert_eq!(response, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12");
        assert_eq!((params.server_max_window_bits, params.client_max_window_bits), (12, 12));
        // A client that offers a smaller window keeps it; one that cannot be told keeps 15.
        let (params, _) =
            accept_offer(&DeflateConfig::server(), &offers("permessage-deflate; client_max_window_bits=10")).unwrap();
        assert_eq!(params.client_max_window_bits, 10);
        let (params, response) = accept_offer(&DeflateConfig::server(), &offers("permessage-deflate")).unwrap();
        assert_eq!(response, "permessage-deflate; server_max_window_bits=12");
        assert_eq!(params.client_max_window_bits, 15);
    }

    #[test]
    fn honours_every_parameter_of_the_offer() {
        let (params, response) = accept_offer(
            &DeflateConfig::default(),
            &offers("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits"),
        )
        .unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9"
        );
        assert_eq!(
            params,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 9,
                client_max_window_bits: 15
            }
        );
    }

    #[test]
    fn asks_the_client_for_a_smaller_window_only_when_it_may() {
        let config = DeflateConfig { request_peer_max_window_bits: Some(10), ..DeflateConfig::default() };
        let (params, response) = accept_offer(&config, &offers("permessage-deflate; client_max_window_bits")).unwrap();
        assert_eq!(response, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10");
        assert_eq!(params.client_max_window_bits, 10);
        let (_, response) = accept_offer(&config, &offers("permessage-deflate")).unwrap();
        assert_eq!(response, "permessage-deflate; server_max_window_bits=12");
    }

    #[test]
    fn declines_bad_offers_and_takes_the_next() {
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
        ] {
            assert_eq!(accept_offer(&DeflateConfig::default(), &offers(bad)), None, "{bad}");
            let with_fallback = format!("{bad}, permessage-deflate; client_no_context_takeover");
            let (_, response) = accept_offer(&DeflateConfig::default(), &offers(&with_fallback)).unwrap();
            assert_eq!(response, "permessage-deflate; client_no_context_takeover; server_max_window_bits=12");
        }
    }

    #[test]
    fn a_window_the_client_offers_is_repeated_so_that_it_binds() {
        let (params, response) =
            accept_offer(&DeflateConfig::default(), &offers("permessage-deflate; client_max_window_bits=10")).unwrap();
        assert_eq!(response, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10");
        assert_eq!(params.client_max_window_bits, 10);
    }

    #[test]
    fn ignores_other_extensions() {
        assert_eq!(accept_offer(&DeflateConfig::default(), &offers("x-webkit-deflate-frame")), None);
    }

    #[test]
    fn client_checks_the_response() {
        let config = DeflateConfig { request_peer_max_window_bits: Some(10), ..DeflateConfig::default() };
        assert_eq!(client_offer(&config), "permessage-deflate; client_max_window_bits=12; server_max_window_bits=10");
        let ok = &offers("permessage-deflate; server_max_window_bits=10; client_max_window_bits=12")[0];
        let params = accept_response(&config, ok).unwrap();
        assert_eq!((params.server_max_window_bits, params.client_max_window_bits), (10, 12));
        let too_big = &offers("permessage-deflate; server_max_window_bits=12")[0];
        assert!(accept_response(&config, too_big).is_err());
        let unknown = &offers("permessage-deflate; what=1")[0];
        assert!(accept_response(&config, unknown).is_err());
        let valueless = &offers("permessage-deflate; client_max_window_bits")[0];
        assert!(accept_response(&config, valueless).is_err());
    }
}
