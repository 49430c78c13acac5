//! Helpers shared by the fuzz targets: turning part of the input into decisions (flags, chunk
//! sizes) without an `arbitrary` dependency, so the rest of the input stays plain bytes.

/// A small deterministic generator seeded from the input, used to split the data into chunks the
/// way a socket might. The same input always gives the same split, so crashes reproduce.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    /// The next pseudo-random number (splitmix64).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `1..=max` (`max` at least 1).
    pub fn size(&mut self, max: usize) -> usize {
        1 + (self.next_u64() % max.max(1) as u64) as usize
    }
}

/// Splits `data` into consecutive, non-empty chunks. The style byte picks the largest chunk: the
/// whole input at once, single bytes, or sizes up to 3, 16, 64, 300 or 4096 bytes. Large data is
/// cut into at most a few hundred chunks, so that a big payload fed byte by byte does not slow
/// the fuzzer down to a crawl.
pub fn split(data: &[u8], style: u8) -> Vec<&[u8]> {
    let max = match style % 7 {
        0 => usize::MAX,
        1 => 1,
        2 => 3,
        3 => 16,
        4 => 64,
        5 => 300,
        _ => 4096,
    }
    .max(data.len() / 128);
    let mut rng = Rng::new(u64::from(style));
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let size = if max == usize::MAX { rest.len() } else { rng.size(max).min(rest.len()) };
        let (head, tail) = rest.split_at(size);
        out.push(head);
        rest = tail;
    }
    out
}

/// Splits off the first `N` bytes of the input as control bytes, padding a short input with zeros.
pub fn take_control<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    let mut control = [0u8; N];
    let n = data.len().min(N);
    control[..n].copy_from_slice(&data[..n]);
    (control, &data[n..])
}
