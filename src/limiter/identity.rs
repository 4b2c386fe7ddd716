//! Who a request is, worked out once per request before the rules run: its API key, the
//! fleet-wide hash overrides are keyed by, its client address (when overrides need it) and its
//! tier. Every rule then reads these instead of scanning the headers again.

use super::Limiter;
use crate::hash::KeyHash;
use crate::keys::api_key;
use crate::overrides::Overrides;
use crate::request::Request;
use std::borrow::Cow;
use std::net::IpAddr;

#[derive(Debug, Default)]
pub struct Identity<'r> {
    pub api_key: Option<&'r str>,
    /// The API key's fleet-wide hash, when overrides exist (they are keyed by it).
    pub fleet_key: Option<KeyHash>,
    /// The client address, when an override lists addresses.
    pub ip: Option<IpAddr>,
    pub tier: Option<Cow<'r, str>>,
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
        let tier = synced.tier(fleet_key).map(Cow::Borrowed).or_else(|| limiter.tier_of(req, api_key));
        Identity { api_key, fleet_key, ip, tier }
    }

    pub fn tier(&self) -> Option<&str> {
        self.tier.as_deref()
    }
}

impl Limiter {
    /// The request's tier: the static key map, then the tier source, then the default.
    pub fn tier_of<'r>(&'r self, req: &'r Request<'r>, api_key: Option<&str>) -> Option<Cow<'r, str>> {
        let t = self.config.tier.as_ref()?;
        if let Some(key) = api_key.filter(|_| !t.keys.is_empty()) {
            if let Some((_, tier)) = t.keys.iter().find(|(k, _)| k == key) {
                return Some(Cow::Borrowed(tier.as_str()));
            }
        }
        if let Some(src) = &t.source {
            if let Some(part) = src.extract(req, &self.config.api_key, self.config.trusted_hops) {
                if !part.as_bytes().is_empty() {
                    return Some(part.into_text());
                }
            }
        }
        t.default.as_deref().map(Cow::Borrowed)
    }

    /// The request's tier (see `tier_of`).
    pub fn tier<'r>(&'r self, req: &'r Request<'r>) -> Option<Cow<'r, str>> {
        self.tier_of(req, api_key(req, &self.config.api_key))
    }
}
