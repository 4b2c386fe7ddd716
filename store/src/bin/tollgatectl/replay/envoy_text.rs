//! Envoy's default access-log format (what Envoy writes when an access log has no format):
//!
//! ```text
//! [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
//! %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
//! "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%"
//! "%UPSTREAM_HOST%"
//! ```
//!
//! It carries no API key and no peer address: rules keyed on `api_key` or a header see the key
//! missing (`missing_key` decides), `ip` keys need `client_ip.trusted_hops` > 0 (the
//! X-Forwarded-For entry). Log in JSON with the headers the rules need for those (README).
//! `-` is Envoy's "no value". Fields after the 13th are ignored.

use super::record::{parse_time, Record, Unreadable};

/// The fields of a line: bracketed, quoted, or plain (space-separated).
fn fields(line: &str) -> Result<Vec<&str>, Unreadable> {
    let mut out = Vec::with_capacity(15);
    let mut rest = line.trim_end_matches(['\r', '\n']);
    while !rest.is_empty() {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        let (field, after) = if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or("a [ without its ]")?;
            (&r[..end], &r[end + 1..])
        } else if let Some(r) = rest.strip_prefix('"') {
            // A quoted field ends at a quote followed by a space or the end of the line (Envoy
            // does not escape quotes inside values).
            let end = r
                .match_indices('"')
                .map(|(i, _)| i)
                .find(|&i| r[i + 1..].is_empty() || r[i + 1..].starts_with(' '))
                .ok_or("a quoted field without its closing quote")?;
            (&r[..end], &r[end + 1..])
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        out.push(field);
        rest = after;
    }
    Ok(out)
}

fn value(field: &str) -> Option<&str> {
    (field != "-" && !field.is_empty()).then_some(field)
}

/// Parse one line of the default format.
pub fn parse(line: &str) -> Result<Record, Unreadable> {
    if !line.starts_with('[') {
        return Err("not Envoy's default format (no [START_TIME] first)".into());
    }
    let f = fields(line)?;
    if f.len() < 13 {
        return Err(format!("{} fields, the default format has 13", f.len()));
    }
    let time_ns = parse_time(f[0]).ok_or_else(|| format!("START_TIME {:?} is not an RFC 3339 time", f[0]))?;
    let mut request_line = f[1].splitn(3, ' ');
    let method = request_line.next().and_then(value).ok_or("no method in the request line")?;
    let path = request_line.next().and_then(value).ok_or("no path in the request line")?;
    let status = match value(f[2]) {
        None => None,
        Some(s) => Some(s.parse::<u16>().map_err(|_| format!("RESPONSE_CODE {s:?} is not a number"))?),
    };
    let duration_ms = match value(f[6]) {
        None => 0,
        Some(d) => d.parse::<u64>().map_err(|_| format!("DURATION {d:?} is not a number of ms"))?,
    };
    let mut headers = Vec::new();
    for (name, i) in [("x-forwarded-for", 8), ("user-agent", 9), ("x-request-id", 10), (":authority", 11)] {
        if let Some(v) = value(f[i]) {
            headers.push((name.to_string(), v.to_string()));
        }
    }
    let mut r = Record {
        time_ns,
        method: method.to_string(),
        path: path.to_string(),
        status: status.filter(|s| *s != 0),
        headers,
        duration_ns: duration_ms.saturating_mul(1_000_000),
        ..Record::default()
    };
    r.finish_headers();
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LINE: &str = r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations?x=1 HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http (v1; "beta")" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#;

    #[test]
    fn reads_the_default_format() {
        let r = parse(LINE).unwrap();
        assert_eq!(r.time_ns, parse_time("2016-04-15T20:17:00.310Z").unwrap());
        assert_eq!((r.method.as_str(), r.path.as_str(), r.status), ("POST", "/api/v1/locations?x=1", Some(204)));
        assert_eq!(r.duration_ns, 226_000_000);
        let h = |n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(h("x-forwarded-for"), Some("10.0.35.28"));
        assert_eq!(h("user-agent"), Some(r#"nsq2http (v1; "beta")"#), "quotes inside a value");
        assert_eq!(h(":authority"), Some("locations"));
        assert_eq!(h(":method"), Some("POST"));
        assert!(r.peer.is_none() && r.usage.is_none());
    }

    #[test]
    fn dashes_are_no_value_and_extra_fields_are_ignored() {
        let line = r#"[2025-01-31T12:00:00.000Z] "GET / HTTP/1.1" 429 - 0 96 0 - "-" "curl/8" "id" "h" "-" extra"#;
        let r = parse(&format!("{line}\n")).unwrap();
        assert_eq!(r.status, Some(429));
        assert!(!r.headers.iter().any(|(k, _)| k == "x-forwarded-for"));
    }

    #[test]
    fn unreadable_lines_say_why() {
        for (line, why) in [
            ("hello", "not Envoy's default format"),
            ("[2025-01-31T12:00:00Z \"GET", "a [ without its ]"),
            (r#"[2025-01-31T12:00:00Z] "GET / HTTP/1.1" 200"#, "3 fields"),
            (r#"[yesterday] "GET / HTTP/1.1" 200 - 0 0 1 - "-" "-" "-" "-" "-""#, "START_TIME \"yesterday\""),
            (r#"[2025-01-31T12:00:00Z] "GET / HTTP/1.1" abc - 0 0 1 - "-" "-" "-" "-" "-""#, "RESPONSE_CODE"),
            (r#"[2025-01-31T12:00:00Z] "GET / HTTP/1.1 200 - 0 0 1 - "-" "-" "-" "-" "-"#, "closing quote"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }
}
