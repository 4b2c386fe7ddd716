//! Query strings (`application/x-www-form-urlencoded`): flags, bounded numbers, and values
//! whose errors name their parameter.

use crate::error::ApiError;

/// A parsed query string (`application/x-www-form-urlencoded`).
#[derive(Clone, Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Query, ApiError> {
        let mut out = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = percent_decode(k).ok_or_else(|| ApiError::invalid("query", "invalid percent-encoding"))?;
            let v = percent_decode(v).ok_or_else(|| ApiError::invalid(&k, "invalid percent-encoding"))?;
            out.push((k, v));
        }
        Ok(Query(out))
    }

    /// The first value of `name` (empty values count as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// `name=1|true|yes` (or a bare `name`): true; `0|false|no` or absent: false.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()) {
            None | Some("0" | "false" | "no") => Ok(false),
            Some("" | "1" | "true" | "yes") => Ok(true),
            Some(_) => Err(ApiError::invalid(name, "must be 1 or 0 (also true or false, yes or no)")),
        }
    }

    /// A whole number in `1..=max`, or `default` when absent.
    pub fn number(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ApiError::invalid(name, format!("must be a whole number from 1 to {max}"))),
        }
    }
}

/// Decode `%XX` escapes and `+` (space); None for a bad escape or invalid UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
