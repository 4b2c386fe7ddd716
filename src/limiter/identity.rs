//! Who a request is, worked out once per request before the rules run: its API key, the
//! fleet-wide hash overrides are keyed by, its client address (when overrides need it), its
//! bearer JWT's claims (decoded at most once) and its tier. Every rule then reads these
//! instead of scanning the headers or decoding the token again.

use super::Limiter;
use crate::engine::hash::KeyHash;
use crate::overrides::Overrides;
use crate::request::keys::{api_key, KeyPart, KeySource};
use crate::request::Request;
use serde_json::Value;
use std::borrow::Cow;
use std::cell::OnceCell;
use std::net::IpAddr;

#[derive(Debug, Default)]
pub struct Identity<'r> {
    pub api_key: Option<&'r str>,
    /// The API key's fleet-wide hash, when overrides exist (they are keyed by it).
    pub fleet_key: Option<KeyHash>,
    /// The client address, when an override lists addresses.
    pub ip: Option<IpAddr>,
    pub tier: Option<Cow<'r, str>>,
    /// The bearer JWT's payload, decoded when a rule or the tier first asks for a claim.
    jwt: OnceCell<Option<Value>>,
}

impl<'r> Identity<'r> {
    pub fn of(limiter: &'r Limiter, req: &'r Request<'r>, synced: &'r Overrides) -> Identity<'r> {
        let config = &limiter.config;
        let api_key = api_key(req, &config.api_key);
        let overridden = !synced.is_empty() || !limiter.static_overrides.is_empty();
        let fleet_key = overridden.then(|| api_key.map(|k| KeyHash::fleet(&[k.as_bytes()]))).flatten();
        let ip = (synced.has_ips() || limiter.static_overrides.has_ips())
            .then(|| req.client_ip(config.trusted_hops).and_then(|a| a.parse::<IpAddr>().ok()))
            .flatten();
        let mut who = Identity { api_key, fleet_key, ip, tier: None, jwt: OnceCell::new() };
        who.tier = match synced.tier(fleet_key) {
            Some(t) => Some(Cow::Borrowed(t)),
            None => limiter.tier_of(req, &who),
        };
        who
    }

    pub fn tier(&self) -> Option<&str> {
        self.tier.as_deref()
    }

    /// The value of a key source for this request (None when the request lacks it).
    pub fn part(&self, limiter: &Limiter, src: &KeySource, req: &'r Request<'r>) -> Option<KeyPart<'r>> {
        match src {
            KeySource::ApiKey => self.api_key.map(KeyPart::Borrowed),
            KeySource::Jwt(claim) => {
                let payload = self.jwt.get_or_init(|| req.jwt_payload());
                Request::claim(payload.as_ref(), claim).map(KeyPart::Owned)
            }
            _ => src.extract(req, &limiter.config.api_key, limiter.config.trusted_hops),
        }
    }
}

impl Limiter {
    /// The request's tier: the static key map, then the tier source, then the default.
    fn tier_of<'r>(&'r self, req: &'r Request<'r>, who: &Identity<'r>) -> Option<Cow<'r, str>> {
        let t = self.config.tier.as_ref()?;
        if let Some(key) = who.api_key.filter(|_| !t.keys.is_empty()) {
            if let Some((_, tier)) = t.keys.iter().find(|(k, _)| k == key) {
                return Some(Cow::Borrowed(tier.as_str()));
            }
        }
        if let Some(part) = t.source.as_ref().and_then(|src| who.part(self, src, req)) {
            if !part.as_bytes().is_empty() {
                return Some(part.into_text());
            }
        }
        t.default.as_deref().map(Cow::Borrowed)
    }

    /// The request's tier (see `tier_of`), for callers without an `Identity`.
    pub fn tier<'r>(&'r self, req: &'r Request<'r>) -> Option<Cow<'r, str>> {
        Identity::of(self, req, &self.static_overrides).tier
    }
}
