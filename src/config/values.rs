//! The configuration's single values, each checked as it is read so that its error names its
//! own field: counts, dollar amounts, durations, names from a fixed list, key sources, address
//! blocks, path prefixes and regexes. Checks that involve several fields are in `compile.rs`.

use super::{ErrorFormat, Estimate, FailureMode, HeaderFormat, MissingKey, Scope, Strategy, Sync, Unit};
use crate::engine::algorithm::Algorithm;
use crate::request::cidr::Cidr;
use crate::request::keys::KeySource;
use crate::time::duration::Duration;
use serde::de::{Error, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A non-negative integer.
pub fn count(v: &Value) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| format!("expected a non-negative integer, got {v}"))
}

/// A strictly positive integer.
pub fn positive(v: &Value) -> Result<u64, String> {
    match count(v)? {
        0 => Err("must be positive".into()),
        n => Ok(n),
    }
}

/// A non-negative finite number.
pub fn non_negative(v: &Value) -> Result<f64, String> {
    match v.as_f64() {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(format!("expected a non-negative number, got {v}")),
    }
}

/// A non-negative integer (`client_ip.trusted_hops`, `response.status`).
pub struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        count(&Value::deserialize(d)?).map(Count).map_err(D::Error::custom)
    }
}

/// A strictly positive integer (`slots.capacity`, `max_body_bytes`, `store.fleet_size`).
pub struct Positive(pub u64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Positive, D::Error> {
        positive(&Value::deserialize(d)?).map(Positive).map_err(D::Error::custom)
    }
}

/// US dollars, a non-negative number (`llm.prices`).
pub struct Usd(pub f64);

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Usd, D::Error> {
        non_negative(&Value::deserialize(d)?).map(Usd).map_err(D::Error::custom)
    }
}

/// A rule's `limit` or `burst` as written: read once the rule's `unit` is known (an integer,
/// or dollars for `cost_usd`), in `compile.rs`.
pub struct Amount(pub Value);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        Value::deserialize(d).map(Amount)
    }
}

/// A positive duration: an integer and a unit (`"250ms"`, `"1m"`).
pub struct PositiveDuration(pub Duration);

impl<'de> Deserialize<'de> for PositiveDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PositiveDuration, D::Error> {
        let text = String::deserialize(d)?;
        match Duration::parse(&text) {
            Some(d) if d.0 > 0 => Ok(PositiveDuration(d)),
            Some(_) => Err(D::Error::custom("must be positive")),
            None => Err(D::Error::custom(format!(
                "{text:?} is not a duration (use an integer and ms, s, m, h or d, e.g. \"1m\")"
            ))),
        }
    }
}

/// A string, with what a message says is expected when it is something else.
pub fn string<'de, D: Deserializer<'de>>(d: D, expecting: &'static str) -> Result<String, D::Error> {
    struct Text(&'static str);
    impl Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_str(Text(expecting))
}

/// One of a fixed list of names, e.g. `"bytes" is not one of: requests, tokens, ...`.
pub fn one_of<'de, D: Deserializer<'de>, T: Copy>(d: D, choices: &'static [(&'static str, T)]) -> Result<T, D::Error> {
    struct Names<T: 'static>(&'static [(&'static str, T)]);
    impl<T: Copy> Visitor<'_> for Names<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<T, E> {
            match self.0.iter().find(|(name, _)| *name == v) {
                Some((_, value)) => Ok(*value),
                None => {
                    let names: Vec<&str> = self.0.iter().map(|(name, _)| *name).collect();
                    Err(E::custom(format!("{v:?} is not one of: {}", names.join(", "))))
                }
            }
        }
    }
    d.deserialize_str(Names(choices))
}

/// `Deserialize` for an enum written as one of its names.
macro_rules! named {
    ($ty:ty { $($name:literal => $value:expr),+ $(,)? }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                one_of(d, &[$(($name, $value)),+])
            }
        }
    };
}

named!(Unit {
    "requests" => Unit::Requests,
    "tokens" => Unit::Tokens,
    "input_tokens" => Unit::InputTokens,
    "output_tokens" => Unit::OutputTokens,
    "cost_usd" => Unit::CostUsd,
    "concurrent" => Unit::Concurrent,
});
named!(Algorithm {
    "token_bucket" => Algorithm::TokenBucket,
    "leaky_bucket" => Algorithm::LeakyBucket,
    "fixed_window" => Algorithm::FixedWindow,
    "sliding_window" => Algorithm::SlidingWindow,
    "gcra" => Algorithm::Gcra,
});
named!(MissingKey { "shared" => MissingKey::Shared, "skip" => MissingKey::Skip, "deny" => MissingKey::Deny });
named!(Scope { "local" => Scope::Local, "global" => Scope::Global });
named!(Sync { "strict" => Sync::Strict, "batched" => Sync::Batched });
named!(Strategy {
    "reject" => Strategy::Reject,
    "shadow" => Strategy::Shadow,
    "throttle" => Strategy::Throttle,
    "degrade" => Strategy::Degrade,
});
named!(FailureMode { "local" => FailureMode::Local, "open" => FailureMode::Open, "closed" => FailureMode::Closed });
named!(HeaderFormat {
    "ietf" => HeaderFormat::Ietf,
    "x-ratelimit" => HeaderFormat::XRateLimit,
    "openai" => HeaderFormat::OpenAi,
    "anthropic" => HeaderFormat::Anthropic,
});
named!(ErrorFormat {
    "auto" => ErrorFormat::Auto,
    "openai" => ErrorFormat::OpenAi,
    "anthropic" => ErrorFormat::Anthropic,
    "gemini" => ErrorFormat::Gemini,
});

/// `llm.estimate`: `max_tokens`, `none` or `fixed:N`.
impl<'de> Deserialize<'de> for Estimate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Estimate, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "max_tokens" => Ok(Estimate::MaxTokens),
            "none" => Ok(Estimate::None),
            _ => match text.strip_prefix("fixed:").and_then(|n| n.parse::<u64>().ok()) {
                Some(n) => Ok(Estimate::Fixed(n)),
                None => Err(D::Error::custom(format!("{text:?} is not one of: max_tokens, none, fixed:N"))),
            },
        }
    }
}

/// A rule's key source: `api_key`, `header:NAME`, `body:/pointer`, ...
impl<'de> Deserialize<'de> for KeySource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeySource, D::Error> {
        KeySource::parse(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// `tier.source`: a key source that exists before the body (header, JWT claim, query, cookie).
pub struct TierSource(pub KeySource);

impl<'de> Deserialize<'de> for TierSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TierSource, D::Error> {
        let text = String::deserialize(d)?;
        match KeySource::parse(&text).map_err(D::Error::custom)? {
            src @ (KeySource::Header(_) | KeySource::Jwt(_) | KeySource::Query(_) | KeySource::Cookie(_)) => {
                Ok(TierSource(src))
            }
            _ => Err(D::Error::custom(format!(
                "{text:?}: a tier comes from header:NAME, jwt:CLAIM, query:NAME or cookie:NAME"
            ))),
        }
    }
}

/// `allow.ips`: an address or a CIDR block.
impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(d)?;
        Cidr::parse(&text).ok_or_else(|| D::Error::custom(format!("{text:?} is not an IP address or CIDR block")))
    }
}

/// A request path or its beginning (`exempt_paths`, `match.path_prefix`): starts with `/`.
pub struct PathPrefix(pub String);

impl<'de> Deserialize<'de> for PathPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PathPrefix, D::Error> {
        let text = String::deserialize(d)?;
        if !text.starts_with('/') {
            return Err(D::Error::custom("must start with /"));
        }
        Ok(PathPrefix(text))
    }
}

/// `match.path_regex`, compiled.
pub struct PathRegex(pub regex_lite::Regex);

impl<'de> Deserialize<'de> for PathRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PathRegex, D::Error> {
        let text = String::deserialize(d)?;
        regex_lite::Regex::new(&text)
            .map(PathRegex)
            .map_err(|e| D::Error::custom(format!("{text:?} is not a valid regex: {e}")))
    }
}

/// A rule's name: 1 to 64 letters, digits, `-`, `_` and `.` (it appears in headers and keys).
pub struct RuleName(pub String);

impl<'de> Deserialize<'de> for RuleName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RuleName, D::Error> {
        let name = String::deserialize(d)?;
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(D::Error::custom(format!(
                "{name:?}: use 1 to 64 characters among letters, digits, '-', '_' and '.'"
            )));
        }
        Ok(RuleName(name))
    }
}

/// `api_key.query`: one parameter or a list of them; `""` and `[]` read none.
pub struct QueryParams(pub Vec<String>);

impl<'de> Deserialize<'de> for QueryParams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<QueryParams, D::Error> {
        struct Params;
        impl<'de> Visitor<'de> for Params {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Vec<String>, E> {
                Ok([v.to_string()].into_iter().filter(|q| !q.is_empty()).collect())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
                let mut out = Vec::new();
                while let Some(q) = seq.next_element::<String>()? {
                    if !q.is_empty() {
                        out.push(q);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(Params).map(QueryParams)
    }
}

/// `tier.keys`: raw API key -> tier name. An error names `tier.keys`, never the key itself
/// (it is a secret, and errors are logged).
pub struct TierKeys(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for TierKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TierKeys, D::Error> {
        let map = std::collections::BTreeMap::<String, Value>::deserialize(d)?;
        let mut out = Vec::with_capacity(map.len());
        for (key, tier) in map {
            match tier {
                Value::String(tier) => out.push((key, tier)),
                _ => return Err(D::Error::custom("values must be tier names (strings)")),
            }
        }
        Ok(TierKeys(out))
    }
}
