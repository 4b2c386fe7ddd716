//! A small typed reader over `serde_json::Value` that names the field path in every error
//! and rejects unknown fields.

use super::ConfigError;
use serde_json::{Map, Value};

/// A JSON object being read at `path`, with the fields it may contain.
pub struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub path: String,
}

pub fn field_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

pub fn index_path(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Obj<'a> {
    /// `v` must be an object whose keys are all in `allowed`.
    pub fn new(v: &'a Value, path: &str, allowed: &[&str]) -> Result<Obj<'a>, ConfigError> {
        let map =
            v.as_object().ok_or_else(|| ConfigError::new(path, format!("expected an object, got {}", type_name(v))))?;
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(ConfigError::new(
                    &field_path(path, key),
                    format!("unknown field (expected one of: {})", allowed.join(", ")),
                ));
            }
        }
        Ok(Obj { map, path: path.to_string() })
    }

    pub fn at(&self, name: &str) -> String {
        field_path(&self.path, name)
    }

    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn err(&self, name: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.at(name), reason)
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.err(name, format!("expected a string, got {}", type_name(v)))),
        }
    }

    pub fn req_str(&self, name: &str) -> Result<&'a str, ConfigError> {
        self.opt_str(name)?.ok_or_else(|| self.err(name, "is required"))
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(name, format!("expected true or false, got {}", type_name(v)))),
        }
    }

    /// A non-negative integer.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                None => Err(self.err(name, format!("expected a non-negative integer, got {v}"))),
            },
        }
    }

    /// A strictly positive integer.
    pub fn opt_positive(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.opt_u64(name)? {
            Some(0) => Err(self.err(name, "must be positive")),
            other => Ok(other),
        }
    }

    /// A non-negative finite number.
    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
                _ => Err(self.err(name, format!("expected a non-negative number, got {v}"))),
            },
        }
    }

    pub fn opt_array(&self, name: &str) -> Result<Option<&'a Vec<Value>>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.err(name, format!("expected an array, got {}", type_name(v)))),
        }
    }

    /// An array of strings (each error names its index).
    pub fn opt_strings(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(items) = self.opt_array(name)? else { return Ok(None) };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                v => {
                    return Err(ConfigError::new(
                        &index_path(&self.at(name), i),
                        format!("expected a string, got {}", type_name(v)),
                    ))
                }
            }
        }
        Ok(Some(out))
    }

    pub fn opt_object(&self, name: &str) -> Result<Option<&'a Map<String, Value>>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.err(name, format!("expected an object, got {}", type_name(v)))),
        }
    }

    /// A duration string such as `"1m"`.
    pub fn opt_duration(&self, name: &str) -> Result<Option<crate::duration::Duration>, ConfigError> {
        match self.opt_str(name)? {
            None => Ok(None),
            Some(text) => match crate::duration::Duration::parse(text) {
                Some(d) if d.0 > 0 => Ok(Some(d)),
                Some(_) => Err(self.err(name, "must be positive")),
                None => Err(self.err(
                    name,
                    format!("{:?} is not a duration (use an integer and ms, s, m, h or d, e.g. \"1m\")", text),
                )),
            },
        }
    }

    /// One of `choices`.
    pub fn opt_enum<T: Copy>(&self, name: &str, choices: &[(&str, T)]) -> Result<Option<T>, ConfigError> {
        let Some(text) = self.opt_str(name)? else { return Ok(None) };
        match choices.iter().find(|(n, _)| *n == text) {
            Some((_, v)) => Ok(Some(*v)),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                Err(self.err(name, format!("{:?} is not one of: {}", text, names.join(", "))))
            }
        }
    }
}
