//! One JSON object per line: Envoy access logs in JSON (`json_format`, including Istio's
//! JSON encoding, whose field names are the defaults here) and JSON Lines of requests.
//!
//! | what | fields (the first present wins) |
//! |---|---|
//! | start time (required) | `start_time`, `time`, `timestamp`, `@timestamp`: RFC 3339, or a number (epoch s, ms, µs or ns by magnitude) |
//! | method, path (required) | `method` / `request_method` / `:method`; `path` / `request_path` / `:path` (query included) |
//! | status | `response_code`, `status`, `status_code` |
//! | duration | `duration` / `duration_ms` (ms) |
//! | headers | object `headers` or `request_headers` {name: value}; and Istio's `x_forwarded_for`, `user_agent`, `request_id`, `authority` |
//! | client address | `downstream_remote_address` (Envoy's, with a port), `client_ip`, `ip` |
//! | body | `body` (a JSON object, or JSON text) |
//! | tokens | `total_tokens` / `tokens`, `input_tokens` / `prompt_tokens`, `output_tokens` / `completion_tokens` (numbers or digits) |
//!
//! Envoy writes `null` (or `-` in strings) for a value it does not have: both mean absent.

use serde_json::{Map, Value};
use tollgate_core::llm::Usage;

use super::record::{number_time, parse_time, Record, Unreadable};

fn first<'a>(o: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names.iter().filter_map(|n| o.get(*n)).find(|v| !v.is_null() && v.as_str() != Some("-") && v.as_str() != Some(""))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn count(o: &Map<String, Value>, names: &[&str]) -> Result<Option<u64>, Unreadable> {
    match first(o, names) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Some)
            .ok_or_else(|| format!("{}: {v} is not a whole number", names[0])),
    }
}

/// Parse one line that is a JSON object.
pub fn parse(line: &str) -> Result<Record, Unreadable> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON ({e})"))?;
    let o = v.as_object().ok_or("not a JSON object")?;
    let time = first(o, &["start_time", "time", "timestamp", "@timestamp"]).ok_or("no start_time (or time)")?;
    let time_ns = match time {
        Value::String(s) => parse_time(s).ok_or_else(|| format!("start_time {s:?} is not an RFC 3339 time"))?,
        Value::Number(n) => number_time(n).ok_or_else(|| format!("start_time {n} is not a time"))?,
        other => return Err(format!("start_time {other} is not a time")),
    };
    let method = first(o, &["method", "request_method", ":method"]).and_then(text).ok_or("no method")?;
    let path = first(o, &["path", "request_path", ":path"]).and_then(text).ok_or("no path")?;
    let status = match count(o, &["response_code", "status", "status_code"])? {
        Some(s) => Some(u16::try_from(s).map_err(|_| format!("response_code {s} is not an HTTP status"))?),
        None => None,
    };
    let duration_ms = match first(o, &["duration", "duration_ms"]) {
        None => 0.0,
        Some(d) => d
            .as_f64()
            .or_else(|| d.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|d| d.is_finite() && *d >= 0.0)
            .ok_or_else(|| format!("duration {d} is not a number of ms"))?,
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(h) = first(o, &["headers", "request_headers"]) {
        let h = h.as_object().ok_or("headers must be an object {name: value}")?;
        for (name, value) in h {
            if let Some(value) = Some(value).filter(|v| !v.is_null() && v.as_str() != Some("-")).and_then(text) {
                headers.push((name.to_ascii_lowercase(), value));
            }
        }
    }
    for (field, name) in
        [("x_forwarded_for", "x-forwarded-for"), ("user_agent", "user-agent"), ("request_id", "x-request-id")]
    {
        if !headers.iter().any(|(k, _)| k == name) {
            if let Some(v) = first(o, &[field]).and_then(text) {
                headers.push((name.to_string(), v));
            }
        }
    }
    if !headers.iter().any(|(k, _)| k == ":authority" || k == "host") {
        if let Some(v) = first(o, &["authority"]).and_then(text) {
            headers.push((":authority".to_string(), v));
        }
    }
    let peer = first(o, &["downstream_remote_address", "client_ip", "ip"]).and_then(text);
    let body = match first(o, &["body"]) {
        None => None,
        Some(Value::String(s)) => Some(serde_json::from_str(s).map_err(|e| format!("body is not JSON ({e})"))?),
        Some(b) => Some(b.clone()),
    };
    let usage = Usage {
        total: count(o, &["total_tokens", "tokens"])?,
        input: count(o, &["input_tokens", "prompt_tokens"])?,
        output: count(o, &["output_tokens", "completion_tokens"])?,
        ..Usage::default()
    };
    let mut r = Record {
        time_ns,
        method,
        path,
        status,
        headers,
        peer,
        body,
        usage: (!usage.is_empty()).then_some(usage),
        duration_ns: (duration_ms * 1e6) as u64,
    };
    r.finish_headers();
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_envoy_json_with_nested_headers() {
        let line = r#"{"start_time":"2025-01-31T12:00:00.250Z","method":"POST","path":"/v1/chat/completions",
            "response_code":429,"duration":12,"downstream_remote_address":"10.0.0.7:51234",
            "headers":{"x-api-key":"sk-a","X-Tier":"pro","authorization":null},"x_forwarded_for":"1.2.3.4",
            "total_tokens":"120","user_agent":"-"}"#
            .replace('\n', "");
        let r = parse(&line).unwrap();
        assert_eq!(r.time_ns, 1_738_324_800_250_000_000);
        assert_eq!((r.method.as_str(), r.path.as_str(), r.status), ("POST", "/v1/chat/completions", Some(429)));
        assert_eq!(r.duration_ns, 12_000_000);
        assert_eq!(r.peer.as_deref(), Some("10.0.0.7:51234"));
        let h = |n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!((h("x-api-key"), h("x-tier"), h("authorization")), (Some("sk-a"), Some("pro"), None));
        assert_eq!(h("x-forwarded-for"), Some("1.2.3.4"));
        assert_eq!(h("user-agent"), None, "- is no value");
        assert_eq!(r.usage, Some(Usage { total: Some(120), ..Usage::default() }));
        // The filter sees it.
        assert_eq!(r.request().header("x-api-key"), Some("sk-a"));
    }

    #[test]
    fn reads_json_lines_of_requests() {
        let r = parse(r#"{"time":1738324800.5,"method":"POST","path":"/v1/messages","ip":"10.1.1.1","body":"{\"model\":\"gpt-4o\",\"max_tokens\":50}","input_tokens":10,"output_tokens":40}"#).unwrap();
        assert_eq!(r.time_ns, 1_738_324_800_500_000_000);
        assert_eq!(r.body.unwrap()["model"], "gpt-4o");
        assert_eq!(r.usage.unwrap().total_tokens(), 50);
        assert_eq!(r.peer.as_deref(), Some("10.1.1.1"));
        let r = parse(r#"{"timestamp":1738324800123,"request_method":"GET","request_path":"/"}"#).unwrap();
        assert_eq!(r.time_ns, 1_738_324_800_123_000_000);
    }

    #[test]
    fn unreadable_lines_say_why() {
        for (line, why) in [
            ("{", "invalid JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"method":"GET","path":"/"}"#, "no start_time"),
            (r#"{"start_time":"soon","method":"GET","path":"/"}"#, "not an RFC 3339 time"),
            (r#"{"start_time":"2025-01-31T12:00:00Z","path":"/"}"#, "no method"),
            (r#"{"start_time":"2025-01-31T12:00:00Z","method":"GET"}"#, "no path"),
            (r#"{"start_time":"2025-01-31T12:00:00Z","method":"GET","path":"/","tokens":"many"}"#, "total_tokens"),
            (r#"{"start_time":"2025-01-31T12:00:00Z","method":"GET","path":"/","headers":"x"}"#, "headers must be"),
            (r#"{"start_time":"2025-01-31T12:00:00Z","method":"GET","path":"/","response_code":99999}"#, "HTTP status"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }
}
