//! Incremental JSON scanner for usage. Invariant: fed a JSON text in pieces split at any byte,
//! it finds the same usage as `find_usage` on the parsed text (each element of a top-level
//! array being a document of its own, the last usage winning) while holding only counters, a
//! 16-byte key and one capture buffer of at most `MAX_CAPTURE_BYTES`: it follows the nesting
//! (objects, arrays, strings and their escapes) without building the document and copies out
//! only the values at the usage `Location`s, which it then parses alone. Malformed input
//! never panics, never loops and never grows memory: a syntax error at the followed levels
//! stops the scan (what was complete before it counts); a value nested deeper is only counted
//! in and out.
//!
//! Keys are compared as raw bytes: a key spelled with escapes (`"us\u0061ge"`) is not
//! recognised (no provider writes its keys so).

use super::usage::{usage_at, Location, Usage};

/// Largest usage value copied out and parsed; a larger one is skipped (and counted).
pub const MAX_CAPTURE_BYTES: usize = 64 * 1024;

/// Longest object key remembered (the ones that matter are shorter).
const KEY_BYTES: usize = 16;

/// What is known about the top-level object so far: the facts that tell an OpenAI usage-only
/// stream chunk (`"choices":[]` with a non-null `usage`) from every other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopLevel {
    /// Whether the text is an object (None before its first byte).
    pub object: Option<bool>,
    pub choices: Member,
    pub usage: Member,
    /// A syntax error stopped the scan.
    pub broken: bool,
}

/// A member of the top-level object, as far as the scan has gone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Member {
    /// Not seen (yet).
    #[default]
    Unseen,
    /// An empty array.
    EmptyArray,
    /// An object.
    Object,
    /// Anything else (a non-empty array, `null`, a number, a string).
    Other,
}

/// A container at one of the followed levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    /// The top-level array: each element is a document.
    Documents,
    /// A document: the top-level object or an element of the top-level array.
    Document,
    /// The object under a document's `response`, `message` or `x_groq`: its `usage` member is
    /// at this location.
    Holder(Location),
}

/// What comes next at the followed levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Value,
    /// After the `[` of the top-level array.
    ValueOrEnd,
    /// After a `{`.
    KeyOrEnd,
    /// After a `,` in an object.
    Key,
    Colon,
    CommaOrEnd,
    /// The top-level value ended: the rest is ignored.
    Done,
    /// A syntax error: the rest is ignored.
    Broken,
}

/// The member names that matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Name {
    Usage,
    UsageMetadata,
    Response,
    Message,
    XGroq,
    Choices,
    Other,
}

/// Bytes that end a number or literal at the followed levels.
fn ends_scalar(b: u8) -> bool {
    matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'{' | b'[' | b':')
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each zero byte of `x` (and maybe of bytes above the first zero byte, which
/// does not matter: only the lowest flagged byte is used).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(LO) & !x & HI
}

/// The first byte of `s` for which `hits` (eight bytes at a time) or `one` (for the last few)
/// says yes.
#[inline]
fn find_by(s: &[u8], hits: impl Fn(u64) -> u64, one: impl Fn(u8) -> bool) -> Option<usize> {
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let h = hits(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
        if h != 0 {
            return Some(at + (h.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words.remainder().iter().position(|&c| one(c)).map(|i| at + i)
}

/// The first `a` or `b` in `s`, eight bytes at a time (strings are most of a body: a base64
/// image, a long completion).
#[inline]
pub(crate) fn find_either(s: &[u8], a: u8, b: u8) -> Option<usize> {
    let (pa, pb) = (LO.wrapping_mul(a as u64), LO.wrapping_mul(b as u64));
    find_by(s, |w| zero_bytes(w ^ pa) | zero_bytes(w ^ pb), |c| c == a || c == b)
}

/// Whether a byte changes the nesting inside a skipped value (outside its strings).
fn is_structural(c: u8) -> bool {
    STRUCTURAL[c as usize]
}

static STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// The first byte that changes the nesting inside a skipped value: `"`, `{`, `}`, `[` or
/// `]`. The first few bytes one by one (they are dense in small stream chunks), then eight
/// at a time (long runs of numbers: embeddings). (`b | 0x20` maps `[` and `]` onto `{` and
/// `}`, and nothing else onto them.)
#[inline]
fn find_structural(s: &[u8]) -> Option<usize> {
    let head = s.get(..16).unwrap_or(s);
    if let Some(i) = head.iter().position(|&c| is_structural(c)) {
        return Some(i);
    }
    let (quote, open, close) = (LO * b'"' as u64, LO * b'{' as u64, LO * b'}' as u64);
    let hits = |w: u64| {
        let folded = w | (LO * 0x20);
        zero_bytes(w ^ quote) | zero_bytes(folded ^ open) | zero_bytes(folded ^ close)
    };
    find_by(s.get(head.len()..).unwrap_or_default(), hits, is_structural).map(|i| i + head.len())
}

/// The scanner. One per JSON text (an SSE event's data, a response body); reusable after
/// `finish_text`.
#[derive(Debug)]
pub struct JsonScanner {
    expect: Expect,
    /// The followed containers, outermost first (at most 3: array, document, holder).
    frames: [Frame; 3],
    depth: usize,
    /// Inside a string at the followed levels (a key when `key_string`).
    in_string: bool,
    key_string: bool,
    /// The last byte was a backslash inside a string.
    escape: bool,
    /// Inside a number or literal at the followed levels.
    in_scalar: bool,
    /// The current key (its first `KEY_BYTES`), and whether it was longer.
    key: [u8; KEY_BYTES],
    key_len: usize,
    key_long: bool,
    /// The member whose value comes next (set at its colon).
    member: Name,
    /// Depth inside a skipped (or captured) value; 0 when not skipping.
    skip_depth: u64,
    skip_in_string: bool,
    skip_escape: bool,
    /// The skipped value is the top-level `choices` array and its first byte is not seen yet.
    peek_choices: bool,
    /// The skipped value is being copied out for this location.
    capture: Option<Location>,
    captured: Vec<u8>,
    capture_overflow: bool,
    /// Usage found in the current document, by location (`found_mask` says which are set).
    found: [Usage; 5],
    found_mask: u8,
    /// Usage of the documents so far (the last report winning field by field).
    usage: Usage,
    top: TopLevel,
    /// Usage values skipped for size.
    oversized: u32,
}

impl Default for JsonScanner {
    fn default() -> Self {
        JsonScanner::new()
    }
}

impl JsonScanner {
    pub fn new() -> JsonScanner {
        JsonScanner {
            expect: Expect::Value,
            frames: [Frame::Documents; 3],
            depth: 0,
            in_string: false,
            key_string: false,
            escape: false,
            in_scalar: false,
            key: [0; KEY_BYTES],
            key_len: 0,
            key_long: false,
            member: Name::Other,
            skip_depth: 0,
            skip_in_string: false,
            skip_escape: false,
            peek_choices: false,
            capture: None,
            captured: Vec::new(),
            capture_overflow: false,
            found: [Usage::default(); 5],
            found_mask: 0,
            usage: Usage::default(),
            top: TopLevel::default(),
            oversized: 0,
        }
    }

    /// What is known so far about the top-level object.
    pub fn top_level(&self) -> TopLevel {
        self.top
    }

    /// Usage values skipped because they were larger than `MAX_CAPTURE_BYTES`.
    pub fn oversized(&self) -> u32 {
        self.oversized
    }

    /// Scan the next piece of the text.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let used = if self.skip_depth > 0 {
                self.skip(bytes)
            } else if self.in_string {
                self.string(bytes)
            } else if self.in_scalar {
                self.scalar(bytes)
            } else {
                self.structural(bytes)
            };
            // Every step consumes a byte or leaves a string or scalar (which the next step
            // then consumes from): the loop always ends.
            bytes = bytes.get(used..).unwrap_or_default();
        }
    }

    /// The text ended: its usage (a document cut short counts with what was complete in it).
    /// The scanner is then ready for another text.
    pub fn finish_text(&mut self) -> Usage {
        if self.depth > 0 {
            self.end_document();
        }
        let usage = std::mem::take(&mut self.usage);
        // Field by field (not a new scanner): this runs once per SSE event.
        self.expect = Expect::Value;
        self.depth = 0;
        self.in_string = false;
        self.escape = false;
        self.in_scalar = false;
        self.skip_depth = 0;
        self.peek_choices = false;
        self.capture = None;
        self.captured.clear();
        self.found_mask = 0;
        self.member = Name::Other;
        self.top = TopLevel::default();
        usage
    }

    fn top_frame(&self) -> Option<Frame> {
        self.depth.checked_sub(1).and_then(|i| self.frames.get(i)).copied()
    }

    /// The member whose value is starting belongs to the top-level object.
    fn at_top_member(&self) -> bool {
        self.depth == 1 && self.top_frame() == Some(Frame::Document)
    }

    fn push(&mut self, frame: Frame) {
        match self.frames.get_mut(self.depth) {
            Some(slot) => {
                *slot = frame;
                self.depth += 1;
            }
            None => {
                self.broken();
            }
        }
    }

    fn pop(&mut self) {
        let frame = self.top_frame();
        self.depth = self.depth.saturating_sub(1);
        if frame == Some(Frame::Document) {
            self.end_document();
        }
        self.value_end();
    }

    fn value_end(&mut self) {
        self.expect = if self.depth == 0 { Expect::Done } else { Expect::CommaOrEnd };
    }

    fn end_document(&mut self) {
        let mask = std::mem::take(&mut self.found_mask);
        let first = Location::ALL
            .iter()
            .filter(|loc| mask & (1 << loc.index()) != 0)
            .filter_map(|loc| self.found.get(loc.index()))
            .find(|u| !u.is_empty());
        if let Some(u) = first.copied() {
            self.usage.merge(u);
        }
    }

    fn broken(&mut self) -> usize {
        self.expect = Expect::Broken;
        self.top.broken = true;
        1
    }

    /// One step at the followed levels: whitespace, or one structural byte.
    fn structural(&mut self, bytes: &[u8]) -> usize {
        if matches!(self.expect, Expect::Done | Expect::Broken) {
            return bytes.len();
        }
        let blank = bytes.iter().position(|&b| !is_space(b)).unwrap_or(bytes.len());
        if blank > 0 {
            return blank;
        }
        let Some(&b) = bytes.first() else { return 0 };
        match self.expect {
            Expect::Value | Expect::ValueOrEnd => {
                if b == b']' && self.expect == Expect::ValueOrEnd {
                    self.pop();
                    return 1;
                }
                self.value_start(b)
            }
            Expect::KeyOrEnd | Expect::Key => match b {
                b'"' => {
                    self.in_string = true;
                    self.key_string = true;
                    self.key_len = 0;
                    self.key_long = false;
                    1
                }
                b'}' if self.expect == Expect::KeyOrEnd => {
                    self.pop();
                    1
                }
                _ => self.broken(),
            },
            Expect::Colon => {
                if b != b':' {
                    return self.broken();
                }
                self.member = self.name();
                self.expect = Expect::Value;
                1
            }
            Expect::CommaOrEnd => {
                match (b, self.top_frame()) {
                    (b',', Some(Frame::Documents)) => self.expect = Expect::Value,
                    (b',', Some(_)) => self.expect = Expect::Key,
                    (b'}', Some(Frame::Document | Frame::Holder(_))) | (b']', Some(Frame::Documents)) => self.pop(),
                    _ => return self.broken(),
                }
                1
            }
            Expect::Done | Expect::Broken => bytes.len(),
        }
    }

    fn name(&self) -> Name {
        if self.key_long {
            return Name::Other;
        }
        match self.key.get(..self.key_len).unwrap_or_default() {
            b"usage" => Name::Usage,
            b"usageMetadata" => Name::UsageMetadata,
            b"response" => Name::Response,
            b"message" => Name::Message,
            b"x_groq" => Name::XGroq,
            b"choices" => Name::Choices,
            _ => Name::Other,
        }
    }

    /// The first byte of a value at the followed levels.
    fn value_start(&mut self, b: u8) -> usize {
        let top_member = self.at_top_member();
        if self.depth == 0 {
            self.top.object = Some(b == b'{');
        }
        let frame = self.top_frame();
        // The shape of the top-level `choices` and `usage` members.
        let shape = |kind: Member, top: &mut TopLevel, member: Name| {
            if top_member {
                match member {
                    Name::Choices => top.choices = kind,
                    Name::Usage => top.usage = kind,
                    _ => {}
                }
            }
        };
        match b {
            b'{' => {
                shape(Member::Object, &mut self.top, self.member);
                match (frame, self.member) {
                    (None | Some(Frame::Documents), _) => {
                        self.push(Frame::Document);
                        if self.expect != Expect::Broken {
                            self.expect = Expect::KeyOrEnd;
                        }
                    }
                    (Some(Frame::Document), Name::Usage) => self.start_skip(Some(Location::Usage)),
                    (Some(Frame::Document), Name::UsageMetadata) => self.start_skip(Some(Location::UsageMetadata)),
                    (Some(Frame::Document), Name::Response | Name::Message | Name::XGroq) => {
                        let loc = match self.member {
                            Name::Response => Location::ResponseUsage,
                            Name::Message => Location::MessageUsage,
                            _ => Location::XGroqUsage,
                        };
                        self.push(Frame::Holder(loc));
                        if self.expect != Expect::Broken {
                            self.expect = Expect::KeyOrEnd;
                        }
                    }
                    (Some(Frame::Holder(loc)), Name::Usage) => self.start_skip(Some(loc)),
                    _ => self.start_skip(None),
                }
            }
            b'[' => match frame {
                None => {
                    self.push(Frame::Documents);
                    self.expect = Expect::ValueOrEnd;
                }
                _ => {
                    self.start_skip(None);
                    if top_member && self.member == Name::Choices {
                        self.peek_choices = true;
                    } else {
                        shape(Member::Other, &mut self.top, self.member);
                    }
                }
            },
            b'}' | b']' | b',' | b':' => return self.broken(),
            b'"' => {
                shape(Member::Other, &mut self.top, self.member);
                self.in_string = true;
                self.key_string = false;
            }
            _ => {
                shape(Member::Other, &mut self.top, self.member);
                self.in_scalar = true;
            }
        }
        1
    }

    /// Enter a value that is only counted in and out (copied out for `capture`), just past its
    /// opening bracket.
    fn start_skip(&mut self, capture: Option<Location>) {
        self.skip_depth = 1;
        self.skip_in_string = false;
        self.skip_escape = false;
        self.capture = capture;
        self.capture_overflow = false;
        self.captured.clear();
        if capture.is_some() {
            self.captured.push(b'{');
        }
    }

    /// Inside a skipped value: strings, brackets, nothing else.
    fn skip(&mut self, bytes: &[u8]) -> usize {
        let mut at = 0;
        if self.peek_choices {
            let blank = bytes.iter().position(|&b| !is_space(b)).unwrap_or(bytes.len());
            if let Some(&b) = bytes.get(blank) {
                self.peek_choices = false;
                self.top.choices = if b == b']' { Member::EmptyArray } else { Member::Other };
            }
            at = blank;
        }
        let mut ended = false;
        while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
            if self.skip_in_string {
                if self.skip_escape {
                    self.skip_escape = false;
                    at += 1;
                    continue;
                }
                match find_either(rest, b'"', b'\\') {
                    None => at = bytes.len(),
                    Some(i) => {
                        if rest.get(i) == Some(&b'\\') {
                            self.skip_escape = true;
                        } else {
                            self.skip_in_string = false;
                        }
                        at += i + 1;
                    }
                }
            } else {
                match find_structural(rest) {
                    None => at = bytes.len(),
                    Some(i) => {
                        at += i + 1;
                        match rest.get(i) {
                            Some(b'"') => self.skip_in_string = true,
                            Some(b'{' | b'[') => self.skip_depth = self.skip_depth.saturating_add(1),
                            _ => {
                                self.skip_depth -= 1;
                                if self.skip_depth == 0 {
                                    ended = true;
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(loc) = self.capture {
            self.keep(bytes.get(..at).unwrap_or_default());
            if ended {
                self.capture = None;
                self.end_capture(loc);
            }
        }
        if ended {
            self.value_end();
        }
        at
    }

    /// Copy captured bytes, up to the cap.
    fn keep(&mut self, bytes: &[u8]) {
        if self.capture_overflow {
            return;
        }
        let needed = self.captured.len() + bytes.len();
        if needed > MAX_CAPTURE_BYTES {
            self.capture_overflow = true;
            self.captured = Vec::new();
            return;
        }
        if needed > self.captured.capacity() {
            // Grow by doubling, but never past the cap.
            let target = (self.captured.capacity() * 2).clamp(needed, MAX_CAPTURE_BYTES);
            self.captured.reserve_exact(target - self.captured.len());
        }
        self.captured.extend_from_slice(bytes);
    }

    fn end_capture(&mut self, loc: Location) {
        if self.capture_overflow {
            self.oversized = self.oversized.saturating_add(1);
            return;
        }
        let usage =
            serde_json::from_slice::<serde_json::Value>(&self.captured).map(|v| usage_at(loc, &v)).unwrap_or_default();
        if let Some(slot) = self.found.get_mut(loc.index()) {
            *slot = usage;
            self.found_mask |= 1 << loc.index();
        }
        self.captured.clear();
    }

    /// Inside a string at the followed levels (a key is remembered).
    fn string(&mut self, bytes: &[u8]) -> usize {
        if self.escape {
            self.escape = false;
            self.remember(bytes.get(..1).unwrap_or_default());
            return 1;
        }
        match find_either(bytes, b'"', b'\\') {
            None => {
                self.remember(bytes);
                bytes.len()
            }
            Some(i) => {
                self.remember(bytes.get(..i).unwrap_or_default());
                if bytes.get(i) == Some(&b'\\') {
                    self.escape = true;
                    self.remember(b"\\");
                } else {
                    self.in_string = false;
                    if self.key_string {
                        self.expect = Expect::Colon;
                    } else {
                        self.value_end();
                    }
                }
                i + 1
            }
        }
    }

    fn remember(&mut self, bytes: &[u8]) {
        if !self.key_string || self.key_long {
            return;
        }
        match self.key.get_mut(self.key_len..self.key_len + bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.key_len += bytes.len();
            }
            None => self.key_long = true,
        }
    }

    /// Inside a number or literal at the followed levels.
    fn scalar(&mut self, bytes: &[u8]) -> usize {
        match bytes.iter().position(|&b| ends_scalar(b)) {
            None => bytes.len(),
            Some(i) => {
                // The delimiter is left for `structural`.
                self.in_scalar = false;
                self.value_end();
                i
            }
        }
    }
}

#[cfg(test)]
mod tests;
