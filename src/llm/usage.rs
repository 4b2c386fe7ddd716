//! Token usage as LLM providers report it, and how each provider's usage object is read.
//! Invariant: one place decides what every unit is charged from (docs/usage.md): the
//! incremental readers hand each usage value they find to `usage_at`, and `find_usage` (the
//! same conventions over a whole parsed document) is the reference they are tested against.

use serde_json::Value;

/// Tokens of one response. Fields stay None until some report gives them.
///
/// `input`, `output` and `total` are what the units charge. The cache fields are recorded
/// (not priced yet) and are parts of `input`, not additions to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub total: Option<u64>,
    /// Input tokens served from a prompt cache: OpenAI `prompt_tokens_details.cached_tokens`
    /// (Responses: `input_tokens_details.cached_tokens`), Anthropic `cache_read_input_tokens`,
    /// Gemini `cachedContentTokenCount`, DeepSeek `prompt_cache_hit_tokens`.
    pub cached_input: Option<u64>,
    /// Input tokens written to a prompt cache: Anthropic `cache_creation_input_tokens`.
    pub cache_write: Option<u64>,
    /// The part of `cache_write` cached for 5 minutes (`cache_creation.ephemeral_5m_input_tokens`).
    pub cache_write_5m: Option<u64>,
    /// The part of `cache_write` cached for 1 hour (`cache_creation.ephemeral_1h_input_tokens`).
    pub cache_write_1h: Option<u64>,
}

impl Usage {
    pub fn is_empty(&self) -> bool {
        self.input.is_none() && self.output.is_none() && self.total.is_none()
    }

    pub fn input_tokens(&self) -> u64 {
        self.input.unwrap_or(0)
    }

    pub fn output_tokens(&self) -> u64 {
        self.output.unwrap_or(0)
    }

    /// The reported total, else input + output.
    pub fn total_tokens(&self) -> u64 {
        self.total.unwrap_or_else(|| self.input_tokens().saturating_add(self.output_tokens()))
    }

    /// Later reports replace earlier ones field by field (streams report cumulative counts:
    /// Anthropic's message_delta carries the output so far, Gemini every chunk's totals).
    /// The 5m/1h split describes one `cache_write` figure: a later, different figure without
    /// a split leaves the split unknown rather than stale.
    pub fn merge(&mut self, later: Usage) {
        fn take(field: &mut Option<u64>, later: Option<u64>) {
            if later.is_some() {
                *field = later;
            }
        }
        take(&mut self.input, later.input);
        take(&mut self.output, later.output);
        take(&mut self.total, later.total);
        take(&mut self.cached_input, later.cached_input);
        let split_given = later.cache_write_5m.is_some() || later.cache_write_1h.is_some();
        if later.cache_write.is_some() && later.cache_write != self.cache_write && !split_given {
            self.cache_write_5m = None;
            self.cache_write_1h = None;
        }
        take(&mut self.cache_write, later.cache_write);
        take(&mut self.cache_write_5m, later.cache_write_5m);
        take(&mut self.cache_write_1h, later.cache_write_1h);
    }
}

/// Where a usage value sits in a response document (the top-level object of a JSON body or
/// SSE event, or each element of a top-level array), in the order they are tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// `usage`: OpenAI chat, completions, embeddings, Responses; Anthropic messages and
    /// message_delta; every OpenAI-compatible server.
    Usage,
    /// `response.usage`: the Responses API stream's `response.completed`.
    ResponseUsage,
    /// `message.usage`: Anthropic's `message_start`.
    MessageUsage,
    /// `usageMetadata`: Gemini and Vertex AI.
    UsageMetadata,
    /// `x_groq.usage`: Groq, read only when none of the above is there.
    XGroqUsage,
}

impl Location {
    /// Every location, in the order they are tried.
    pub const ALL: [Location; 5] = [
        Location::Usage,
        Location::ResponseUsage,
        Location::MessageUsage,
        Location::UsageMetadata,
        Location::XGroqUsage,
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The usage a value found at `location` reports (empty when it reports none).
pub fn usage_at(location: Location, value: &Value) -> Usage {
    match location {
        Location::UsageMetadata => from_gemini(value),
        _ => from_usage_object(value),
    }
}

fn num(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn sum(parts: &[Option<u64>]) -> Option<u64> {
    parts.iter().flatten().copied().reduce(u64::saturating_add)
}

/// Sum of one field over Anthropic's `iterations` (None when no iteration reports it).
fn sum_over(items: &[Value], field: impl Fn(&Value) -> Option<u64>) -> Option<u64> {
    items.iter().filter_map(field).reduce(u64::saturating_add)
}

/// Anthropic input of one usage object or iteration: uncached + cache writes + cache reads.
fn anthropic_input(u: &Value) -> Option<u64> {
    sum(&[num(u, "input_tokens"), num(u, "cache_creation_input_tokens"), num(u, "cache_read_input_tokens")])
}

fn ttl_5m(u: &Value) -> Option<u64> {
    u.get("cache_creation").and_then(|c| num(c, "ephemeral_5m_input_tokens"))
}

fn ttl_1h(u: &Value) -> Option<u64> {
    u.get("cache_creation").and_then(|c| num(c, "ephemeral_1h_input_tokens"))
}

/// OpenAI (`prompt_tokens`/`completion_tokens`, the Responses API's `input_tokens`/
/// `output_tokens`), Anthropic (`input_tokens` plus cache tokens, `output_tokens`; with
/// server-side compaction the sums over `iterations`, which is what is billed) and every
/// OpenAI-compatible server (Groq's `x_groq.usage` has the same shape).
fn from_usage_object(u: &Value) -> Usage {
    if !u.is_object() {
        return Usage::default();
    }
    let iterations = u.get("iterations").and_then(Value::as_array).filter(|items| !items.is_empty());
    let cached_input = u
        .pointer("/prompt_tokens_details/cached_tokens")
        .or_else(|| u.pointer("/input_tokens_details/cached_tokens"))
        .and_then(Value::as_u64)
        .or_else(|| num(u, "prompt_cache_hit_tokens"));
    if let Some(items) = iterations {
        return Usage {
            input: num(u, "prompt_tokens").or_else(|| sum_over(items, anthropic_input)),
            output: num(u, "completion_tokens").or_else(|| sum_over(items, |i| num(i, "output_tokens"))),
            total: num(u, "total_tokens"),
            cached_input: cached_input.or_else(|| sum_over(items, |i| num(i, "cache_read_input_tokens"))),
            cache_write: sum_over(items, |i| num(i, "cache_creation_input_tokens")),
            cache_write_5m: sum_over(items, ttl_5m),
            cache_write_1h: sum_over(items, ttl_1h),
        };
    }
    Usage {
        input: num(u, "prompt_tokens").or_else(|| anthropic_input(u)),
        output: num(u, "completion_tokens").or_else(|| num(u, "output_tokens")),
        total: num(u, "total_tokens"),
        cached_input: cached_input.or_else(|| num(u, "cache_read_input_tokens")),
        cache_write: num(u, "cache_creation_input_tokens"),
        cache_write_5m: ttl_5m(u),
        cache_write_1h: ttl_1h(u),
    }
}

/// Gemini's `usageMetadata`: the tool-use prompt (e.g. search grounding results) is billed as
/// input, thinking as output; the total is Gemini's own.
fn from_gemini(m: &Value) -> Usage {
    if !m.is_object() {
        return Usage::default();
    }
    Usage {
        input: sum(&[num(m, "promptTokenCount"), num(m, "toolUsePromptTokenCount")]),
        output: sum(&[num(m, "candidatesTokenCount"), num(m, "thoughtsTokenCount")]),
        total: num(m, "totalTokenCount"),
        cached_input: num(m, "cachedContentTokenCount"),
        ..Usage::default()
    }
}

/// The usage in one parsed document: the first location (in `Location::ALL` order) whose
/// value reports some. The incremental readers (`json_scan`) find the same without parsing
/// the document; this is their reference.
pub fn find_usage(doc: &Value) -> Usage {
    Location::ALL
        .iter()
        .filter_map(|&loc| {
            let value = match loc {
                Location::Usage => doc.get("usage"),
                Location::ResponseUsage => doc.get("response").and_then(|r| r.get("usage")),
                Location::MessageUsage => doc.get("message").and_then(|m| m.get("usage")),
                Location::UsageMetadata => doc.get("usageMetadata"),
                Location::XGroqUsage => doc.get("x_groq").and_then(|x| x.get("usage")),
            }?;
            Some(usage_at(loc, value))
        })
        .find(|u| !u.is_empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tokens(input: u64, output: u64, total: Option<u64>) -> Usage {
        Usage { input: Some(input), output: Some(output), total, ..Usage::default() }
    }

    #[test]
    fn every_provider_shape() {
        let openai = json!({"usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}});
        assert_eq!(find_usage(&openai), tokens(5, 7, Some(12)));
        let embeddings = json!({"usage": {"prompt_tokens": 8, "total_tokens": 8}});
        assert_eq!(find_usage(&embeddings).total_tokens(), 8);
        assert_eq!(find_usage(&embeddings).output_tokens(), 0);
        let responses = json!({"type": "response.completed", "response": {"usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}});
        assert_eq!(find_usage(&responses), tokens(3, 4, Some(7)));
        let anthropic = json!({"usage": {"input_tokens": 10, "cache_read_input_tokens": 2, "output_tokens": 20}});
        assert_eq!(find_usage(&anthropic), Usage { cached_input: Some(2), ..tokens(12, 20, None) });
        assert_eq!(find_usage(&anthropic).total_tokens(), 32);
        let start = json!({"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}});
        assert_eq!(find_usage(&start).input, Some(9));
        let gemini =
            json!({"usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6, "totalTokenCount": 10}});
        assert_eq!(find_usage(&gemini), tokens(4, 6, Some(10)));
        assert!(find_usage(&json!({"usage": null})).is_empty());
        assert!(find_usage(&json!({"usage": 3})).is_empty());
        assert!(find_usage(&json!({"usageMetadata": [1]})).is_empty());
        assert!(find_usage(&json!({"choices": []})).is_empty());
        assert!(find_usage(&json!([{"usage": {"total_tokens": 1}}])).is_empty(), "arrays are read element-wise");
    }

    #[test]
    fn groq_x_groq_usage_only_when_there_is_no_top_level_usage() {
        let x_groq_only = json!({"choices": [], "x_groq": {"id": "req_1", "usage": {"prompt_tokens": 21, "completion_tokens": 988, "total_tokens": 1009}}});
        assert_eq!(find_usage(&x_groq_only), tokens(21, 988, Some(1009)));
        let both = json!({"x_groq": {"usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
                          "usage": {"prompt_tokens": 304, "completion_tokens": 49, "total_tokens": 353}});
        assert_eq!(find_usage(&both), tokens(304, 49, Some(353)));
        let null_usage = json!({"usage": null, "x_groq": {"usage": {"total_tokens": 5}}});
        assert_eq!(find_usage(&null_usage).total_tokens(), 5);
    }

    #[test]
    fn gemini_tool_use_prompt_is_input_and_thoughts_are_output() {
        let grounded = json!({"usageMetadata": {"candidatesTokenCount": 194, "promptTokenCount": 13,
            "toolUsePromptTokenCount": 289, "totalTokenCount": 496, "cachedContentTokenCount": 7}});
        let u = find_usage(&grounded);
        assert_eq!((u.input_tokens(), u.output_tokens(), u.total_tokens()), (302, 194, 496));
        assert_eq!(u.cached_input, Some(7));
        let thinking = json!({"usageMetadata": {"candidatesTokenCount": 9, "promptTokenCount": 9,
            "thoughtsTokenCount": 34, "totalTokenCount": 52}});
        assert_eq!(find_usage(&thinking), tokens(9, 43, Some(52)));
    }

    #[test]
    fn anthropic_compaction_charges_the_sum_over_iterations() {
        let delta = json!({"type": "message_delta", "usage": {"input_tokens": 181, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "output_tokens": 8, "iterations": [
            {"input_tokens": 100, "output_tokens": 83, "cache_read_input_tokens": 55096, "cache_creation_input_tokens": 0,
             "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}, "type": "compaction"},
            {"input_tokens": 181, "output_tokens": 8, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
             "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}, "type": "message"}]}});
        let u = find_usage(&delta);
        assert_eq!((u.input_tokens(), u.output_tokens(), u.total_tokens()), (55377, 91, 55468));
        assert_eq!(
            (u.cached_input, u.cache_write, u.cache_write_5m, u.cache_write_1h),
            (Some(55096), Some(0), Some(0), Some(0))
        );
        let empty_iterations = json!({"usage": {"input_tokens": 5, "output_tokens": 1, "iterations": []}});
        assert_eq!(find_usage(&empty_iterations), tokens(5, 1, None));
    }

    #[test]
    fn cached_and_cache_write_tokens_are_recorded() {
        let chat = json!({"usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0}}});
        assert_eq!(find_usage(&chat).cached_input, Some(1920));
        let responses = json!({"response": {"usage": {"input_tokens": 9463, "input_tokens_details": {"cached_tokens": 8320},
            "output_tokens": 582, "output_tokens_details": {"reasoning_tokens": 512}, "total_tokens": 10045}}});
        let u = find_usage(&responses);
        assert_eq!((u.input, u.cached_input, u.cache_write), (Some(9463), Some(8320), None));
        let anthropic = json!({"usage": {"input_tokens": 3, "cache_creation_input_tokens": 418, "cache_read_input_tokens": 1111,
            "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 18}, "output_tokens": 33}});
        let u = find_usage(&anthropic);
        assert_eq!(u.input, Some(1532));
        assert_eq!(
            (u.cached_input, u.cache_write, u.cache_write_5m, u.cache_write_1h),
            (Some(1111), Some(418), Some(400), Some(18))
        );
        let deepseek = json!({"usage": {"prompt_tokens": 12, "completion_tokens": 7, "prompt_cache_hit_tokens": 4, "prompt_cache_miss_tokens": 8}});
        assert_eq!(find_usage(&deepseek).cached_input, Some(4));
        let none = json!({"usage": {"prompt_tokens": 1, "completion_tokens": 2}});
        let u = find_usage(&none);
        assert_eq!((u.cached_input, u.cache_write, u.cache_write_5m, u.cache_write_1h), (None, None, None, None));
    }

    #[test]
    fn anthropic_stream_merges_input_from_start_and_cumulative_output_from_last_delta() {
        let mut u = Usage::default();
        u.merge(find_usage(&json!({"message": {"usage": {"input_tokens": 9, "output_tokens": 1}}})));
        u.merge(find_usage(&json!({"usage": {"output_tokens": 15}})));
        u.merge(find_usage(&json!({"usage": {"output_tokens": 30}})));
        assert_eq!(u, tokens(9, 30, None));
        assert_eq!(u.total_tokens(), 39);
    }

    #[test]
    fn a_later_cache_write_figure_without_a_split_drops_the_stale_split() {
        let start = find_usage(&json!({"message": {"usage": {"input_tokens": 2, "cache_creation_input_tokens": 3068,
            "cache_read_input_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 3068, "ephemeral_1h_input_tokens": 0}}}}));
        let same = find_usage(&json!({"usage": {"output_tokens": 5, "cache_creation_input_tokens": 3068}}));
        let grown = find_usage(&json!({"usage": {"input_tokens": 6, "cache_creation_input_tokens": 3337,
            "cache_read_input_tokens": 6289, "output_tokens": 198}}));
        let mut u = start;
        u.merge(same);
        assert_eq!((u.cache_write, u.cache_write_5m, u.cache_write_1h), (Some(3068), Some(3068), Some(0)));
        u.merge(grown);
        assert_eq!((u.input, u.cached_input, u.cache_write), (Some(9632), Some(6289), Some(3337)));
        assert_eq!((u.cache_write_5m, u.cache_write_1h), (None, None), "the split of 3068 does not describe 3337");
    }
}
