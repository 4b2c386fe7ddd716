//! Tollgate's core: rate limiting for Envoy and Istio, knowing no host.
//!
//! Reading order: `config` → `matcher`/`keys`/`request` → `engine` (`algorithm`,
//! `slot_table`, `shared_store`) → `limiter` (one request through the rules) → `response`.
//! Everything here is pure logic, compiled and tested natively and on wasm32; the hosts
//! (host/wasm: the proxy-wasm filter) carry out what it decides.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod config;
pub mod engine;
pub mod filter;
pub mod global;
pub mod keys;
pub mod lease;
pub mod limiter;
pub mod llm;
pub mod matcher;
pub mod metrics;
pub mod overrides;
pub mod request;
pub mod response;
pub mod time;
pub mod wire;
