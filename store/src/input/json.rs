//! JSON bodies: read with serde into their types, refused in the store's words.
//!
//! A refusal is `PATH: WHY` (400 `invalid_request`). PATH is where serde stopped
//! (`checks[0].limit`, `limits.per-key-rpm.burst`, `body` for the body itself); WHY comes from
//! what the body's type says that place must hold ([`Body::want`]) and what is there: absent or
//! null is "is required", a negative number where a positive one belongs "must be positive".
//! So the messages are the store's own, whatever serde's wording.
//!
//! The body is parsed to a `serde_json::Value` first: invalid JSON is told as such before any
//! field, duplicate keys keep the last value, and the refusal can look at what the place holds.

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::error::ApiError;

/// A place in a body: a field of an object (or a key of a map), or an index of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place<'a> {
    Field(&'a str),
    Index(usize),
}

/// What a place must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    Object,
    Array,
    String,
    Bool,
    /// A whole number from 1.
    Positive,
    /// A whole number from 0.
    Count,
    /// A whole number, negative or not.
    Integer,
    /// Anything else, said in these words.
    Said(String),
}

impl Want {
    /// Why `found` does not do (null: "is required", except where an object belongs).
    fn why(&self, found: &Value) -> String {
        if found.is_null() && *self != Want::Object {
            return "is required".into();
        }
        let not_positive = found.as_i64().is_some_and(|n| n <= 0) || found.as_f64().is_some_and(|f| f <= 0.0);
        match self {
            Want::Object => "must be an object",
            Want::Array => "must be an array",
            Want::String => "must be a string",
            Want::Bool => "must be true or false",
            Want::Positive if not_positive => "must be positive",
            Want::Positive => "must be a positive integer",
            Want::Count => "must be a non-negative integer",
            Want::Integer => "must be an integer",
            Want::Said(why) => why,
        }
        .into()
    }
}

/// A JSON body the store reads, and what each of its places must hold.
pub trait Body: DeserializeOwned {
    /// What the place `at` must hold; `[]` is the body itself (always an object). None: serde's
    /// own words (a place the type does not expect to refuse).
    fn want(at: &[Place<'_>]) -> Option<Want>;
}

/// Parse a body as JSON.
pub fn parse(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid("body", format!("invalid JSON ({e})")))
}

/// Read a body as a `T`, or say why not.
pub fn decode<T: Body>(bytes: &[u8]) -> Result<T, ApiError> {
    let raw = parse(bytes)?;
    if !raw.is_object() {
        let why = T::want(&[]).unwrap_or(Want::Object).why(&raw);
        return Err(ApiError::invalid("body", why));
    }
    serde_path_to_error::deserialize(&raw).map_err(|e| refusal::<T>(&raw, &e))
}

fn refusal<T: Body>(raw: &Value, e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let at: Vec<Place<'_>> = e
        .path()
        .iter()
        .map(|s| match s {
            Segment::Seq { index } => Place::Index(*index),
            Segment::Map { key } => Place::Field(key),
            Segment::Enum { variant } => Place::Field(variant),
            Segment::Unknown => Place::Field("?"),
        })
        .collect();
    let said = e.inner().to_string();
    if let Some(field) = missing_field(&said) {
        let place = if at.is_empty() { field.to_string() } else { format!("{}.{field}", name(&at)) };
        return ApiError::invalid(&place, "is required");
    }
    let why = match (find(raw, &at), T::want(&at)) {
        (Some(found), Some(want)) => want.why(found),
        (None, _) => "is required".into(),
        (Some(_), None) => said,
    };
    ApiError::invalid(&name(&at), why)
}

/// The field of serde's "missing field `NAME`".
fn missing_field(said: &str) -> Option<&str> {
    said.strip_prefix("missing field `")?.strip_suffix('`')
}

fn find<'v>(raw: &'v Value, at: &[Place<'_>]) -> Option<&'v Value> {
    at.iter().try_fold(raw, |v, place| match place {
        Place::Field(f) => v.get(*f),
        Place::Index(i) => v.get(*i),
    })
}

/// `checks[0].limit`; `body` for the body itself.
fn name(at: &[Place<'_>]) -> String {
    let mut out = String::new();
    for place in at {
        match place {
            Place::Field(f) if out.is_empty() => out.push_str(f),
            Place::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Place::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        "body".into()
    } else {
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;
    use tollgate_core::global::wire::Object;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        #[serde(default)]
        count: Option<u64>,
        size: u64,
        #[serde(default)]
        parts: BTreeMap<String, Object<Part>>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Part {
        on: bool,
    }

    impl Body for Sample {
        fn want(at: &[Place<'_>]) -> Option<Want> {
            match at {
                [] => Some(Want::Said("must be a JSON object".into())),
                [Place::Field("name")] => Some(Want::String),
                [Place::Field("count")] => Some(Want::Count),
                [Place::Field("size")] => Some(Want::Positive),
                [Place::Field("parts"), _] => Some(Want::Object),
                [Place::Field("parts"), _, Place::Field("on")] => Some(Want::Bool),
                _ => None,
            }
        }
    }

    fn err(body: &str) -> String {
        decode::<Sample>(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn refusals_name_the_place_in_the_stores_words() {
        assert!(decode::<Sample>(br#"{"name": "a", "size": 1, "extra": 1}"#).is_ok(), "unknown fields are ignored");
        assert!(err("{").starts_with("body: invalid JSON ("));
        assert_eq!(err("[1]"), "body: must be a JSON object");
        assert_eq!(err(r#"{"size": 1}"#), "name: is required");
        assert_eq!(err(r#"{"name": null, "size": 1}"#), "name: is required");
        assert_eq!(err(r#"{"name": 5, "size": 1}"#), "name: must be a string");
        assert_eq!(err(r#"{"name": "a", "size": -3}"#), "size: must be positive");
        assert_eq!(err(r#"{"name": "a", "size": 1.5}"#), "size: must be a positive integer");
        assert_eq!(err(r#"{"name": "a", "size": 1, "count": -1}"#), "count: must be a non-negative integer");
        assert_eq!(err(r#"{"name": "a", "size": 1, "parts": {"p q": 5}}"#), "parts.p q: must be an object");
        assert_eq!(err(r#"{"name": "a", "size": 1, "parts": {"p": [true]}}"#), "parts.p: must be an object");
        assert_eq!(err(r#"{"name": "a", "size": 1, "parts": {"p": null}}"#), "parts.p: must be an object");
        assert_eq!(err(r#"{"name": "a", "size": 1, "parts": {"p": {"on": 1}}}"#), "parts.p.on: must be true or false");
        assert_eq!(err(r#"{"name": "a", "size": 1, "parts": {"p": {}}}"#), "parts.p.on: is required");
        // A place the type does not word: serde's words, still with the place.
        assert!(err(r#"{"name": "a", "size": 1, "parts": 5}"#).starts_with("parts: invalid type: integer `5`"));
    }

    #[test]
    fn names_of_places() {
        assert_eq!(name(&[]), "body");
        assert_eq!(name(&[Place::Field("checks"), Place::Index(3), Place::Field("limit")]), "checks[3].limit");
        assert_eq!(missing_field("missing field `rule`"), Some("rule"));
    }
}
