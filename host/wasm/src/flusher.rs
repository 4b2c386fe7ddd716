//! The lease flusher of `sync: batched`: one per Envoy (a leader elected through shared
//! data), it renews leases ahead of need, sized to the recent rate, and returns what expired
//! leases did not spend. Runs on the root context's tick.

use super::store_call::{dispatch, rule_name};
use super::{Active, HostSharedData};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use tollgate_core::algorithm::Nanos;
use tollgate_core::global::{self, GlobalCheck};
use tollgate_core::lease::{self, IndexEntry};
use tollgate_core::shared_store::SharedStore;

/// An expired, empty lease leaves the index after this many sync intervals without use.
const FORGET_AFTER_INTERVALS: u64 = 10;

#[derive(Default)]
pub struct Flusher {
    /// This worker's id in the leader election.
    worker: u64,
    last_run: Nanos,
    /// The lease callout in flight and what it asked for.
    in_flight: Option<(u32, Vec<GlobalCheck>)>,
}

impl Flusher {
    pub fn new() -> Flusher {
        let mut id = [0u8; 8];
        let _ = getrandom::getrandom(&mut id);
        Flusher { worker: u64::from_le_bytes(id) | 1, ..Flusher::default() }
    }

    /// Whether this worker leads (renewing its heartbeat), else whether it takes over.
    fn lead(&self, now: Nanos, interval: Nanos) -> bool {
        let store = HostSharedData;
        let (bytes, cas) = store.get(lease::LEADER_KEY).unwrap_or_default();
        let current = lease::leader_decode(&bytes);
        if !lease::should_lead(current, self.worker, now, interval) {
            return false;
        }
        store.set(lease::LEADER_KEY, &lease::leader_encode(self.worker, now), cas).is_ok()
    }

    pub fn tick(&mut self, active: &Active, now: Nanos) {
        let Some(store_cfg) = active.limiter.config.store.as_ref() else { return };
        let interval = store_cfg.sync_interval.as_nanos();
        if now.saturating_sub(self.last_run) < interval || self.in_flight.is_some() {
            return;
        }
        self.last_run = now;
        if !self.lead(now, interval) {
            return;
        }
        let fleet = store_cfg.fleet_size;
        let engine = &active.limiter.engine;
        let ttl = active.limiter.lease_ttl();
        let (bytes, _) = HostSharedData.get(lease::INDEX_KEY).unwrap_or_default();
        let mut items: Vec<(GlobalCheck, u64, u64)> = Vec::new();
        let mut forget: Vec<IndexEntry> = Vec::new();
        for entry in lease::index_decode(&bytes) {
            let Some(check) = active.limiter.lease_check(&entry) else {
                forget.push(entry);
                continue;
            };
            let l = lease::peek(engine, &HostSharedData, &entry, now);
            if now >= l.expires_at {
                let back = lease::drain_expired(engine, &HostSharedData, &entry, now);
                if back > 0 {
                    items.push((check, 0, back));
                } else if now.saturating_sub(l.expires_at) > interval.saturating_mul(FORGET_AFTER_INTERVALS) {
                    forget.push(entry);
                }
                continue;
            }
            let used = l.last_grant.saturating_sub(l.units);
            let closing = l.expires_at.saturating_sub(now) < interval.saturating_mul(2);
            if l.renew || (closing && used > 0) {
                // Recent rate: what was spent since the grant (made `ttl` before expiry).
                let elapsed = now.saturating_sub(l.expires_at.saturating_sub(ttl)).max(1_000_000);
                let rate = (used as u128 * 1_000_000_000 / elapsed as u128) as u64;
                let max = lease::max_lease(check.algorithm, &check.quota, fleet);
                items.push((check, lease::lease_size(rate, interval, 1, max), 0));
            }
        }
        if !forget.is_empty() {
            lease::index_remove(&HostSharedData, &forget);
        }
        if items.is_empty() {
            return;
        }
        let body = global::lease_body(&items, rule_name(active));
        if let Some(token) = dispatch(active, "/v1/lease", &body) {
            self.in_flight = Some((token, items.into_iter().map(|(c, _, _)| c).collect()));
        } else {
            active.metrics.proxy(tollgate_core::metrics::ProxyMetric::StoreErrors, 1);
        }
    }

    /// The answer to a flush; false when `token` is not ours.
    pub fn on_response(&mut self, active: &Active, token: u32, body_size: usize, now: Nanos) -> bool {
        let Some((t, checks)) = self.in_flight.take() else { return false };
        if t != token {
            self.in_flight = Some((t, checks));
            return false;
        }
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        let body =
            hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten().unwrap_or_default();
        match global::parse_lease(status, &body, checks.len()) {
            Ok(grants) => {
                let ttl = active.limiter.lease_ttl();
                for (c, g) in checks.iter().zip(&grants) {
                    if g.granted > 0 {
                        lease::apply_grant(&active.limiter.engine, &HostSharedData, c, g, 0, now, ttl);
                    }
                }
            }
            Err(_) => active.metrics.proxy(tollgate_core::metrics::ProxyMetric::StoreErrors, 1),
        }
        true
    }
}
