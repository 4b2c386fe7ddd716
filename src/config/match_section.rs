//! A rule's `match` section as written, read into a `Matcher` (regex built, names in the case
//! they are compared in).

use super::values::{string, PathPrefix, PathRegex};
use crate::request::matcher::Matcher;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// The `match` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
struct MatchSection {
    path_prefix: Option<PathPrefix>,
    path_regex: Option<PathRegex>,
    methods: Option<Vec<String>>,
    headers: Option<BTreeMap<String, HeaderMatch>>,
    tiers: Option<Vec<String>>,
    models: Option<Vec<String>>,
}

/// A header condition: an exact value, or `"*"` for "present".
struct HeaderMatch(Option<String>);

impl<'de> Deserialize<'de> for HeaderMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HeaderMatch, D::Error> {
        let value = string(d, "a string (a value, or \"*\")")?;
        Ok(HeaderMatch((value != "*").then_some(value)))
    }
}

/// A rule's `match` section, compiled (regex built, names in the case they are compared in).
impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Matcher, D::Error> {
        let s = MatchSection::deserialize(d)?;
        Ok(Matcher {
            path_prefix: s.path_prefix.map(|p| p.0),
            path_regex: s.path_regex.map(|r| r.0),
            methods: s.methods.unwrap_or_default().iter().map(|m| m.to_ascii_uppercase()).collect(),
            headers: s
                .headers
                .unwrap_or_default()
                .into_iter()
                .map(|(name, v)| (name.to_ascii_lowercase(), v.0))
                .collect(),
            tiers: s.tiers.unwrap_or_default(),
            models: s.models.unwrap_or_default(),
        })
    }
}
