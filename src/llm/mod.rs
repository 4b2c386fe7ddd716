//! LLM traffic: what a request asks for (model, max tokens, stream), what to reserve before
//! the response, what the response reports (usage), and what it costs.

pub mod json_scan;
pub mod reader;
pub mod sse;
pub mod usage;

use crate::config::{Estimate, LlmConfig, Price, Unit};
pub use reader::{BodyKind, Forward, ResponseReader};
use serde_json::Value;
pub use usage::{find_usage, Usage};

/// The fields of an LLM request body that limits need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LlmRequest {
    pub model: Option<String>,
    /// `max_tokens`, `max_completion_tokens`, `max_output_tokens` or Gemini's
    /// `generationConfig.maxOutputTokens`.
    pub max_tokens: Option<u64>,
    pub stream: bool,
}

impl LlmRequest {
    pub fn from_body(body: &Value) -> LlmRequest {
        let max_tokens = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_u64))
            .or_else(|| body.pointer("/generationConfig/maxOutputTokens").and_then(Value::as_u64));
        LlmRequest {
            model: body.get("model").and_then(Value::as_str).map(str::to_string),
            max_tokens,
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        }
    }
}

/// Tokens reserved at admission for a rule of `unit`: `max_tokens` for total and output
/// tokens (the output bound; input is charged when usage arrives), or a fixed number.
pub fn estimate_tokens(llm: &LlmConfig, req: &LlmRequest, unit: Unit) -> u64 {
    match llm.estimate {
        Estimate::None => 0,
        Estimate::Fixed(n) => n,
        Estimate::MaxTokens => match unit {
            Unit::Tokens | Unit::OutputTokens | Unit::CostUsd => req.max_tokens.unwrap_or(0),
            _ => 0,
        },
    }
}

/// Which configured price a charge was reserved at, so that it is settled at the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceRef {
    /// `llm.prices[i]`.
    Model(usize),
    /// `llm.default_price`.
    Default,
}

/// The model's price: the configured table, else `default_price`.
pub fn price_ref(llm: &LlmConfig, model: Option<&str>) -> Option<PriceRef> {
    let model = model.unwrap_or("");
    match llm.prices.iter().position(|p| p.model == model) {
        Some(i) => Some(PriceRef::Model(i)),
        None => llm.default_price.as_ref().map(|_| PriceRef::Default),
    }
}

pub fn price_at(llm: &LlmConfig, r: PriceRef) -> Option<&Price> {
    match r {
        PriceRef::Model(i) => llm.prices.get(i),
        PriceRef::Default => llm.default_price.as_ref(),
    }
}

/// The model's price: the configured table, else `default_price`.
pub fn price_of<'a>(llm: &'a LlmConfig, model: Option<&str>) -> Option<&'a Price> {
    price_ref(llm, model).and_then(|r| price_at(llm, r))
}

/// Micro-dollars for `input` and `output` tokens at `price`, rounded up.
pub fn cost_micro_usd(price: &Price, input: u64, output: u64) -> u64 {
    let i = input as u128 * price.input_per_mtok_micro as u128;
    let o = output as u128 * price.output_per_mtok_micro as u128;
    (i + o).div_ceil(1_000_000).min(u64::MAX as u128) as u64
}

/// Units a finished response consumed for a rule of `unit`.
pub fn units_used(unit: Unit, usage: &Usage, price: Option<&Price>) -> u64 {
    match unit {
        Unit::Tokens => usage.total_tokens(),
        Unit::InputTokens => usage.input_tokens(),
        Unit::OutputTokens => usage.output_tokens(),
        Unit::CostUsd => price.map(|p| cost_micro_usd(p, usage.input_tokens(), usage.output_tokens())).unwrap_or(0),
        Unit::Requests | Unit::Concurrent => 1,
    }
}

/// Whether the path is an OpenAI-style endpoint whose streams report usage only when asked.
pub fn asks_for_usage_when_streaming(path: &str) -> bool {
    let p = path.split('?').next().unwrap_or(path);
    p.ends_with("/chat/completions") || p.ends_with("/completions")
}

/// A request body rewritten by `rewrite_body`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewrittenBody {
    pub bytes: Vec<u8>,
    /// `stream_options.include_usage` was added: the client did not ask for the usage chunk,
    /// so it is withheld from the response (`ResponseReader`).
    pub added_include_usage: bool,
}

/// Rewrite a request body: set `stream_options.include_usage` on a streaming OpenAI-style
/// request, and/or replace the model. Returns the new body when something changed.
pub fn rewrite_body(body: &Value, include_usage: bool, set_model: Option<&str>) -> Option<RewrittenBody> {
    // Most bodies need no change: find out before copying the document.
    let obj = body.as_object()?;
    let adds_usage = include_usage
        && obj.get("stream").and_then(Value::as_bool) == Some(true)
        && obj
            .get("stream_options")
            .is_none_or(|o| o.is_object() && o.get("include_usage").and_then(Value::as_bool) != Some(true));
    let sets_model = set_model.is_some_and(|m| obj.get("model").and_then(Value::as_str) != Some(m));
    if !adds_usage && !sets_model {
        return None;
    }
    let mut doc = body.clone();
    let obj = doc.as_object_mut()?;
    let mut changed = false;
    let mut added_include_usage = false;
    if include_usage && obj.get("stream").and_then(Value::as_bool) == Some(true) {
        let opts = obj.entry("stream_options").or_insert_with(|| Value::Object(Default::default()));
        if let Some(o) = opts.as_object_mut() {
            if o.get("include_usage").and_then(Value::as_bool) != Some(true) {
                o.insert("include_usage".into(), Value::Bool(true));
                changed = true;
                added_include_usage = true;
            }
        }
    }
    if let Some(model) = set_model {
        if obj.get("model").and_then(Value::as_str) != Some(model) {
            obj.insert("model".into(), Value::String(model.to_string()));
            changed = true;
        }
    }
    if changed {
        serde_json::to_vec(&doc).ok().map(|bytes| RewrittenBody { bytes, added_include_usage })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn llm() -> LlmConfig {
        LlmConfig {
            estimate: Estimate::MaxTokens,
            prices: vec![Price {
                model: "gpt-4o".into(),
                input_per_mtok_micro: 2_500_000,
                output_per_mtok_micro: 10_000_000,
            }],
            include_usage: true,
            default_price: None,
            usage_header: None,
        }
    }

    #[test]
    fn request_fields_from_every_provider_shape() {
        let r = LlmRequest::from_body(&json!({"model": "gpt-4o", "max_completion_tokens": 50, "stream": true}));
        assert_eq!(r, LlmRequest { model: Some("gpt-4o".into()), max_tokens: Some(50), stream: true });
        let g = LlmRequest::from_body(&json!({"generationConfig": {"maxOutputTokens": 7}}));
        assert_eq!(g.max_tokens, Some(7));
    }

    #[test]
    fn estimates_by_unit() {
        let r = LlmRequest { max_tokens: Some(100), ..Default::default() };
        assert_eq!(estimate_tokens(&llm(), &r, Unit::Tokens), 100);
        assert_eq!(estimate_tokens(&llm(), &r, Unit::InputTokens), 0);
        let fixed = LlmConfig { estimate: Estimate::Fixed(30), ..llm() };
        assert_eq!(estimate_tokens(&fixed, &r, Unit::InputTokens), 30);
    }

    #[test]
    fn cost_in_micro_dollars_rounds_up() {
        let c = llm();
        let p = price_of(&c, Some("gpt-4o")).unwrap();
        // 1000 input at $2.5/M = 2500 µ$; 100 output at $10/M = 1000 µ$.
        assert_eq!(cost_micro_usd(p, 1000, 100), 3500);
        assert_eq!(cost_micro_usd(p, 1, 0), 3);
        assert!(price_of(&c, Some("unknown")).is_none());
    }

    #[test]
    fn include_usage_and_model_rewrites() {
        let b = json!({"model": "gpt-4o", "stream": true, "messages": []});
        let rewritten = rewrite_body(&b, true, None).unwrap();
        assert!(rewritten.added_include_usage);
        let out: Value = serde_json::from_slice(&rewritten.bytes).unwrap();
        assert_eq!(out["stream_options"]["include_usage"], true);
        assert!(rewrite_body(&json!({"stream": false}), true, None).is_none());
        let rewritten = rewrite_body(&b, false, Some("gpt-4o-mini")).unwrap();
        assert!(!rewritten.added_include_usage);
        let out: Value = serde_json::from_slice(&rewritten.bytes).unwrap();
        assert_eq!(out["model"], "gpt-4o-mini");
        assert!(rewrite_body(&json!([1]), true, Some("m")).is_none());
    }

    #[test]
    fn include_usage_is_added_only_when_the_client_did_not_ask_for_it() {
        let asked = json!({"stream": true, "stream_options": {"include_usage": true}});
        assert!(rewrite_body(&asked, true, None).is_none());
        let asked_and_degraded = rewrite_body(&asked, true, Some("m")).unwrap();
        assert!(!asked_and_degraded.added_include_usage, "the model changed, the usage was asked for");
        let said_no =
            json!({"stream": true, "stream_options": {"include_usage": false, "continuous_usage_stats": false}});
        let r = rewrite_body(&said_no, true, None).unwrap();
        assert!(r.added_include_usage);
        let out: Value = serde_json::from_slice(&r.bytes).unwrap();
        assert_eq!(out["stream_options"], json!({"include_usage": true, "continuous_usage_stats": false}));
        let odd_options = json!({"stream": true, "stream_options": "yes"});
        assert!(rewrite_body(&odd_options, true, None).is_none(), "options that are not an object are left alone");
        assert!(rewrite_body(&json!({"stream": true}), false, None).is_none());
    }
}
