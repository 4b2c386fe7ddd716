//! Tests of the SSE reader: usage read exactly however the stream is split, events of any
//! size, and the withholding of the usage-only chunk Tollgate caused (split at every byte:
//! the client gets the stream minus that chunk, and never waits for a complete event).

use super::*;

const OPENAI: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\n\
data: [DONE]\n\n";

const ANTHROPIC: &str = "event: message_start\r\n\
data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"usage is not here\"}}\r\n\r\n\
event: message_delta\r\n\
data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}     \r\n\r\n\
event: message_stop\r\n\
data: {\"type\":\"message_stop\"}\r\n\r\n";

const GEMINI: &str =
    "data: {\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":2,\"totalTokenCount\":6}}\r\n\r\n\
data: {\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":6,\"totalTokenCount\":10}}\r\n\r\n";

const RESPONSES: &str = "event: response.output_text.delta\n\
data: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n\
event: response.completed\n\
data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":4,\"total_tokens\":7}}}\n\n";

const GROQ: &str = ": keep-alive comment\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"x_groq\":{\"id\":\"req_1\"}}\n\n\
data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"x_groq\":{\"id\":\"req_1\",\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":9,\"total_tokens\":30}}}\n\n\
data: [DONE]\n\n";

/// Feed `text` cut at `cuts`; returns what was sent on (concatenated), the usage, and what
/// had been sent after each chunk.
fn run(text: &[u8], cuts: &[usize], strip: bool) -> (Vec<u8>, Usage, Vec<Vec<u8>>) {
    let mut r = SseReader::new(strip);
    let mut sent = Vec::new();
    let mut after_each = Vec::new();
    let mut start = 0;
    let ends: Vec<usize> = cuts.iter().copied().chain([text.len()]).collect();
    for (i, &end) in ends.iter().enumerate() {
        let chunk = &text[start..end];
        let eos = i + 1 == ends.len();
        match r.feed(chunk, eos) {
            Forward::Unchanged => sent.extend_from_slice(chunk),
            Forward::Replace(bytes) => sent.extend_from_slice(bytes),
        }
        if let Some(s) = &r.strip {
            assert!(s.held.len() <= MAX_HELD_BYTES, "held bytes stay bounded");
        }
        after_each.push(sent.clone());
        start = end;
    }
    (sent, r.finish(), after_each)
}

fn triple(u: &Usage) -> (u64, u64, u64) {
    (u.input_tokens(), u.output_tokens(), u.total_tokens())
}

/// The usage read from `text` cut at `cuts` (every byte must be sent on unchanged).
fn usage_of(text: &str, cuts: &[usize]) -> Usage {
    let mut r = SseReader::new(false);
    let mut start = 0;
    for &end in cuts.iter().chain([&text.len()]) {
        assert_eq!(r.feed(&text.as_bytes()[start..end], end == text.len()), Forward::Unchanged);
        start = end;
    }
    r.finish()
}

fn expect(text: &str, tokens: (u64, u64, u64)) {
    // Whole, then split at every byte in two, then one byte at a time.
    for cut in 0..=text.len() {
        assert_eq!(triple(&usage_of(text, &[cut])), tokens, "cut at {cut}");
    }
    let every: Vec<usize> = (1..text.len()).collect();
    assert_eq!(triple(&usage_of(text, &every)), tokens);
}

#[test]
fn every_shape_split_at_every_byte() {
    expect(OPENAI, (5, 7, 12));
    expect(ANTHROPIC, (9, 30, 39));
    expect(GEMINI, (4, 6, 10));
    expect(RESPONSES, (3, 4, 7));
    expect(GROQ, (21, 9, 30));
    expect(&OPENAI.replace('\n', "\r"), (5, 7, 12));
}

#[test]
fn multi_line_data_fields_without_space_and_missing_final_blank_line() {
    let text = "data: {\"usage\":\ndata: {\"total_tokens\": 5}}";
    assert_eq!(usage_of(text, &[]).total_tokens(), 5);
    let no_space = "data:{\"usage\":{\"total_tokens\":6}}\n\n";
    assert_eq!(usage_of(no_space, &[]).total_tokens(), 6);
    let two_spaces = "data:  {\"usage\":{\"total_tokens\":7}}\n\n";
    assert_eq!(usage_of(two_spaces, &[]).total_tokens(), 7, "the second space is JSON whitespace");
    let fields = "id: 1\nevent: x\nretry: 10\ndatum: {\"usage\":{\"total_tokens\":1}}\n: data: {}\ndata\ndata: {\"usage\":{\"total_tokens\":8}}\n\n";
    assert_eq!(usage_of(fields, &[]).total_tokens(), 8, "only data lines are read");
}

#[test]
fn events_of_any_size_are_read() {
    // A Responses `response.completed` that repeats a 2 MB output before its usage.
    let image = "A".repeat(2 << 20);
    let text = format!(
        "event: response.completed\ndata: {{\"type\":\"response.completed\",\"response\":{{\"output\":[{{\"result\":\"{image}\"}}],\
         \"usage\":{{\"input_tokens\":25,\"output_tokens\":10,\"total_tokens\":35}}}}}}\n\n"
    );
    let cuts: Vec<usize> = (1..text.len()).step_by(16_384).collect();
    assert_eq!(triple(&usage_of(&text, &cuts)), (25, 10, 35));
}

#[test]
fn garbage_never_harms_the_next_event() {
    let mut r = SseReader::new(false);
    r.feed(b"data: {not json usage\n\n", false);
    r.feed(&vec![b'x'; 300_000], false);
    r.feed(b"\n\n", false);
    r.feed(&[0xff, 0xfe, b'\n', b'\n'], false);
    r.feed(b"data: {\"usage\":{\"total_tokens\":3}}\n\n", false);
    assert_eq!(r.finish().total_tokens(), 3);
}

// ---------------------------------------------------------------------------------------------
// Withholding the usage-only chunk.

/// `text` without the event that starts at `from` (its block up to and including the line end
/// of its blank line).
fn without_event(text: &str, starting: &str) -> String {
    let from = text.find(starting).unwrap();
    let rest = &text[from..];
    let end =
        ["\r\n\r\n", "\n\n", "\r\r"].iter().filter_map(|sep| rest.find(sep).map(|i| i + sep.len())).min().unwrap();
    format!("{}{}", &text[..from], &rest[end..])
}

/// Positions just past each event's blank line (its full line end).
fn event_ends(text: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut i = 0;
    let mut line_empty = true;
    while i < text.len() {
        match text[i] {
            b'\r' | b'\n' => {
                let len = if text[i] == b'\r' && text.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                if line_empty {
                    ends.push(i + len);
                }
                line_empty = true;
                i += len;
            }
            _ => {
                line_empty = false;
                i += 1;
            }
        }
    }
    ends
}

/// Fed split at `cuts` with stripping on: the client gets `expected`; after every chunk it has
/// every complete event (nothing complete is held), and nothing that is not in `expected`.
fn strips_to(text: &str, cuts: &[usize], expected: &str) {
    let (sent, _, after_each) = run(text.as_bytes(), cuts, true);
    assert_eq!(String::from_utf8_lossy(&sent), expected, "cuts {cuts:?}");
    let ends = event_ends(text.as_bytes());
    for (i, sent_so_far) in after_each.iter().enumerate() {
        assert!(expected.as_bytes().starts_with(sent_so_far), "cuts {cuts:?}: chunk {i} sent bytes not in the stream");
        let fed = cuts.get(i).copied().unwrap_or(text.len());
        let complete = ends.iter().copied().filter(|&e| e <= fed).max().unwrap_or(0);
        let (must, _, _) = run(&text.as_bytes()[..complete], &[], true);
        assert!(
            sent_so_far.len() >= must.len(),
            "cuts {cuts:?}: after chunk {i} ({fed} bytes fed) only {} of the {} bytes of complete events were sent",
            sent_so_far.len(),
            must.len()
        );
    }
}

fn strips_to_however_split(text: &str, expected: &str) {
    for cut in 0..=text.len() {
        strips_to(text, &[cut], expected);
    }
    for a in (0..text.len()).step_by(7) {
        for b in (a..text.len()).step_by(11) {
            strips_to(text, &[a, b], expected);
        }
    }
    let every: Vec<usize> = (1..text.len()).collect();
    strips_to(text, &every, expected);
}

#[test]
fn the_usage_only_chunk_is_withheld_at_every_split() {
    let expected = without_event(OPENAI, "data: {\"choices\":[],");
    assert!(!expected.contains("prompt_tokens") && expected.contains("\"usage\":null"));
    strips_to_however_split(OPENAI, &expected);
    for line_end in ["\r\n", "\r"] {
        let text = OPENAI.replace('\n', line_end);
        strips_to_however_split(&text, &expected.replace('\n', line_end));
    }
    // The usage is still read.
    let (_, usage, _) = run(OPENAI.as_bytes(), &[3, 90], true);
    assert_eq!(triple(&usage), (5, 7, 12));
}

#[test]
fn legacy_completions_with_usage_before_choices_and_spaced_json() {
    let text = "data: {\"choices\":[{\"text\":\"a\"}],\"usage\":null}\n\n\
data: {\"id\":\"c\",\"usage\": {\"prompt_tokens\": 31, \"completion_tokens\": 25, \"total_tokens\": 56} ,\"choices\" : [ ] }\n\n\
data: [DONE]\n\n";
    strips_to_however_split(text, &without_event(text, "data: {\"id\""));
    assert_eq!(triple(&run(text.as_bytes(), &[], true).1), (31, 25, 56));
}

#[test]
fn only_that_chunk_is_withheld() {
    // Azure's first chunk: choices [] and prompt_filter_results, no usage.
    let azure = "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"prompt_filter_results\":[{\"prompt_index\":0}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":null}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":15,\"completion_tokens\":78,\"total_tokens\":93}}\n\n\
data: [DONE]\n\n";
    strips_to_however_split(azure, &without_event(azure, "data: {\"choices\":[],\"usage\""));
    // vLLM's continuous usage (usage with non-empty choices), Groq's usage in the last content
    // chunk, Anthropic, Gemini, Responses, comments: nothing is withheld.
    let vllm = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":46,\"completion_tokens\":1}}\n\n\
data: [DONE]\n\n";
    for text in [vllm, GROQ, ANTHROPIC, GEMINI, RESPONSES] {
        strips_to_however_split(text, text);
    }
    // A usage that is null, or choices that are not an empty array.
    let lookalikes =
        "data: {\"choices\":[],\"usage\":null}\n\ndata: {\"choices\":{},\"usage\":{\"total_tokens\":1}}\n\n\
data: {\"choices\":[],\"usage\":[1]}\n\ndata: [{\"choices\":[],\"usage\":{}}]\n\n";
    strips_to_however_split(lookalikes, lookalikes);
}

#[test]
fn without_stripping_every_chunk_is_forwarded_unchanged() {
    let mut r = SseReader::new(false);
    for piece in OPENAI.as_bytes().chunks(5) {
        assert_eq!(r.feed(piece, false), Forward::Unchanged);
    }
    assert_eq!(r.feed(b"", true), Forward::Unchanged);
}

#[test]
fn chunks_of_complete_events_are_forwarded_without_a_copy() {
    let mut r = SseReader::new(true);
    let first = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
    assert_eq!(r.feed(first.as_bytes(), false), Forward::Unchanged);
    // An event cut after its choices are known is not held either.
    assert_eq!(r.feed(b"data: {\"choices\":[{\"delta\"", false), Forward::Unchanged);
    assert_eq!(r.feed(b":{}}]}\n\n", false), Forward::Unchanged);
    // One that may be the usage chunk is held until it is known.
    assert_eq!(r.feed(b"data: {\"id\":\"x\",", false), Forward::Replace(b""));
    assert_eq!(r.feed(b"\"choices\":[{}]}\n\n", false), Forward::Replace(b"data: {\"id\":\"x\",\"choices\":[{}]}\n\n"));
    assert_eq!(r.stripped(), 0);
}

#[test]
fn held_bytes_are_released_at_the_end_of_the_stream_and_beyond_the_cap() {
    // The stream ends inside a possible usage chunk: everything is sent.
    let cut_short = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}";
    let (sent, usage, _) = run(cut_short.as_bytes(), &[10, 20], true);
    assert_eq!(sent, cut_short.as_bytes());
    assert_eq!(usage.input, Some(1));
    // The end of the stream as an empty last chunk.
    let mut r = SseReader::new(true);
    assert_eq!(r.feed(b"data: {\"choices\":[]", false), Forward::Replace(b""));
    assert_eq!(r.feed(b"", true), Forward::Replace(b"data: {\"choices\":[]"));
    // An event bigger than the cap is let go, and passes whole even if it is a usage chunk.
    let pad = "p".repeat(MAX_HELD_BYTES);
    let big =
        format!("data: {{\"choices\":[],\"pad\":\"{pad}\",\"usage\":{{\"total_tokens\":2}}}}\n\ndata: [DONE]\n\n");
    let cuts: Vec<usize> = (1..big.len()).step_by(4096).collect();
    let (sent, usage, _) = run(big.as_bytes(), &cuts, true);
    assert_eq!(sent, big.as_bytes());
    assert_eq!(usage.total, Some(2));
    let (sent, _, _) = run(big.as_bytes(), &[], true);
    assert_eq!(sent, big.as_bytes(), "the same when it comes in one chunk: what is sent does not depend on the split");
}

#[test]
fn a_stripped_crlf_event_takes_its_line_feed_along_even_in_the_next_chunk() {
    let text = "data: {\"choices\":[],\"usage\":{\"total_tokens\":2}}\r\n\r\ndata: [DONE]\r\n\r\n";
    let cr = text.find("\r\n\r\n").unwrap() + 3; // just past the blank line's '\r'
    let (sent, _, _) = run(text.as_bytes(), &[cr], true);
    assert_eq!(String::from_utf8_lossy(&sent), "data: [DONE]\r\n\r\n");
}
