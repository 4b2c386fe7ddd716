//! Incremental Server-Sent Events parser for usage: fed the response body chunk by chunk as
//! it streams to the client (nothing is held back), it carries partial lines across chunks,
//! keeps at most `MAX_EVENT_BYTES` of one event, and parses only events that mention usage.

use super::usage::{find_usage, Usage};

/// Longest event data kept; a longer event is skipped (its usage is not read).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

#[derive(Default)]
pub struct SseUsageParser {
    /// The current line so far (bytes after the last line end).
    line: Vec<u8>,
    /// The current event's data lines, joined by '\n'.
    data: Vec<u8>,
    /// The current event overflowed `MAX_EVENT_BYTES`.
    oversized: bool,
    /// The last byte fed was '\r' (so a following '\n' is part of the same line end).
    after_cr: bool,
    pub usage: Usage,
    /// Events whose data was skipped for size.
    pub skipped: u32,
}

impl SseUsageParser {
    pub fn new() -> SseUsageParser {
        SseUsageParser::default()
    }

    pub fn feed(&mut self, mut chunk: &[u8]) {
        // Line by line, a slice at a time (not byte by byte: this runs on every chunk).
        while let Some((&first, tail)) = chunk.split_first() {
            if self.after_cr && first == b'\n' {
                // The '\n' of a "\r\n" line end.
                self.after_cr = false;
                chunk = tail;
                continue;
            }
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    let (line, rest) = chunk.split_at(i);
                    self.push_line(line);
                    self.after_cr = rest.first() == Some(&b'\r');
                    self.end_line();
                    chunk = rest.get(1..).unwrap_or_default();
                }
                None => {
                    self.push_line(chunk);
                    self.after_cr = false;
                    chunk = &[];
                }
            }
        }
    }

    /// Add to the current line, up to the cap (beyond it the event is skipped).
    fn push_line(&mut self, bytes: &[u8]) {
        let room = (MAX_EVENT_BYTES + 8).saturating_sub(self.line.len());
        if bytes.len() > room {
            self.oversized = true;
        }
        self.line.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
    }

    /// The stream ended: a last event without its blank line still counts.
    pub fn finish(&mut self) {
        if !self.line.is_empty() {
            self.end_line();
        }
        self.end_event();
    }

    fn end_line(&mut self) {
        if self.line.is_empty() {
            self.end_event();
            return;
        }
        if let Some(rest) = self.line.strip_prefix(b"data:") {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            if self.data.len() + rest.len() <= MAX_EVENT_BYTES {
                self.data.extend_from_slice(rest);
            } else {
                self.oversized = true;
            }
        }
        self.line.clear();
    }

    fn end_event(&mut self) {
        if self.oversized {
            self.skipped += 1;
        } else if mentions_usage(&self.data) {
            if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&self.data) {
                self.usage.merge(find_usage(&doc));
            }
        }
        self.data.clear();
        self.oversized = false;
    }
}

/// Cheap filter so that content deltas are never JSON-parsed: whether the event has a `usage`
/// (or `usageMetadata`) member whose value is not `null`. OpenAI streams asked for usage carry
/// `"usage":null` in every content chunk; parsing each of them cost more than all the rest of
/// the stream's handling.
fn mentions_usage(data: &[u8]) -> bool {
    fn skip_space(mut rest: &[u8]) -> &[u8] {
        while let [b' ' | b'\t' | b'\n' | b'\r', tail @ ..] = rest {
            rest = tail;
        }
        rest
    }
    let mut from = 0;
    while let Some(at) = data.get(from..).and_then(|d| d.windows(5).position(|w| w == b"usage" || w == b"Usage")) {
        let name_end = from + at + 5;
        from = name_end;
        let rest = data.get(name_end..).unwrap_or_default();
        let rest = rest.strip_prefix(b"Metadata").unwrap_or(rest);
        let Some(rest) = rest.strip_prefix(b"\"") else { continue };
        let Some(value) = skip_space(rest).strip_prefix(b":") else { continue };
        if !skip_space(value).starts_with(b"null") {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\n\
data: [DONE]\n\n";

    const ANTHROPIC: &str = "event: message_start\r\n\
data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"usage is not here\"}}\r\n\r\n\
event: message_delta\r\n\
data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}\r\n\r\n\
event: message_stop\r\n\
data: {\"type\":\"message_stop\"}\r\n\r\n";

    const GEMINI: &str =
        "data: {\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":2,\"totalTokenCount\":6}}\r\n\r\n\
data: {\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":6,\"totalTokenCount\":10}}\r\n\r\n";

    const RESPONSES: &str = "event: response.output_text.delta\n\
data: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n\
event: response.completed\n\
data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":4,\"total_tokens\":7}}}\n\n";

    #[test]
    fn only_usage_members_with_a_value_are_parsed() {
        for yes in [
            &br#"{"usage":{"prompt_tokens":1}}"#[..],
            br#"{"usage" : {"a":1}}"#,
            br#"{"usageMetadata":{"totalTokenCount":3}}"#,
            br#"{"usage":null,"x":{"usage":{"input_tokens":2}}}"#,
            br#"{"type":"message_start","message":{"usage":
{"input_tokens":9}}}"#,
        ] {
            assert!(mentions_usage(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &br#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#[..],
            br#"{"usage" :  null}"#,
            br#"{"delta":{"text":"usage is not here"}}"#,
            br#"{"delta":{"text":"usage"}}"#,
            b"usage",
            b"",
        ] {
            assert!(!mentions_usage(no), "{}", String::from_utf8_lossy(no));
        }
    }

    fn parse_split(text: &str, at: &[usize]) -> Usage {
        let mut p = SseUsageParser::new();
        let bytes = text.as_bytes();
        let mut start = 0;
        for &cut in at {
            p.feed(&bytes[start..cut]);
            start = cut;
        }
        p.feed(&bytes[start..]);
        p.finish();
        p.usage
    }

    fn expect(text: &str, input: u64, output: u64, total: u64) {
        // Whole, then split at every byte in two, then one byte at a time.
        for cut in 0..=text.len() {
            let u = parse_split(text, &[cut]);
            assert_eq!((u.input_tokens(), u.output_tokens(), u.total_tokens()), (input, output, total), "cut at {cut}");
        }
        let every: Vec<usize> = (1..text.len()).collect();
        let u = parse_split(text, &every);
        assert_eq!((u.input_tokens(), u.output_tokens(), u.total_tokens()), (input, output, total));
    }

    #[test]
    fn every_fixture_split_at_every_byte() {
        expect(OPENAI, 5, 7, 12);
        expect(ANTHROPIC, 9, 30, 39);
        expect(GEMINI, 4, 6, 10);
        expect(RESPONSES, 3, 4, 7);
    }

    #[test]
    fn multi_line_data_and_missing_final_blank_line() {
        let text = "data: {\"usage\":\ndata: {\"total_tokens\": 5}}";
        assert_eq!(parse_split(text, &[]).total_tokens(), 5);
    }

    #[test]
    fn garbage_and_oversized_events_are_skipped_without_harm() {
        let mut p = SseUsageParser::new();
        p.feed(b"data: {not json usage\n\n");
        p.feed(&vec![b'x'; MAX_EVENT_BYTES * 2]);
        p.feed(b"\n\n");
        p.feed(&[0xff, 0xfe, b'\n', b'\n']);
        p.feed(b"data: {\"usage\":{\"total_tokens\":3}}\n\n");
        p.finish();
        assert_eq!(p.usage.total_tokens(), 3);
        assert!(p.line.capacity() <= 2 * MAX_EVENT_BYTES + 64, "memory stays bounded");
    }
}
