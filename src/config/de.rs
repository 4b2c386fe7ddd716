//! A serde `Deserializer` over a parsed `serde_json::Value` whose errors use JSON's words:
//! `expected a string, got a number`, `unknown field (expected one of: name, enabled, ...)`.
//! The configuration is read through it, with `serde_path_to_error` adding the field path, so
//! the section types are plain serde derives and every message still names the field path
//! (`rules[2].window: "5x" is not a duration ...`).
//!
//! Reading a parsed `Value` (rather than the text directly) keeps what the filter has always
//! accepted: a syntax error anywhere is reported before any field, and an object key written
//! twice counts once (the last), as in every other JSON reader of the config.

use super::ConfigError;
use serde::de::value::{BorrowedStrDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, Expected, IntoDeserializer, Unexpected, Visitor};
use serde_json::Value;

/// A parsed JSON value, read by serde.
#[derive(Clone, Copy)]
pub struct Json<'a>(pub &'a Value);

/// Why a value is wrong, without its path (serde_path_to_error adds it).
#[derive(Debug)]
pub struct Reason(String);

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reason {}

/// What a JSON value is, as a message says it: `a string`, `an object`, `null`.
fn kind(u: &Unexpected) -> String {
    match u {
        Unexpected::Bool(_) => "a boolean".into(),
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number".into(),
        Unexpected::Char(_) | Unexpected::Str(_) => "a string".into(),
        Unexpected::Unit | Unexpected::Option => "null".into(),
        Unexpected::Seq => "an array".into(),
        Unexpected::Map => "an object".into(),
        other => other.to_string(),
    }
}

/// What serde's own visitors expect, in JSON's words.
fn expected(exp: &dyn Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "a boolean" => "true or false".into(),
        "a sequence" => "an array".into(),
        "a map" => "an object".into(),
        _ => text,
    }
}

impl de::Error for Reason {
    fn custom<T: std::fmt::Display>(msg: T) -> Reason {
        Reason(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected, exp: &dyn Expected) -> Reason {
        Reason(format!("expected {}, got {}", expected(exp), kind(&unexp)))
    }

    fn invalid_value(unexp: Unexpected, exp: &dyn Expected) -> Reason {
        Reason(format!("expected {}, got {unexp}", expected(exp)))
    }

    fn unknown_field(_field: &str, fields: &'static [&'static str]) -> Reason {
        Reason(format!("unknown field (expected one of: {})", fields.join(", ")))
    }

    fn unknown_variant(variant: &str, variants: &'static [&'static str]) -> Reason {
        Reason(format!("{variant:?} is not one of: {}", variants.join(", ")))
    }
}

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> de::Deserializer<'de> for Json<'de> {
    type Error = Reason;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Reason> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                _ => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(Json));
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            Value::Object(map) => {
                let mut entries = MapDeserializer::new(map.iter().map(|(k, v)| (k.as_str(), Json(v))));
                let out = visitor.visit_map(&mut entries)?;
                entries.end()?;
                Ok(out)
            }
        }
    }

    /// `null` is an absent field.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Reason> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// Only an object is a section (serde would also take an array, field by position).
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Reason> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Reason> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s)),
            other => Err(de::Error::invalid_type(unexpected(other), &"a string")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Reason> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Reason> for Json<'de> {
    type Deserializer = Json<'de>;

    fn into_deserializer(self) -> Json<'de> {
        self
    }
}

/// `v` read as a `T`, errors naming the field path under `at` (`""` for the root).
pub fn from_value_at<'de, T: serde::Deserialize<'de>>(v: &'de Value, at: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(Json(v)).map_err(|e| {
        // The root's path prints as "."; an index joins without a dot (`rules` + `[2]`).
        let inner = if e.path().iter().next().is_none() { String::new() } else { e.path().to_string() };
        let path = match (at.is_empty(), inner.is_empty()) {
            (_, true) => at.to_string(),
            (true, false) => inner,
            (false, false) if inner.starts_with('[') => format!("{at}{inner}"),
            (false, false) => format!("{at}.{inner}"),
        };
        ConfigError::new(&path, e.into_inner().0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "an object")]
    #[allow(dead_code)]
    struct Section {
        name: Option<String>,
        on: Option<bool>,
        list: Option<Vec<String>>,
        map: Option<BTreeMap<String, Section>>,
    }

    fn err(v: Value) -> String {
        from_value_at::<Section>(&v, "").unwrap_err().to_string()
    }

    #[test]
    fn type_errors_use_json_words_and_the_path() {
        assert_eq!(err(json!({"name": 1})), "name: expected a string, got a number");
        assert_eq!(err(json!({"on": "yes"})), "on: expected true or false, got a string");
        assert_eq!(err(json!({"list": {}})), "list: expected an array, got an object");
        assert_eq!(err(json!({"list": ["a", null]})), "list[1]: expected a string, got null");
        assert_eq!(err(json!({"map": []})), "map: expected an object, got an array");
        assert_eq!(err(json!({"map": {"a": {"on": 1.5}}})), "map.a.on: expected true or false, got a number");
        assert_eq!(err(json!([])), "expected an object, got an array");
        assert_eq!(err(json!({"map": {"a": ["x"]}})), "map.a: expected an object, got an array");
        assert_eq!(err(json!({"nmae": 1})), "nmae: unknown field (expected one of: name, on, list, map)");
        assert_eq!(
            from_value_at::<Section>(&json!({"list": [true]}), "rules[3]").unwrap_err().to_string(),
            "rules[3].list[0]: expected a string, got a boolean"
        );
        assert_eq!(
            from_value_at::<Vec<String>>(&json!(["a", 2]), "key").unwrap_err().to_string(),
            "key[1]: expected a string, got a number"
        );
    }

    #[test]
    fn null_is_an_absent_field() {
        let s: Section = from_value_at(&json!({"name": null, "list": null}), "").unwrap();
        assert!(s.name.is_none() && s.list.is_none());
    }
}
