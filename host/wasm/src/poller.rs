//! Pulls overrides and per-key limits from the store (`GET /v1/sync`) on the root context's
//! tick, with `If-None-Match` so an unchanged poll is a cheap 304. Each worker keeps its own
//! copy (no host call per request to read it) and keeps the last good copy when the store is
//! unreachable.

use super::store_call::call;
use super::Active;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use std::rc::Rc;
use tollgate_core::algorithm::Nanos;
use tollgate_core::metrics::ProxyMetric;
use tollgate_core::overrides::Overrides;

#[derive(Default)]
pub struct Poller {
    last_run: Nanos,
    in_flight: Option<u32>,
}

impl Poller {
    pub fn tick(&mut self, active: &Active, now: Nanos) {
        let Some(store) = active.limiter.config.store.as_ref() else { return };
        if self.in_flight.is_some() || now.saturating_sub(self.last_run) < store.poll_interval.as_nanos() {
            return;
        }
        self.last_run = now;
        let version = active.overrides.borrow().version.clone();
        let etag = format!("\"{version}\"");
        let extra: Vec<(&str, &str)> = if version.is_empty() { vec![] } else { vec![("if-none-match", etag.as_str())] };
        self.in_flight = call(active, "GET", "/v1/sync", None, &extra);
    }

    /// The answer to a poll; false when `token` is not ours.
    pub fn on_response(&mut self, active: &Active, token: u32, body_size: usize) -> bool {
        if self.in_flight != Some(token) {
            return false;
        }
        self.in_flight = None;
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status").ok().flatten();
        match status.as_deref() {
            Some("304") => {}
            Some("200") => {
                let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                match Overrides::parse_sync(&body) {
                    Some(o) => *active.overrides.borrow_mut() = Rc::new(o),
                    None => active.metrics.proxy(ProxyMetric::StoreErrors, 1),
                }
            }
            _ => active.metrics.proxy(ProxyMetric::StoreErrors, 1),
        }
        true
    }
}
