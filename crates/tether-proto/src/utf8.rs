//! Incremental UTF-8 validation and a byte buffer known to hold UTF-8.
//!
//! A text message arrives in pieces: fragments, and within a fragment whatever the socket delivered.
//! RFC 6455 §8.1 asks an endpoint to fail the connection as soon as it sees invalid UTF-8, so the
//! validator checks each piece as it arrives, carrying at most three bytes of an unfinished character
//! from one piece to the next. A piece that ends in a sequence which can never become valid
//! (`F4 90`, say) fails at once; only a prefix that could still be completed is carried.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// Validates a UTF-8 stream fed in arbitrary pieces.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// Bytes of a character that the last piece left unfinished.
    partial: [u8; 4],
    partial_len: u8,
    /// How many bytes the unfinished character needs in all.
    partial_needed: u8,
}

/// The stream is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// Checks the next piece of the stream.
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let take = (usize::from(self.partial_needed) - have).min(piece.len());
            self.partial[have..have + take].copy_from_slice(&piece[..take]);
            self.partial_len += take as u8;
            piece = &piece[take..];
            match std::str::from_utf8(&self.partial[..usize::from(self.partial_len)]) {
                Ok(_) => self.partial_len = 0,
                // Still a valid prefix, and the piece is used up: wait for more.
                Err(e) if e.error_len().is_none() => return Ok(()),
                Err(_) => return Err(InvalidUtf8),
            }
        }
        if simdutf8::basic::from_utf8(piece).is_ok() {
            return Ok(());
        }
        let error = simdutf8::compat::from_utf8(piece).expect_err("basic and compat validators agree");
        if error.error_len().is_some() {
            return Err(InvalidUtf8);
        }
        let tail = &piece[error.valid_up_to()..];
        self.partial[..tail.len()].copy_from_slice(tail);
        self.partial_len = tail.len() as u8;
        self.partial_needed = sequence_len(tail[0]);
        Ok(())
    }

    /// Ends the stream: an unfinished character is an error.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }
}

/// The length of the sequence a valid lead byte starts (only called on lead bytes the validator
/// already accepted as the start of a valid prefix).
fn sequence_len(lead: u8) -> u8 {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Bytes that are known to be valid UTF-8: the payload of a text message.
///
/// Holding [`Bytes`] rather than a `String` lets a text message be a zero-copy slice of the read
/// buffer and be shared cheaply (a broadcast encodes once and clones). Validity is established once,
/// by the incremental validator or by [`Utf8Bytes::try_from`], and never checked again.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Wraps bytes that the caller has already validated as UTF-8.
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Self(bytes)
    }

    /// A `Utf8Bytes` that borrows a static string, without copying.
    pub fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor validates the bytes as UTF-8 (from_validated is only called
        // after the incremental validator accepted the whole message), and `Bytes` is immutable.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(&self.0)
        }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives up the UTF-8 guarantee and returns the bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = InvalidUtf8;
    fn try_from(bytes: Bytes) -> Result<Self, InvalidUtf8> {
        simdutf8::basic::from_utf8(&bytes).map_err(|_| InvalidUtf8)?;
        Ok(Self(bytes))
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(pieces: &[&[u8]]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        for piece in pieces {
            v.feed(piece)?;
        }
        v.finish()
    }

    #[test]
    fn accepts_characters_split_anywhere() {
        let text = "κόσμε 𝄞 €uro".as_bytes();
        for split in 0..=text.len() {
            assert_eq!(feed_all(&[&text[..split], &text[split..]]), Ok(()), "split at {split}");
        }
        let bytewise: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(feed_all(&bytewise), Ok(()));
    }

    #[test]
    fn fails_on_the_first_impossible_byte() {
        // Autobahn 6.4.x: the frame continues, but F4 90 can never start a valid character.
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed("κόσμε".as_bytes()), Ok(()));
        assert_eq!(v.feed(&[0xf4, 0x90]), Err(InvalidUtf8));
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xf4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    #[test]
    fn rejects_overlongs_surrogates_and_truncation() {
        assert_eq!(feed_all(&[&[0xc0, 0xaf]]), Err(InvalidUtf8));
        assert_eq!(feed_all(&[&[0xed, 0xa0, 0x80]]), Err(InvalidUtf8));
        assert_eq!(feed_all(&[&[0xe2, 0x82]]), Err(InvalidUtf8));
        assert_eq!(feed_all(&[&[0xe2], &[0x82]]), Err(InvalidUtf8));
        assert_eq!(feed_all(&[&[0xff]]), Err(InvalidUtf8));
    }

    #[test]
    fn utf8_bytes_checks_on_conversion() {
        assert!(Utf8Bytes::try_from(Bytes::from_static(b"ok")).is_ok());
        assert!(Utf8Bytes::try_from(Bytes::from_static(&[0xff])).is_err());
        assert_eq!(Utf8Bytes::from("héllo").as_str(), "héllo");
    }
}
