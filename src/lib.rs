//! Tollgate: a rate-limiting proxy-wasm filter for Envoy and Istio.
//!
//! Reading order: `config` → `matcher`/`keys`/`request` → `engine` (`algorithm`,
//! `slot_table`, `shared_store`) → `limiter` (one request through the rules) → `response`.
//! Everything except `host` is pure logic, compiled and tested natively; `host` is the thin
//! proxy-wasm adapter, compiled only for `wasm32`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod algorithm;
pub mod calendar;
pub mod config;
pub mod duration;
pub mod engine;
pub mod global;
pub mod hash;
pub mod keys;
pub mod lease;
pub mod limiter;
pub mod llm;
pub mod matcher;
pub mod metrics;
pub mod overrides;
pub mod request;
pub mod response;
pub mod shared_store;
pub mod slot_table;
pub mod timefmt;

// Not in test builds: the wasm32 test binary runs under plain WASI, without Envoy.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod host;
