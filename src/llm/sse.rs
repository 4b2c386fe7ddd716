//! Incremental Server-Sent Events reader. Invariant: fed the response body chunk by chunk as
//! it streams to the client, split at any byte, it reads the same usage as from the whole
//! stream, with bounded memory whatever the size of an event: each event's data goes straight
//! into a `JsonScanner` (no line or event is buffered), which copies out only usage values.
//!
//! With `strip_usage_chunk` it also withholds the usage-only chunk (an event whose JSON has
//! `"choices":[]` and a non-null `usage`) that an upstream sends because Tollgate added
//! `stream_options.include_usage` to the request: the client gets exactly the stream it asked
//! for. Every other event passes unchanged. Only the bytes of an event that may still be that
//! chunk are held, and only until it completes, it is known not to be that chunk, or it
//! outgrows `MAX_HELD_BYTES`; a complete event is never held, and everything held is released
//! at the end of the stream.

use super::json_scan::{find_either, JsonScanner, Member, TopLevel};
use super::usage::Usage;

/// Largest event that may be withheld as the usage-only chunk (those are a few hundred
/// bytes): a bigger event passes as it is, so at most this much is ever held.
pub const MAX_HELD_BYTES: usize = 64 * 1024;

/// What to do with the chunk just read.
#[derive(Debug, PartialEq, Eq)]
pub enum Forward<'a> {
    /// Send it on as it is (the common case: nothing is copied).
    Unchanged,
    /// Send these bytes instead (possibly none).
    Replace(&'a [u8]),
}

/// Where the reader is within the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// Nothing of the line read yet.
    Start,
    /// Reading the field name (up to its colon).
    Field,
    /// Just after `data:`: one space may follow, and is not part of the value.
    DataValueStart,
    DataValue,
    /// Another field, or a comment: its value does not matter.
    Ignored,
}

/// The usage-only chunk: an object with `"choices": []` and an object `usage`.
fn is_usage_only(top: TopLevel) -> bool {
    top.object == Some(true) && top.choices == Member::EmptyArray && top.usage == Member::Object
}

/// Whether an event whose data scanned so far gives `top` may still turn out usage-only.
fn may_be_usage_only(top: TopLevel) -> bool {
    top.object != Some(false)
        && !top.broken
        && matches!(top.choices, Member::Unseen | Member::EmptyArray)
        && matches!(top.usage, Member::Unseen | Member::Object)
}

pub struct SseReader {
    scanner: JsonScanner,
    usage: Usage,
    line: Line,
    /// The field name so far (only `data` matters) and its length.
    field: [u8; 4],
    field_len: usize,
    /// The last line ended with '\r' (so a following '\n' belongs to the same line end).
    after_cr: bool,
    /// Data lines in the current event.
    data_lines: u32,
    /// Some line of the current event has been read.
    in_event: bool,
    strip: Option<Stripper>,
}

impl SseReader {
    pub fn new(strip_usage_chunk: bool) -> SseReader {
        SseReader {
            scanner: JsonScanner::new(),
            usage: Usage::default(),
            line: Line::Start,
            field: [0; 4],
            field_len: 0,
            after_cr: false,
            data_lines: 0,
            in_event: false,
            strip: strip_usage_chunk.then(Stripper::default),
        }
    }

    /// Whether the usage-only chunk is withheld.
    pub fn strips(&self) -> bool {
        self.strip.is_some()
    }

    /// Usage values skipped for size.
    pub fn oversized(&self) -> u32 {
        self.scanner.oversized()
    }

    /// Usage-only chunks withheld from the client.
    pub fn stripped(&self) -> u32 {
        self.strip.as_ref().map_or(0, |s| s.stripped)
    }

    /// Read the next chunk; say what to send on in its place.
    pub fn feed(&mut self, chunk: &[u8], end_of_stream: bool) -> Forward<'_> {
        if let Some(s) = &mut self.strip {
            s.begin_chunk();
        }
        let mut at = 0;
        while let Some(rest) = chunk.get(at..).filter(|r| !r.is_empty()) {
            if self.after_cr {
                self.after_cr = false;
                if rest.first() == Some(&b'\n') {
                    // The '\n' of a "\r\n" line end.
                    if let Some(s) = &mut self.strip {
                        s.line_feed(chunk, at);
                    }
                    at += 1;
                    continue;
                }
            }
            if let Some(s) = &mut self.strip {
                s.swallow_lf = false;
            }
            let end = find_either(rest, b'\n', b'\r');
            let text = rest.get(..end.unwrap_or(rest.len())).unwrap_or_default();
            if self.line == Line::Start {
                if end == Some(0) {
                    // A blank line: the event ends with its line end.
                    self.after_cr = rest.first() == Some(&b'\r');
                    at += 1;
                    self.end_event(chunk, at);
                    continue;
                }
                if !self.in_event {
                    self.in_event = true;
                    if let Some(s) = &mut self.strip {
                        s.begin_event(chunk, at);
                    }
                }
                self.line = Line::Field;
            }
            self.read_line_part(text);
            at += text.len();
            if let Some(s) = self.strip.as_mut().filter(|s| s.holding) {
                if !may_be_usage_only(self.scanner.top_level()) {
                    s.release(chunk, at);
                }
            }
            if end.is_some() {
                self.after_cr = chunk.get(at) == Some(&b'\r');
                at += 1;
                self.end_line();
            }
        }
        match &mut self.strip {
            Some(s) => s.end_chunk(chunk, end_of_stream),
            None => Forward::Unchanged,
        }
    }

    /// The stream ended: a last line or event without its line end still counts.
    pub fn finish(mut self) -> Usage {
        if self.line != Line::Start {
            self.end_line();
        }
        if self.data_lines > 0 {
            let usage = self.scanner.finish_text();
            self.usage.merge(usage);
        }
        self.usage
    }

    fn read_line_part(&mut self, mut text: &[u8]) {
        if self.line == Line::Field {
            match text.iter().position(|&b| b == b':') {
                Some(colon) => {
                    self.push_field(text.get(..colon).unwrap_or_default());
                    text = text.get(colon + 1..).unwrap_or_default();
                    if self.is_data() {
                        self.start_data_line();
                        self.line = Line::DataValueStart;
                    } else {
                        self.line = Line::Ignored;
                    }
                }
                None => {
                    self.push_field(text);
                    return;
                }
            }
        }
        if self.line == Line::DataValueStart && !text.is_empty() {
            text = text.strip_prefix(b" ").unwrap_or(text);
            self.line = Line::DataValue;
        }
        if self.line == Line::DataValue {
            self.scanner.feed(text);
        }
    }

    fn push_field(&mut self, name: &[u8]) {
        if let Some(room) = self.field.get_mut(self.field_len..self.field_len + name.len()) {
            room.copy_from_slice(name);
        }
        self.field_len = self.field_len.saturating_add(name.len());
    }

    fn is_data(&self) -> bool {
        self.field_len == 4 && &self.field == b"data"
    }

    /// Data lines of one event are joined with '\n'.
    fn start_data_line(&mut self) {
        if self.data_lines > 0 {
            self.scanner.feed(b"\n");
        }
        self.data_lines = self.data_lines.saturating_add(1);
    }

    fn end_line(&mut self) {
        if self.line == Line::Field && self.is_data() {
            // `data` without a colon: an empty data line.
            self.start_data_line();
        }
        self.line = Line::Start;
        self.field_len = 0;
    }

    /// The blank line ending an event was read; `at` is just past it in `chunk`.
    fn end_event(&mut self, chunk: &[u8], at: usize) {
        let usage_only = self.data_lines > 0 && is_usage_only(self.scanner.top_level());
        if self.data_lines > 0 {
            let usage = self.scanner.finish_text();
            self.usage.merge(usage);
        }
        if let Some(s) = &mut self.strip {
            s.end_event(chunk, at, usage_only, self.after_cr);
        }
        self.data_lines = 0;
        self.in_event = false;
    }
}

/// The bytes withheld from the client, and the replacement of the current chunk.
///
/// Within one chunk, bytes before `mark` are decided (sent or dropped). While nothing was
/// dropped or withheld, what is sent is `chunk[..mark]` itself (`pristine`) and nothing is
/// copied; the first change copies it into `out`, which then collects what is sent.
#[derive(Default)]
struct Stripper {
    /// Bytes of the current event held from earlier chunks.
    held: Vec<u8>,
    /// The current event's bytes are being held.
    holding: bool,
    /// Stream offsets of the current chunk and of the current event's first byte.
    chunk_start: u64,
    event_start: u64,
    /// A stripped event ended with '\r': a '\n' right after it is its line end too.
    swallow_lf: bool,
    out: Vec<u8>,
    pristine: bool,
    mark: usize,
    stripped: u32,
}

impl Stripper {
    fn begin_chunk(&mut self) {
        self.out.clear();
        self.pristine = true;
        self.mark = 0;
    }

    /// From here on, what is sent differs from the chunk.
    fn change(&mut self, chunk: &[u8]) {
        if self.pristine {
            self.pristine = false;
            self.out.extend_from_slice(chunk.get(..self.mark).unwrap_or_default());
        }
    }

    /// Send `chunk[mark..to]`.
    fn forward_to(&mut self, chunk: &[u8], to: usize) {
        if !self.pristine {
            self.out.extend_from_slice(chunk.get(self.mark..to).unwrap_or_default());
        }
        self.mark = to;
    }

    /// Drop `chunk[mark..to]`.
    fn drop_to(&mut self, chunk: &[u8], to: usize) {
        if to > self.mark {
            self.change(chunk);
            self.mark = to;
        }
    }

    /// Send what earlier chunks held (it comes before anything of this chunk).
    fn release_held(&mut self, chunk: &[u8]) {
        if !self.held.is_empty() {
            self.change(chunk);
            self.out.extend_from_slice(&self.held);
            self.held.clear();
        }
    }

    /// A '\n' completing a "\r\n" at `at`.
    fn line_feed(&mut self, chunk: &[u8], at: usize) {
        if std::mem::take(&mut self.swallow_lf) {
            self.forward_to(chunk, at);
            self.drop_to(chunk, at + 1);
        }
    }

    /// An event starts at `at`: hold it until it is known.
    fn begin_event(&mut self, chunk: &[u8], at: usize) {
        self.forward_to(chunk, at);
        self.holding = true;
        self.event_start = self.chunk_start + at as u64;
    }

    /// Bytes of the current event up to `at` in this chunk.
    fn event_len(&self, at: usize) -> u64 {
        (self.chunk_start + at as u64).saturating_sub(self.event_start)
    }

    /// The current event is not the usage-only chunk: send it, up to `at`, and the rest of
    /// it as it comes.
    fn release(&mut self, chunk: &[u8], at: usize) {
        self.release_held(chunk);
        self.forward_to(chunk, at);
        self.holding = false;
    }

    /// The current event ended just before `at`.
    fn end_event(&mut self, chunk: &[u8], at: usize, usage_only: bool, ended_with_cr: bool) {
        if !self.holding {
            return;
        }
        self.holding = false;
        if usage_only && self.event_len(at) <= MAX_HELD_BYTES as u64 {
            self.change(chunk);
            self.held.clear();
            self.drop_to(chunk, at);
            self.swallow_lf = ended_with_cr;
            self.stripped = self.stripped.saturating_add(1);
        } else {
            self.release_held(chunk);
            self.forward_to(chunk, at);
        }
    }

    fn end_chunk<'a>(&'a mut self, chunk: &[u8], end_of_stream: bool) -> Forward<'a> {
        let rest = chunk.get(self.mark..).unwrap_or_default();
        let fits = self.event_len(chunk.len()) <= MAX_HELD_BYTES as u64;
        self.chunk_start += chunk.len() as u64;
        if self.holding && !end_of_stream && fits {
            if !rest.is_empty() {
                self.change(chunk);
                self.held.extend_from_slice(rest);
                self.mark = chunk.len();
            }
        } else {
            // Not holding, or the event outgrew the cap, or the stream ends: send it all.
            self.holding = false;
            self.release_held(chunk);
            self.forward_to(chunk, chunk.len());
        }
        if self.pristine {
            Forward::Unchanged
        } else {
            Forward::Replace(&self.out)
        }
    }
}

#[cfg(test)]
mod tests;
