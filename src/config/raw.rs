//! The configuration as written (contract §1): one serde type per JSON object, field for field,
//! each refusing fields it does not know. Every field is optional here (`null` counts as
//! absent); defaults and the checks that involve several fields are applied in `compile.rs`.
//! Fields are declared in the order the unknown-field message lists them.

use super::values::{
    Amount, Count, PathPrefix, Positive, PositiveDuration, QueryParams, RuleName, TierKeys, TierSource, Usd,
};
use super::{ErrorFormat, Estimate, FailureMode, HeaderFormat, MissingKey, Scope, Strategy, Sync, Unit};
use crate::engine::algorithm::Algorithm;
use crate::request::cidr::Cidr;
use crate::request::keys::KeySource;
use crate::request::matcher::Matcher;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Config {
    pub api_key: Option<ApiKey>,
    pub client_ip: Option<ClientIp>,
    pub exempt_paths: Option<Vec<PathPrefix>>,
    pub rules: Option<Vec<Rule>>,
    pub tier: Option<Tier>,
    pub llm: Option<Llm>,
    pub store: Option<Store>,
    pub response: Option<Response>,
    pub enabled: Option<bool>,
    pub debug: Option<bool>,
    pub slots: Option<Slots>,
    pub max_body_bytes: Option<Positive>,
    pub throttle_queue: Option<Positive>,
    pub allow: Option<Allow>,
    pub hold_headers: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct ApiKey {
    pub headers: Option<Vec<String>>,
    pub query: Option<QueryParams>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct ClientIp {
    pub trusted_hops: Option<Count>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Rule {
    pub name: Option<RuleName>,
    pub enabled: Option<bool>,
    #[serde(rename = "match")]
    pub matcher: Option<Matcher>,
    pub key: Option<Vec<KeySource>>,
    pub missing_key: Option<MissingKey>,
    pub algorithm: Option<Algorithm>,
    pub limit: Option<Amount>,
    pub window: Option<PositiveDuration>,
    pub burst: Option<Amount>,
    pub unit: Option<Unit>,
    pub scope: Option<Scope>,
    pub sync: Option<Sync>,
    pub strategy: Option<Strategy>,
    pub max_wait: Option<PositiveDuration>,
    pub degrade: Option<Degrade>,
    pub tiers: Option<BTreeMap<String, TierLimit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Degrade {
    pub set_model: Option<String>,
    pub add_header: Option<String>,
}

/// A rule's limit for one tier (`rules[i].tiers.NAME`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct TierLimit {
    pub limit: Option<Amount>,
    pub burst: Option<Amount>,
    pub unlimited: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Tier {
    pub source: Option<TierSource>,
    pub keys: Option<TierKeys>,
    pub default: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Llm {
    pub estimate: Option<Estimate>,
    pub prices: Option<BTreeMap<String, Price>>,
    pub include_usage: Option<bool>,
    pub default_price: Option<Price>,
    pub usage_header: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Price {
    pub input_per_mtok: Option<Usd>,
    pub output_per_mtok: Option<Usd>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Store {
    pub cluster: Option<String>,
    pub authority: Option<String>,
    pub token: Option<String>,
    pub timeout: Option<PositiveDuration>,
    pub sync_interval: Option<PositiveDuration>,
    pub failure_mode: Option<FailureMode>,
    pub fleet_size: Option<Positive>,
    pub poll_interval: Option<PositiveDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Response {
    pub status: Option<Count>,
    pub headers: Option<Vec<HeaderFormat>>,
    pub message: Option<String>,
    pub format: Option<ErrorFormat>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Slots {
    pub capacity: Option<Positive>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Allow {
    pub keys: Option<Vec<String>>,
    pub ips: Option<Vec<Cidr>>,
}
