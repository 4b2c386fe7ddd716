//! A read-only view of one request, built by the filter from the headers the host gave.

pub mod cidr;
pub mod keys;
pub mod matcher;

use serde_json::Value;

/// A header value as text, without losing a byte, so that values differing in any byte never
/// share a counter. Valid UTF-8 is kept as it is, except that U+FFFD is written as U+FFFD `uu`;
/// each byte of an invalid sequence becomes U+FFFD and its two lower-case hex digits. Every
/// U+FFFD is followed by exactly two ASCII characters, so the mapping is one-to-one.
pub fn header_text(bytes: Vec<u8>) -> String {
    let bytes = match String::from_utf8(bytes) {
        Ok(s) if !s.contains('\u{FFFD}') => return s,
        Ok(s) => s.into_bytes(),
        Err(e) => e.into_bytes(),
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            out.push(c);
            if c == '\u{FFFD}' {
                out.push_str("uu");
            }
        }
        for b in chunk.invalid() {
            out.push('\u{FFFD}');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

pub struct Request<'a> {
    pub method: &'a str,
    /// `:path` as received, query string included.
    pub path: &'a str,
    /// Request headers; names are lower-case (as Envoy passes them).
    pub headers: &'a [(String, String)],
    /// The connection's peer address (`source.address`), possibly with a port.
    pub peer: Option<&'a str>,
    /// The request body parsed as JSON, when a rule needs it and it fit the buffer cap.
    pub body: Option<&'a Value>,
}

impl<'a> Request<'a> {
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &'a str {
        match self.path.find('?') {
            Some(i) => &self.path[..i],
            None => self.path,
        }
    }

    /// A query parameter's raw (not percent-decoded) value.
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        let query = &self.path[self.path.find('?')? + 1..];
        let query = query.split('#').next().unwrap_or(query);
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }

    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().filter(|(k, _)| k == "cookie").find_map(|(_, v)| {
            v.split(';').find_map(|c| {
                let (k, val) = c.trim().split_once('=')?;
                (k == name).then_some(val)
            })
        })
    }

    /// The client address: the peer address when `trusted_hops` is 0, else the Nth address
    /// from the right of X-Forwarded-For (the peer address when the header has fewer).
    pub fn client_ip(&self, trusted_hops: u32) -> Option<&'a str> {
        if trusted_hops > 0 {
            // Several X-Forwarded-For headers are one list, in order: walk it from the right.
            let addr = self
                .headers
                .iter()
                .rev()
                .filter(|(k, _)| k == "x-forwarded-for")
                .flat_map(|(_, v)| v.rsplit(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .nth(trusted_hops as usize - 1);
            if addr.is_some() {
                return addr;
            }
        }
        self.peer.map(strip_port)
    }

    /// A claim of the bearer JWT's payload, as a string (numbers and booleans in their JSON
    /// form). A malformed token means no claim. (Decodes the token: a caller that needs
    /// several claims decodes once with `jwt_payload` and reads them with `claim`.)
    pub fn jwt_claim(&self, claim: &str) -> Option<String> {
        Request::claim(self.jwt_payload().as_ref(), claim)
    }

    /// The bearer JWT's payload, decoded (not verified: Envoy's jwt_authn does that). None
    /// when there is no token or it is malformed.
    pub fn jwt_payload(&self) -> Option<Value> {
        let auth = self.header("authorization")?;
        let token = crate::request::keys::strip_bearer(auth).trim();
        let mut parts = token.split('.');
        let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || payload.len() > 16 * 1024 {
            return None;
        }
        let bytes = base64url_decode(payload)?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A claim of a decoded payload, as a string.
    pub fn claim(payload: Option<&Value>, claim: &str) -> Option<String> {
        scalar_string(payload?.get(claim)?)
    }

    /// A field of the JSON body, by JSON pointer, as a string.
    pub fn body_field(&self, pointer: &str) -> Option<String> {
        scalar_string(self.body?.pointer(pointer)?)
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `1.2.3.4:5678` -> `1.2.3.4`; `[::1]:80` -> `::1`; a bare address stays as it is.
pub fn strip_port(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => addr,
    }
}

/// Base64url without padding (padding tolerated).
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_keeps_every_byte_apart() {
        assert_eq!(header_text(b"sk-abc".to_vec()), "sk-abc");
        assert_eq!(header_text("sk-é".as_bytes().to_vec()), "sk-é");
        assert_eq!(header_text(b"sk-\xff".to_vec()), "sk-\u{FFFD}ff");
        assert_eq!(header_text(b"sk-\xfe".to_vec()), "sk-\u{FFFD}fe");
        assert_eq!(header_text("sk-\u{FFFD}".as_bytes().to_vec()), "sk-\u{FFFD}uu");
        // A truncated sequence: each of its bytes is escaped.
        assert_eq!(header_text(b"a\xe2\x82b".to_vec()), "a\u{FFFD}e2\u{FFFD}82b");
        // One-to-one over every 1- and 2-byte value and a few crafted look-alikes.
        let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        inputs.extend((0..=255u8).flat_map(|a| (0..=255u8).map(move |b| vec![a, b])));
        inputs.push("\u{FFFD}ff".as_bytes().to_vec());
        inputs.push("\u{FFFD}uu".as_bytes().to_vec());
        inputs.push(b"\xef\xbf\xbd".to_vec());
        let mut seen = std::collections::HashMap::new();
        for input in inputs {
            let text = header_text(input.clone());
            if let Some(other) = seen.insert(text.clone(), input.clone()) {
                assert_eq!(other, input, "{other:?} and {input:?} both map to {text:?}");
            }
        }
    }

    fn req<'a>(path: &'a str, headers: &'a [(String, String)]) -> Request<'a> {
        Request { method: "GET", path, headers, peer: Some("10.0.0.9:4444"), body: None }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn query_and_path() {
        let hs = h(&[]);
        let r = req("/v1/x?a=1&api_key=sk-1&b", &hs);
        assert_eq!(r.path_only(), "/v1/x");
        assert_eq!(r.query_param("api_key"), Some("sk-1"));
        assert_eq!(r.query_param("b"), Some(""));
        assert_eq!(r.query_param("c"), None);
    }

    #[test]
    fn cookies() {
        let hs = h(&[("cookie", "a=1; session=abc; z=2")]);
        assert_eq!(req("/", &hs).cookie("session"), Some("abc"));
        assert_eq!(req("/", &hs).cookie("nope"), None);
    }

    #[test]
    fn client_ip_from_peer_or_forwarded_for() {
        let hs = h(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2"), ("x-forwarded-for", "3.3.3.3")]);
        let r = req("/", &hs);
        assert_eq!(r.client_ip(0), Some("10.0.0.9"));
        assert_eq!(r.client_ip(1), Some("3.3.3.3"));
        assert_eq!(r.client_ip(2), Some("2.2.2.2"));
        assert_eq!(r.client_ip(3), Some("1.1.1.1"));
        assert_eq!(r.client_ip(4), Some("10.0.0.9"));
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("::1"), "::1");
    }

    #[test]
    fn jwt_claims_and_malformed_tokens() {
        // {"sub":"user-7","tier":"pro","n":3}
        let payload = "eyJzdWIiOiJ1c2VyLTciLCJ0aWVyIjoicHJvIiwibiI6M30";
        let hs = h(&[("authorization", &format!("Bearer e30.{payload}.sig"))]);
        let r = req("/", &hs);
        assert_eq!(r.jwt_claim("sub").as_deref(), Some("user-7"));
        assert_eq!(r.jwt_claim("n").as_deref(), Some("3"));
        assert_eq!(r.jwt_claim("missing"), None);
        for bad in ["Bearer abc", "Bearer a.!!!.c", "Bearer a.e30", "Bearer a.bm90anNvbg.c"] {
            let hs = h(&[("authorization", bad)]);
            assert_eq!(req("/", &hs).jwt_claim("sub"), None, "{bad}");
        }
    }

    #[test]
    fn body_fields() {
        let body: Value = serde_json::json!({"model": "gpt-4o", "n": 2, "o": {"x": "y"}});
        let hs = h(&[]);
        let r = Request { body: Some(&body), ..req("/", &hs) };
        assert_eq!(r.body_field("/model").as_deref(), Some("gpt-4o"));
        assert_eq!(r.body_field("/o/x").as_deref(), Some("y"));
        assert_eq!(r.body_field("/o"), None);
    }
}
