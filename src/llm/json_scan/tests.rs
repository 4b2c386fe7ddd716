//! Tests of the incremental JSON scanner: the same usage as `find_usage` on the parsed text,
//! however the text is split; the top-level facts the stream stripper relies on; bodies of any
//! size with bounded memory; malformed input.

use super::*;
use crate::llm::usage::find_usage;
use proptest::prelude::*;
use serde_json::{json, Value};

fn scan(pieces: &[&[u8]]) -> (Usage, TopLevel, u32) {
    let mut s = JsonScanner::new();
    for p in pieces {
        s.feed(p);
    }
    let top = s.top_level();
    let oversized = s.oversized();
    (s.finish_text(), top, oversized)
}

/// The reference: `find_usage` on the document, or on each element of a top-level array
/// (the last usage winning field by field).
fn reference(doc: &Value) -> Usage {
    match doc.as_array() {
        Some(items) => items.iter().fold(Usage::default(), |mut u, d| {
            u.merge(find_usage(d));
            u
        }),
        None => find_usage(doc),
    }
}

/// Whole, split in two at every byte, and byte by byte: always the same result.
fn same_however_split(text: &[u8]) -> (Usage, TopLevel, u32) {
    let whole = scan(&[text]);
    for cut in 0..=text.len() {
        let (a, b) = text.split_at(cut);
        assert_eq!(scan(&[a, b]), whole, "cut at {cut} of {}", String::from_utf8_lossy(text));
    }
    let bytes: Vec<&[u8]> = text.chunks(1).collect();
    assert_eq!(scan(&bytes), whole, "byte by byte");
    whole
}

fn agrees(doc: &Value) {
    let text = doc.to_string();
    let (usage, _, _) = same_however_split(text.as_bytes());
    assert_eq!(usage, reference(doc), "{text}");
    let pretty = serde_json::to_string_pretty(doc).unwrap();
    assert_eq!(scan(&[pretty.as_bytes()]).0, reference(doc), "{pretty}");
}

#[test]
fn every_provider_shape_agrees_with_the_parsed_document() {
    for doc in [
        json!({"id": "c", "choices": [{"message": {"content": "usage: {\"usage\": 1}"}}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
                         "prompt_tokens_details": {"cached_tokens": 3}}}),
        json!({"object": "list", "data": [{"embedding": [0.1, -2e-3, 3]}], "usage": {"prompt_tokens": 8, "total_tokens": 8}}),
        json!({"type": "response.completed", "response": {"id": "r", "output": [{"usage": {"total_tokens": 99}}],
               "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7, "input_tokens_details": {"cached_tokens": 1}}}}),
        json!({"type": "message_start", "message": {"content": [], "usage": {"input_tokens": 9, "output_tokens": 1,
               "cache_creation": {"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 0}, "cache_creation_input_tokens": 2}}}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 30}}),
        json!({"candidates": [{"content": {"parts": [{"text": "hi"}]}}],
               "usageMetadata": {"promptTokenCount": 13, "toolUsePromptTokenCount": 289, "candidatesTokenCount": 194,
                                 "totalTokenCount": 496, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 13}]}}),
        json!({"choices": [{"delta": {}}], "x_groq": {"id": "req", "usage": {"prompt_tokens": 21, "completion_tokens": 988, "total_tokens": 1009}}}),
        json!({"x_groq": {"usage": {"prompt_tokens": 1}}, "usage": {"prompt_tokens": 304, "completion_tokens": 49}}),
        json!({"usage": null, "choices": [{"delta": {"content": "x"}}]}),
        json!({"usage": {}, "usageMetadata": {"promptTokenCount": 4}}),
        json!({"usage": [1, 2], "message": "not an object", "response": null}),
        json!({"nested": {"usage": {"total_tokens": 1}}, "a": [{"usage": {"total_tokens": 2}}]}),
        json!([{"usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1, "totalTokenCount": 5}},
               {"candidates": []},
               {"usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6, "totalTokenCount": 10}}]),
        json!([1, "usage", [{"usage": {"total_tokens": 3}}], {"usage": {"total_tokens": 3}}, null]),
        json!([]),
        json!({}),
        json!("usage"),
        json!(12),
    ] {
        agrees(&doc);
    }
}

#[test]
fn strings_with_escapes_and_look_alike_content_are_not_usage() {
    for text in [
        r#"{"text": "\"usage\": {\"total_tokens\": 5}", "usage": {"total_tokens": 1}}"#,
        r#"{"text": "ends with a backslash \\", "usage": {"total_tokens": 2}}"#,
        r#"{"te\"xt": "\\\"", "usage": {"total_tokens": 3, "note": "}]\\"}}"#,
        r#"{"a\\": {"usage": {"total_tokens": 9}}, "usage": {"total_tokens": 4}}"#,
        "{\"emoji\": \"\u{1f600} \\ud83d\\ude00\", \"usage\": {\"total_tokens\": 5}}",
    ] {
        let doc: Value = serde_json::from_str(text).unwrap();
        let (usage, _, _) = same_however_split(text.as_bytes());
        assert_eq!(usage, reference(&doc), "{text}");
        assert!(!usage.is_empty());
    }
}

#[test]
fn top_level_facts_tell_the_usage_only_chunk_from_the_others() {
    let facts = |text: &str| same_however_split(text.as_bytes()).1;
    let usage_only = facts(r#"{"id":"c","choices":[],"usage":{"prompt_tokens":1}}"#);
    assert_eq!(
        (usage_only.object, usage_only.choices, usage_only.usage),
        (Some(true), Member::EmptyArray, Member::Object)
    );
    let spaced = facts("{ \"usage\" : { } , \"choices\" : [ \r\n ] }");
    assert_eq!((spaced.choices, spaced.usage), (Member::EmptyArray, Member::Object));
    let azure_first = facts(r#"{"choices":[],"id":"","prompt_filter_results":[{"prompt_index":0}]}"#);
    assert_eq!((azure_first.choices, azure_first.usage), (Member::EmptyArray, Member::Unseen));
    let content = facts(r#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#);
    assert_eq!((content.choices, content.usage), (Member::Other, Member::Other));
    let vllm = facts(r#"{"choices":[{"delta":{}}],"usage":{"prompt_tokens":46}}"#);
    assert_eq!((vllm.choices, vllm.usage), (Member::Other, Member::Object));
    let nested = facts(r#"{"x":{"choices":[],"usage":{}}}"#);
    assert_eq!((nested.choices, nested.usage), (Member::Unseen, Member::Unseen));
    assert_eq!(facts("[DONE]").object, Some(false));
    assert_eq!(facts(r#"[{"choices":[],"usage":{}}]"#).choices, Member::Unseen, "only the top-level object");
    assert_eq!(facts("").object, None);
    assert!(facts(r#"{"a" 1}"#).broken);
}

#[test]
fn usage_after_megabytes_of_base64_is_found_with_bounded_memory() {
    let image = "iVBORw0KGgo".repeat(200_000); // 2.2 MB
    let text = format!(
        r#"{{"output":[{{"type":"image_generation_call","result":"{image}"}},{{"content":[{{"text":"a \"quote\""}}]}}],"usage":{{"input_tokens":2253,"input_tokens_details":{{"cached_tokens":0}},"output_tokens":1755,"total_tokens":4008}}}}"#
    );
    let mut s = JsonScanner::new();
    for piece in text.as_bytes().chunks(65_521) {
        s.feed(piece);
        assert!(s.captured.capacity() <= MAX_CAPTURE_BYTES, "only the usage value is copied");
    }
    let u = s.finish_text();
    assert_eq!((u.input_tokens(), u.output_tokens(), u.total_tokens(), u.cached_input), (2253, 1755, 4008, Some(0)));
}

#[test]
fn a_usage_value_over_the_cap_is_skipped_and_counted() {
    let pad = "x".repeat(MAX_CAPTURE_BYTES);
    let text =
        format!(r#"[{{"usage":{{"total_tokens":1}}}},{{"usage":{{"total_tokens":2,"pad":"{pad}"}}}},{{"id":1}}]"#);
    let mut s = JsonScanner::new();
    for piece in text.as_bytes().chunks(1000) {
        s.feed(piece);
        assert!(s.captured.capacity() <= MAX_CAPTURE_BYTES + 1000);
    }
    assert_eq!(s.oversized(), 1);
    assert_eq!(s.finish_text().total_tokens(), 1, "the earlier usage stands");
    // Just under the cap is read.
    let pad = "x".repeat(MAX_CAPTURE_BYTES - 40);
    let text = format!(r#"{{"usage":{{"total_tokens":2,"pad":"{pad}"}}}}"#);
    assert_eq!(scan(&[text.as_bytes()]), (Usage { total: Some(2), ..Usage::default() }, scan(&[text.as_bytes()]).1, 0));
}

#[test]
fn malformed_text_counts_what_was_complete_and_nothing_after() {
    let cases: [(&str, Option<u64>); 10] = [
        (r#"{"usage":{"prompt_tokens":5,"completion_tokens":"#, None),
        (r#"{"usage":{"total_tokens":7},"choices":[{"text":"cut"#, Some(7)),
        (r#"{"usage":{"total_tokens":7} "usage":{"total_tokens":8}}"#, Some(7)),
        (r#"{"usage":{"total_tokens":7}]"#, Some(7)),
        (r#"[{"usage":{"total_tokens":1}},{"usage":{"total_tokens":2}}"#, Some(2)),
        (r#"}{"usage":{"total_tokens":1}}"#, None),
        (r#"{"usage":{"total_tokens":-5,"prompt_tokens":1.5}}"#, None),
        (r#"{"usage":{"total_tokens":1}} trailing {"usage":{"total_tokens":2}}"#, Some(1)),
        (r#"{"usage":{"total_tokens":3,}}"#, None),
        ("\u{feff}{\"usage\":{\"total_tokens\":1}}", None),
    ];
    for (text, total) in cases {
        let (u, _, _) = same_however_split(text.as_bytes());
        assert_eq!(u.total, total, "{text}");
    }
    // Invalid UTF-8 outside the usage value does not hide it; inside, it does.
    let outside = b"{\"text\":\"\xff\xfe\",\"usage\":{\"total_tokens\":7}}";
    assert_eq!(same_however_split(outside).0.total, Some(7));
    let inside = b"{\"usage\":{\"total_tokens\":7,\"n\":\"\xff\"}}";
    assert_eq!(same_however_split(inside).0.total, None);
}

#[test]
fn deep_nesting_is_counted_not_stacked() {
    let depth = 1_000_000;
    let text = format!(r#"{{"a":{}{},"usage":{{"total_tokens":3}}}}"#, "[".repeat(depth), "]".repeat(depth));
    assert_eq!(scan(&[text.as_bytes()]).0.total, Some(3));
    // Unbalanced: never closes, nothing after it is read.
    let open = "{\"a\":".to_string() + &"{".repeat(depth);
    assert!(scan(&[open.as_bytes()]).0.is_empty());
}

#[test]
fn the_scanner_is_reusable_after_each_text() {
    let mut s = JsonScanner::new();
    s.feed(br#"{"usage":{"total_tokens":1},"choices":[]}"#);
    assert_eq!(s.finish_text().total, Some(1));
    s.feed(b"[DONE]");
    assert_eq!(s.top_level().object, Some(false));
    assert!(s.finish_text().is_empty());
    s.feed(br#"{"a": {"#);
    assert!(s.finish_text().is_empty());
    s.feed(br#"{"usage":{"total_tokens":2}}"#);
    assert_eq!(s.finish_text().total, Some(2), "a text cut short leaves nothing behind");
}

#[test]
fn find_either_finds_the_first_of_two_bytes_at_every_offset() {
    for len in 0..40 {
        for at in 0..len {
            for (target, other) in [(b'"', b'\\'), (b'\\', b'"')] {
                let mut s = vec![b'a'; len];
                s[at] = target;
                if at + 1 < len {
                    s[at + 1] = other;
                }
                assert_eq!(find_either(&s, b'"', b'\\'), Some(at), "len {len} at {at}");
            }
        }
        // 0x01 bytes after a zero lane must not fool the word test.
        let mut s = vec![0x23u8; len];
        if len > 3 {
            s[2] = b'"';
            s[3] = 0x23 ^ 0x01;
            assert_eq!(find_either(&s, b'"', b'\\'), Some(2));
        }
        assert_eq!(find_either(&vec![b'x'; len], b'"', b'\\'), None);
    }
    let high: Vec<u8> = (0..=255u8).filter(|b| *b != b'"' && *b != b'\\').collect();
    assert_eq!(find_either(&high, b'"', b'\\'), None);
}

#[test]
fn find_structural_finds_exactly_quotes_and_brackets_at_every_offset() {
    for b in 0..=255u8 {
        let structural = matches!(b, b'"' | b'{' | b'}' | b'[' | b']');
        for len in 1..20 {
            for at in 0..len {
                let mut s = vec![b'0'; len];
                s[at] = b;
                let expected = structural.then_some(at);
                assert_eq!(find_structural(&s), expected, "byte {b:#x} at {at} of {len}");
                // The byte after a match cannot hide it.
                if at + 1 < len {
                    s[at + 1] = b'[';
                    assert_eq!(find_structural(&s), Some(if structural { at } else { at + 1 }));
                }
            }
        }
    }
}

/// Arbitrary JSON whose keys are often the ones the scanner looks for.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("usage".to_string()),
        Just("usageMetadata".to_string()),
        Just("response".to_string()),
        Just("message".to_string()),
        Just("x_groq".to_string()),
        Just("choices".to_string()),
        Just("prompt_tokens".to_string()),
        Just("completion_tokens".to_string()),
        Just("total_tokens".to_string()),
        Just("input_tokens".to_string()),
        Just("output_tokens".to_string()),
        Just("cache_read_input_tokens".to_string()),
        Just("promptTokenCount".to_string()),
        Just("candidatesTokenCount".to_string()),
        Just("iterations".to_string()),
        "[a-z\"\\\\{}\\[\\] :,]{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0u64..100_000).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[a-z\"\\\\{}\\[\\] :,\u{e9}\u{1f600}]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_document_split_anywhere_agrees_with_the_parsed_document(
        doc in any_json(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8), pretty in any::<bool>(),
    ) {
        let text = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { doc.to_string() };
        let bytes = text.as_bytes();
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for cut in at {
            pieces.push(&bytes[start..cut]);
            start = cut;
        }
        pieces.push(&bytes[start..]);
        let (usage, top, _) = scan(&pieces);
        prop_assert_eq!(usage, reference(&doc), "{}", text);
        prop_assert!(!top.broken);
        prop_assert_eq!(top.object, Some(doc.is_object()));
        if let Some(obj) = doc.as_object() {
            let expected_choices = match obj.get("choices") {
                None => Member::Unseen,
                Some(Value::Array(a)) if a.is_empty() => Member::EmptyArray,
                Some(Value::Object(_)) => Member::Object,
                Some(_) => Member::Other,
            };
            // Duplicate keys are not produced by the generator (a map), so the last one is the one.
            prop_assert_eq!(top.choices, expected_choices);
            let expected_usage = match obj.get("usage") {
                None => Member::Unseen,
                Some(Value::Object(_)) => Member::Object,
                Some(_) => Member::Other,
            };
            prop_assert_eq!(top.usage, expected_usage);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_never_matters(
        bytes in proptest::collection::vec(prop_oneof![
            Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b'\\'), Just(b':'), Just(b','),
            Just(b' '), Just(b'1'), Just(b'u'), any::<u8>()], 0..300),
        prefix in prop_oneof![Just(&b""[..]), Just(&br#"{"usage":"#[..]), Just(&br#"[{"usage":{"total_tokens":1}},"#[..])],
        cut in any::<prop::sample::Index>(),
    ) {
        let mut text = prefix.to_vec();
        text.extend_from_slice(&bytes);
        let whole = scan(&[&text]);
        let (a, b) = text.split_at(cut.index(text.len() + 1));
        prop_assert_eq!(scan(&[a, b]), whole);
        let ones: Vec<&[u8]> = text.chunks(1).collect();
        prop_assert_eq!(scan(&ones), whole);
    }
}
