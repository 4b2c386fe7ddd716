//! Which requests a rule applies to, compiled once at configure time.

use crate::config::ConfigError;
use crate::request::Request;
use serde_json::Value;

#[derive(Clone, Debug, Default)]
pub struct Matcher {
    pub path_prefix: Option<String>,
    pub path_regex: Option<regex_lite::Regex>,
    /// Upper-case methods; empty = any.
    pub methods: Vec<String>,
    /// (lower-case name, exact value or None for "present").
    pub headers: Vec<(String, Option<String>)>,
    /// Empty = any tier.
    pub tiers: Vec<String>,
    /// Empty = any model; else the JSON body's `model` must be one of these.
    pub models: Vec<String>,
}

impl Matcher {
    pub fn parse(v: &Value, path: &str) -> Result<Matcher, ConfigError> {
        let o = crate::config::json::Obj::new(
            v,
            path,
            &["path_prefix", "path_regex", "methods", "headers", "tiers", "models"],
        )?;
        let mut m = Matcher { path_prefix: o.opt_str("path_prefix")?.map(str::to_string), ..Matcher::default() };
        if let Some(p) = &m.path_prefix {
            if !p.starts_with('/') {
                return Err(ConfigError::new(&o.at("path_prefix"), "must start with /"));
            }
        }
        if let Some(re) = o.opt_str("path_regex")? {
            let compiled = regex_lite::Regex::new(re)
                .map_err(|e| ConfigError::new(&o.at("path_regex"), format!("{re:?} is not a valid regex: {e}")))?;
            m.path_regex = Some(compiled);
        }
        m.methods = o.opt_strings("methods")?.unwrap_or_default().iter().map(|s| s.to_ascii_uppercase()).collect();
        if let Some(map) = o.opt_object("headers")? {
            for (name, value) in map {
                let value = value.as_str().ok_or_else(|| {
                    ConfigError::new(&format!("{}.{}", o.at("headers"), name), "expected a string (a value, or \"*\")")
                })?;
                let exact = (value != "*").then(|| value.to_string());
                m.headers.push((name.to_ascii_lowercase(), exact));
            }
        }
        m.tiers = o.opt_strings("tiers")?.unwrap_or_default();
        m.models = o.opt_strings("models")?.unwrap_or_default();
        Ok(m)
    }

    /// Whether the conditions known from the headers alone (path, method, headers) hold:
    /// the rule may apply once its tier and model are known.
    pub fn may_match_before_body(&self, req: &Request) -> bool {
        self.matches_route(req)
    }

    fn matches_route(&self, req: &Request) -> bool {
        if let Some(prefix) = &self.path_prefix {
            if !req.path.starts_with(prefix.as_str()) {
                return false;
            }
        }
        if let Some(re) = &self.path_regex {
            if !re.is_match(req.path_only()) {
                return false;
            }
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == req.method) {
            return false;
        }
        self.headers.iter().all(|(name, exact)| match (req.header(name), exact) {
            (None, _) => false,
            (Some(v), Some(want)) => v == want,
            (Some(_), None) => true,
        })
    }

    pub fn matches(&self, req: &Request, tier: Option<&str>) -> bool {
        if !self.matches_route(req) {
            return false;
        }
        if !self.tiers.is_empty() && !tier.is_some_and(|t| self.tiers.iter().any(|x| x == t)) {
            return false;
        }
        if !self.models.is_empty() {
            let model = req.body.and_then(|b| b.get("model")).and_then(serde_json::Value::as_str);
            if !model.is_some_and(|m| self.models.iter().any(|x| x == m)) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request<'a>(method: &'a str, path: &'a str, headers: &'a [(String, String)]) -> Request<'a> {
        Request { method, path, headers, peer: None, body: None }
    }

    #[test]
    fn every_condition_must_hold() {
        let m = Matcher::parse(
            &json!({"path_prefix": "/v1/", "path_regex": "^/v1/(chat|completions)", "methods": ["post"],
                    "headers": {"x-env": "prod", "x-beta": "*"}, "tiers": ["free"]}),
            "rules[0].match",
        )
        .unwrap();
        let hs: Vec<(String, String)> = vec![("x-env".into(), "prod".into()), ("x-beta".into(), "1".into())];
        assert!(m.matches(&request("POST", "/v1/chat/completions?x=1", &hs), Some("free")));
        assert!(!m.matches(&request("GET", "/v1/chat/completions", &hs), Some("free")));
        assert!(!m.matches(&request("POST", "/v1/embeddings", &hs), Some("free")));
        assert!(!m.matches(&request("POST", "/v2/chat", &hs), Some("free")));
        assert!(!m.matches(&request("POST", "/v1/chat", &hs), Some("pro")));
        assert!(!m.matches(&request("POST", "/v1/chat", &hs), None));
        let staging: Vec<(String, String)> = vec![("x-env".into(), "staging".into()), ("x-beta".into(), "1".into())];
        assert!(!m.matches(&request("POST", "/v1/chat", &staging), Some("free")));
        assert!(!m.matches(&request("POST", "/v1/chat", &hs[..1]), Some("free")));
    }

    #[test]
    fn models_match_the_body_model() {
        let m = Matcher::parse(&json!({"models": ["gpt-4o", "o1"]}), "m").unwrap();
        let body = json!({"model": "o1"});
        let other = json!({"model": "gpt-4o-mini"});
        let req = |b| Request { method: "POST", path: "/", headers: &[], peer: None, body: b };
        assert!(m.matches(&req(Some(&body)), None));
        assert!(!m.matches(&req(Some(&other)), None));
        assert!(!m.matches(&req(None), None));
    }

    #[test]
    fn bad_regex_names_the_field() {
        let err = Matcher::parse(&json!({"path_regex": "("}), "rules[1].match").unwrap_err();
        assert_eq!(err.path, "rules[1].match.path_regex");
    }
}
