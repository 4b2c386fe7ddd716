//! Key sources (contract §1.1) and their extraction from a request.

use super::Request;

/// Where the `api_key` key source looks (`api_key` in the configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyConfig {
    /// Lower-case header names, tried in order.
    pub headers: Vec<String>,
    /// Query parameters, tried in order after the headers.
    pub query: Vec<String>,
}

/// Where one part of a counter key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    ApiKey,
    Ip,
    /// Lower-case header name.
    Header(String),
    Query(String),
    Cookie(String),
    /// A claim of the bearer JWT's payload (not verified here: Envoy's jwt_authn does that).
    Jwt(String),
    /// A JSON pointer into the request body, e.g. `/model`.
    Body(String),
    Path,
    Method,
    Global,
}

impl KeySource {
    pub fn parse(text: &str) -> Result<KeySource, String> {
        let nonempty = |rest: &str, what: &str| {
            if rest.is_empty() {
                Err(format!("{text:?}: {what} is empty"))
            } else {
                Ok(rest.to_string())
            }
        };
        match text {
            "api_key" => return Ok(KeySource::ApiKey),
            "ip" => return Ok(KeySource::Ip),
            "path" => return Ok(KeySource::Path),
            "method" => return Ok(KeySource::Method),
            "global" => return Ok(KeySource::Global),
            _ => {}
        }
        if let Some(rest) = text.strip_prefix("header:") {
            return Ok(KeySource::Header(nonempty(rest, "the header name")?.to_ascii_lowercase()));
        }
        if let Some(rest) = text.strip_prefix("query:") {
            return Ok(KeySource::Query(nonempty(rest, "the query parameter")?));
        }
        if let Some(rest) = text.strip_prefix("cookie:") {
            return Ok(KeySource::Cookie(nonempty(rest, "the cookie name")?));
        }
        if let Some(rest) = text.strip_prefix("jwt:") {
            return Ok(KeySource::Jwt(nonempty(rest, "the claim")?));
        }
        if let Some(rest) = text.strip_prefix("body:") {
            if !rest.starts_with('/') {
                return Err(format!("{text:?}: a body key is a JSON pointer starting with /, e.g. body:/model"));
            }
            return Ok(KeySource::Body(rest.to_string()));
        }
        Err(format!(
            "{text:?} is not a key source (api_key, ip, header:NAME, query:NAME, cookie:NAME, jwt:CLAIM, body:/pointer, path, method, global)"
        ))
    }

    /// The value of this source for `req`, or None when the request lacks it.
    pub fn extract<'r>(&self, req: &'r Request<'r>, api: &ApiKeyConfig, trusted_hops: u32) -> Option<KeyPart<'r>> {
        match self {
            KeySource::ApiKey => api_key(req, api).map(KeyPart::Borrowed),
            KeySource::Ip => req.client_ip(trusted_hops).map(KeyPart::Borrowed),
            KeySource::Header(name) => req.header(name).map(KeyPart::Borrowed),
            KeySource::Query(name) => req.query_param(name).map(KeyPart::Borrowed),
            KeySource::Cookie(name) => req.cookie(name).map(KeyPart::Borrowed),
            KeySource::Jwt(claim) => req.jwt_claim(claim).map(KeyPart::Owned),
            KeySource::Body(pointer) => req.body_field(pointer).map(KeyPart::Owned),
            KeySource::Path => Some(KeyPart::Borrowed(req.path_only())),
            KeySource::Method => Some(KeyPart::Borrowed(req.method)),
            KeySource::Global => Some(KeyPart::Borrowed("")),
        }
    }

    pub fn needs_body(&self) -> bool {
        matches!(self, KeySource::Body(_))
    }
}

/// One extracted key part.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyPart<'r> {
    Borrowed(&'r str),
    Owned(String),
}

impl<'r> KeyPart<'r> {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            KeyPart::Borrowed(s) => s.as_bytes(),
            KeyPart::Owned(s) => s.as_bytes(),
        }
    }

    pub fn into_text(self) -> std::borrow::Cow<'r, str> {
        match self {
            KeyPart::Borrowed(s) => std::borrow::Cow::Borrowed(s),
            KeyPart::Owned(s) => std::borrow::Cow::Owned(s),
        }
    }
}

/// The API key: the first configured header present (a `Bearer ` prefix stripped), then the
/// first configured query parameter present.
pub fn api_key<'r>(req: &'r Request<'r>, api: &ApiKeyConfig) -> Option<&'r str> {
    for name in &api.headers {
        if let Some(v) = req.header(name) {
            let v = strip_bearer(v).trim();
            if !v.is_empty() {
                return Some(v);
            }
        }
    }
    api.query.iter().filter_map(|q| req.query_param(q)).find(|v| !v.is_empty())
}

pub fn strip_bearer(v: &str) -> &str {
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => &v[7..],
        _ => v,
    }
}
