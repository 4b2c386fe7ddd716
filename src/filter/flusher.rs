//! The lease flusher of `sync: batched`: one per proxy (a worker elected leader through shared
//! data), it renews leases ahead of need, sized to the recent rate, and returns what expired
//! leases did not spend. Runs on the worker's tick; its store call is answered through
//! `on_answer`.

use super::{Host, StoreAnswer, StoreCall};
use crate::engine::algorithm::Nanos;
use crate::global::lease::{self, IndexEntry};
use crate::global::{self, GlobalCheck};
use crate::limiter::Limiter;

/// An expired, empty lease leaves the index after this many sync intervals without use.
const FORGET_AFTER_INTERVALS: u64 = 10;

#[derive(Debug, Default)]
pub struct Flusher {
    /// This worker's id in the leader election (random, never 0).
    worker: u64,
    last_run: Nanos,
    /// The lease call in flight and what it asked for.
    in_flight: Option<(u32, Vec<GlobalCheck>)>,
}

/// What one flush asks the store for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flush {
    /// (check, units wanted, unspent units given back).
    pub items: Vec<(GlobalCheck, u64, u64)>,
    /// Index entries whose lease is gone for good.
    pub forget: Vec<IndexEntry>,
}

impl Flusher {
    pub fn new(worker_id: u64) -> Flusher {
        Flusher { worker: worker_id | 1, ..Flusher::default() }
    }

    /// Whether this worker leads (renewing its heartbeat), else whether it takes over.
    fn lead(&self, host: &dyn Host, now: Nanos, interval: Nanos) -> bool {
        let store = host.shared();
        let (bytes, cas) = store.get(lease::LEADER_KEY).unwrap_or_default();
        if !lease::should_lead(lease::leader_decode(&bytes), self.worker, now, interval) {
            return false;
        }
        store.set(lease::LEADER_KEY, &lease::leader_encode(self.worker, now), cas).is_ok()
    }

    /// Renew and return leases when it is time and this worker leads; false when a call that
    /// should have gone out could not be sent.
    pub fn tick(&mut self, limiter: &Limiter, host: &dyn Host, now: Nanos) -> bool {
        let Some(store) = limiter.config.store.as_ref() else { return true };
        let interval = store.sync_interval.as_nanos();
        if now.saturating_sub(self.last_run) < interval || self.in_flight.is_some() {
            return true;
        }
        self.last_run = now;
        if !self.lead(host, now, interval) {
            return true;
        }
        let flush = plan(limiter, host, now);
        if !flush.forget.is_empty() {
            lease::index_remove(host.shared(), &flush.forget);
        }
        if flush.items.is_empty() {
            return true;
        }
        let body = global::lease_body(&flush.items, |i| limiter.rule_name(i).to_string());
        match host.dispatch(&StoreCall::post(store, "/v1/lease", body)) {
            Some(token) => {
                self.in_flight = Some((token, flush.items.into_iter().map(|(c, _, _)| c).collect()));
                true
            }
            None => false,
        }
    }

    /// The answer to a flush: None when `token` is not ours, else whether it was good.
    pub fn on_answer(
        &mut self,
        limiter: &Limiter,
        host: &dyn Host,
        token: u32,
        answer: StoreAnswer,
        now: Nanos,
    ) -> Option<bool> {
        match &self.in_flight {
            Some((t, _)) if *t == token => {}
            _ => return None,
        }
        let (_, checks) = self.in_flight.take()?;
        let Ok(grants) = global::parse_lease(answer.status, answer.body, checks.len()) else { return Some(false) };
        let ttl = lease::lease_ttl(limiter.config.store.as_ref());
        for (c, g) in checks.iter().zip(&grants) {
            if g.granted > 0 {
                lease::apply_grant(&limiter.engine, host.shared(), c, g, 0, now, ttl);
            }
        }
        Some(true)
    }
}

/// Which leases to renew (those in use that are closing, or asked to be renewed), return
/// (expired with units left) or forget (expired, empty and unused for a while).
pub fn plan(limiter: &Limiter, host: &dyn Host, now: Nanos) -> Flush {
    let mut flush = Flush::default();
    let Some(store) = limiter.config.store.as_ref() else { return flush };
    let interval = store.sync_interval.as_nanos();
    let ttl = lease::lease_ttl(limiter.config.store.as_ref());
    let engine = &limiter.engine;
    let (bytes, _) = host.shared().get(lease::INDEX_KEY).unwrap_or_default();
    for entry in lease::index_decode(&bytes) {
        let Some(check) = lease::lease_check(&limiter.config.rules, &entry) else {
            flush.forget.push(entry);
            continue;
        };
        let l = lease::peek(engine, host.shared(), &entry, now);
        if now >= l.expires_at {
            let back = lease::drain_expired(engine, host.shared(), &entry, now);
            if back > 0 {
                flush.items.push((check, 0, back));
            } else if now.saturating_sub(l.expires_at) > interval.saturating_mul(FORGET_AFTER_INTERVALS) {
                flush.forget.push(entry);
            }
            continue;
        }
        let used = l.last_grant.saturating_sub(l.units);
        let closing = l.expires_at.saturating_sub(now) < interval.saturating_mul(2);
        if l.renew || (closing && used > 0) {
            // Recent rate: what was spent since the grant (made `ttl` before expiry).
            let elapsed = now.saturating_sub(l.expires_at.saturating_sub(ttl)).max(1_000_000);
            let rate = (used as u128 * 1_000_000_000 / elapsed as u128) as u64;
            let max = lease::max_lease(check.algorithm, &check.quota, store.fleet_size);
            flush.items.push((check, lease::lease_size(rate, interval, 1, max), 0));
        }
    }
    flush
}
