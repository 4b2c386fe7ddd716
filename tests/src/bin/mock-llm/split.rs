//! `x-mock-split`: where a body is cut into HTTP chunks (fixed sizes, the places parsers get
//! wrong, or seeded random cuts).

/// Bodies up to this size are written one byte per chunk by `x-mock-split: awkward`.
pub const AWKWARD_BYTEWISE_MAX: usize = 1024;
/// Most cut points of `x-mock-split: random:SEED`.
pub const RANDOM_CUTS: usize = 64;

/// How `x-mock-split` cuts a body into HTTP chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Pieces of exactly N bytes (the last may be shorter).
    Bytes(usize),
    /// Cut where parsers go wrong: inside every CRLF, inside every multi-byte UTF-8 sequence,
    /// in the middle of every line, after every `data:` and at every line start (so a blank
    /// line comes alone); bodies up to `AWKWARD_BYTEWISE_MAX` bytes one byte at a time.
    Awkward,
    /// Up to `RANDOM_CUTS` cuts at positions drawn from this seed (xorshift64*).
    Random(u64),
}

impl Split {
    pub fn parse(v: &str) -> Result<Split, String> {
        let bad = || format!("invalid x-mock-split: {v:?} (expected 1..=16777216, `awkward` or `random:SEED`)");
        if v.eq_ignore_ascii_case("awkward") {
            return Ok(Split::Awkward);
        }
        if let Some(seed) = v.strip_prefix("random:") {
            return seed.parse::<u64>().map(Split::Random).map_err(|_| bad());
        }
        match v.parse::<usize>() {
            Ok(n) if (1..=1 << 24).contains(&n) => Ok(Split::Bytes(n)),
            _ => Err(bad()),
        }
    }

    /// Where to cut `bytes` (sorted, distinct, strictly inside).
    pub fn cuts(self, bytes: &[u8]) -> Vec<usize> {
        let len = bytes.len();
        let mut cuts: Vec<usize> = match self {
            Split::Bytes(n) => (n.max(1)..len).step_by(n.max(1)).collect(),
            Split::Awkward if len <= AWKWARD_BYTEWISE_MAX => (1..len).collect(),
            Split::Awkward => awkward_cuts(bytes),
            Split::Random(seed) => {
                let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
                (0..RANDOM_CUTS.min(len.saturating_sub(1)))
                    .map(|_| {
                        state ^= state >> 12;
                        state ^= state << 25;
                        state ^= state >> 27;
                        let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
                        1 + (r % (len as u64 - 1)) as usize
                    })
                    .collect()
            }
        };
        cuts.retain(|&c| c > 0 && c < len);
        cuts.sort_unstable();
        cuts.dedup();
        cuts
    }
}

pub fn awkward_cuts(bytes: &[u8]) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut line_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            cuts.push(i + 1); // between '\r' and '\n'
        }
        if (0xc0..0xf8).contains(&b) {
            cuts.push(i + 1); // after the lead byte of a UTF-8 sequence
        }
        if i == line_start && bytes[i..].starts_with(b"data:") {
            cuts.push(i + 5);
        }
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            cuts.push((line_start + i) / 2); // the middle of the line
            cuts.push(i + 1); // the next line's start
            line_start = i + 1;
        }
    }
    cuts.push((line_start + bytes.len()) / 2);
    cuts
}

pub fn split_pieces(bytes: &[u8], split: Split) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in split.cuts(bytes).into_iter().chain([bytes.len()]) {
        pieces.push(bytes[start..cut].to_vec());
        start = cut;
    }
    pieces
}
