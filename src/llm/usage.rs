//! Token usage as LLM providers report it, found in a JSON value (a whole response body or
//! one SSE event) by trying each provider's known locations in order.

use serde_json::Value;

/// Tokens of one response. Fields stay None until some event reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub total: Option<u64>,
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
    pub fn merge(&mut self, later: Usage) {
        if later.input.is_some() {
            self.input = later.input;
        }
        if later.output.is_some() {
            self.output = later.output;
        }
        if later.total.is_some() {
            self.total = later.total;
        }
    }
}

fn num(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn sum(parts: &[Option<u64>]) -> Option<u64> {
    parts.iter().flatten().copied().reduce(u64::saturating_add)
}

/// OpenAI (`prompt_tokens`/`completion_tokens`, or the Responses API's `input_tokens`/
/// `output_tokens`) and Anthropic (`input_tokens` plus cache tokens, `output_tokens`).
fn from_usage_object(u: &Value) -> Usage {
    if !u.is_object() {
        return Usage::default();
    }
    let input = num(u, "prompt_tokens").or_else(|| {
        sum(&[num(u, "input_tokens"), num(u, "cache_creation_input_tokens"), num(u, "cache_read_input_tokens")])
    });
    let output = num(u, "completion_tokens").or_else(|| num(u, "output_tokens"));
    Usage { input, output, total: num(u, "total_tokens") }
}

/// Gemini's `usageMetadata`.
fn from_gemini(m: &Value) -> Usage {
    Usage {
        input: num(m, "promptTokenCount"),
        output: sum(&[num(m, "candidatesTokenCount"), num(m, "thoughtsTokenCount")]),
        total: num(m, "totalTokenCount"),
    }
}

/// The usage in one JSON document, trying in order: `usage` (OpenAI chat, completions,
/// embeddings, Responses; Anthropic messages and message_delta), `response.usage`
/// (Responses API stream: response.completed), `message.usage` (Anthropic message_start),
/// `usageMetadata` (Gemini).
pub fn find_usage(doc: &Value) -> Usage {
    let candidates = [
        doc.get("usage").map(from_usage_object),
        doc.get("response").and_then(|r| r.get("usage")).map(from_usage_object),
        doc.get("message").and_then(|m| m.get("usage")).map(from_usage_object),
        doc.get("usageMetadata").map(from_gemini),
    ];
    candidates.into_iter().flatten().find(|u| !u.is_empty()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_provider_shape() {
        let openai = json!({"usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}});
        assert_eq!(find_usage(&openai), Usage { input: Some(5), output: Some(7), total: Some(12) });
        let embeddings = json!({"usage": {"prompt_tokens": 8, "total_tokens": 8}});
        assert_eq!(find_usage(&embeddings).total_tokens(), 8);
        let responses = json!({"type": "response.completed", "response": {"usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}});
        assert_eq!(find_usage(&responses), Usage { input: Some(3), output: Some(4), total: Some(7) });
        let anthropic = json!({"usage": {"input_tokens": 10, "cache_read_input_tokens": 2, "output_tokens": 20}});
        assert_eq!(find_usage(&anthropic), Usage { input: Some(12), output: Some(20), total: None });
        assert_eq!(find_usage(&anthropic).total_tokens(), 32);
        let start = json!({"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}});
        assert_eq!(find_usage(&start).input, Some(9));
        let gemini =
            json!({"usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6, "totalTokenCount": 10}});
        assert_eq!(find_usage(&gemini), Usage { input: Some(4), output: Some(6), total: Some(10) });
        assert!(find_usage(&json!({"usage": null})).is_empty());
        assert!(find_usage(&json!({"choices": []})).is_empty());
    }

    #[test]
    fn anthropic_stream_merges_input_from_start_and_cumulative_output_from_last_delta() {
        let mut u = Usage::default();
        u.merge(find_usage(&json!({"message": {"usage": {"input_tokens": 9, "output_tokens": 1}}})));
        u.merge(find_usage(&json!({"usage": {"output_tokens": 15}})));
        u.merge(find_usage(&json!({"usage": {"output_tokens": 30}})));
        assert_eq!(u, Usage { input: Some(9), output: Some(30), total: None });
        assert_eq!(u.total_tokens(), 39);
    }
}
