//! Tollgate's core: rate limiting for Envoy and Istio, knowing no host. Everything here is pure
//! logic, compiled and tested natively and on wasm32; the hosts (host/wasm: the proxy-wasm
//! filter) carry out what it decides.
//!
//! Read top-down; each module depends only on those above it:
//! - `time`: nanoseconds, durations, calendar periods, RFC 3339;
//! - `engine`: the five algorithms over a bounded slot table of shared counters, exact across
//!   workers (compare-and-swap), key hashes;
//! - `request`: the view of one request, its key sources, match conditions, address blocks;
//! - `config`: the plugin configuration, read and validated with field paths;
//! - `llm`: what an LLM request asks for and what its response used (usage in JSON and SSE);
//! - `global`: rules shared by many proxies (the store's wire types, leases);
//! - `overrides`: allow-lists, emergency access, grants and per-key limits from the store;
//! - `response`: rate-limit headers and error bodies in each provider's shape;
//! - `limiter`: one request through the rules;
//! - `metrics`: metric names and one worker's tally;
//! - `filter`: the whole filter over any host (`Host`, `Stream`, `Worker`, `Flow`).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod config;
pub mod engine;
pub mod filter;
pub mod global;
pub mod limiter;
pub mod llm;
pub mod metrics;
pub mod overrides;
pub mod request;
pub mod response;
pub mod time;
