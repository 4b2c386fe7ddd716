//! Global rules in the glue: the strict callout to tollgate-store, its answer, and the
//! failure modes when there is none. The decisions themselves are in `tollgate_core::global` and
//! `tollgate_core::limiter`.

use super::{now_nanos, Active, HostSharedData, TollgateFilter};
use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;
use tollgate_core::algorithm::Decision;
use tollgate_core::global::{self, Fallback, GlobalCheck, StoreFailure};
use tollgate_core::lease;
use tollgate_core::limiter::{AppliedRule, Reply, RuleOutcome, RuleStatus};
use tollgate_core::metrics::ProxyMetric;

/// A request waiting for the store.
#[derive(Default)]
pub struct PendingGlobal {
    pub checks: Vec<GlobalCheck>,
    pub local: Vec<AppliedRule>,
    pub token: Option<u32>,
    /// The callout in flight asks for leases (batched) rather than a check (strict).
    pub leasing: bool,
}

/// What to do with the request once global rules are decided.
pub enum Next {
    Continue,
    /// A local reply was sent.
    Replied,
}

pub fn rule_name(active: &Active) -> impl Fn(usize) -> String + '_ {
    |i| active.limiter.config.rules.get(i).map(|r| r.name.clone()).unwrap_or_default()
}

/// POST a JSON body to the store; the callout's token.
pub fn dispatch(active: &Active, path: &str, body: &[u8]) -> Option<u32> {
    call(active, "POST", path, Some(body), &[])
}

/// Call the store with the proxy token and `store.timeout`; the callout's token.
pub fn call(active: &Active, method: &str, path: &str, body: Option<&[u8]>, extra: &[(&str, &str)]) -> Option<u32> {
    let store = active.limiter.config.store.as_ref()?;
    let bearer = store.token.as_ref().map(|t| format!("Bearer {t}")).unwrap_or_default();
    let mut headers = vec![(":method", method), (":path", path), (":authority", store.authority.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    if !bearer.is_empty() {
        headers.push(("authorization", bearer.as_str()));
    }
    headers.extend_from_slice(extra);
    let timeout = std::time::Duration::from_nanos(store.timeout.as_nanos());
    hostcalls::dispatch_http_call(&store.cluster, headers, body, vec![], timeout).ok()
}

impl TollgateFilter {
    /// Ask the store about the request's global rules (strict). True when the request must
    /// wait for the answer.
    pub(super) fn start_global(&mut self, active: &Active, checks: Vec<GlobalCheck>, local: Vec<AppliedRule>) -> Next {
        let now = now_nanos();
        let batched = checks.iter().all(|c| active.limiter.is_batched(c.rule));
        if batched && lease::spend_all(&active.limiter.engine, &HostSharedData, &checks, now) {
            // Steady state of batched sync: spent from this proxy's leases, no callout.
            self.global_charged = checks.clone();
            let outcomes: Vec<RuleOutcome> = checks
                .iter()
                .map(|c| RuleOutcome { rule: c.rule, status: RuleStatus::Allowed, near_limit: false })
                .collect();
            active.metrics.record_outcomes(&outcomes);
            self.global = PendingGlobal { local, ..PendingGlobal::default() };
            let local = std::mem::take(&mut self.global.local);
            return self.conclude_with(active, &local, &[], &[]);
        }
        self.global = PendingGlobal { checks, local, token: None, leasing: batched };
        if active.breaker.borrow_mut().allows(now) {
            let (path, body) = if batched {
                let items: Vec<(GlobalCheck, u64, u64)> =
                    self.global.checks.iter().map(|c| (*c, active.limiter.first_lease(c), 0)).collect();
                ("/v1/lease", global::lease_body(&items, rule_name(active)))
            } else {
                ("/v1/check", global::check_body(&self.global.checks, rule_name(active)))
            };
            if let Some(token) = dispatch(active, path, &body) {
                self.global.token = Some(token);
                active.metrics.proxy(ProxyMetric::StoreWaited, 1);
                return Next::Replied; // paused until on_http_call_response
            }
            active.breaker.borrow_mut().failure(now_nanos());
            return self.store_failed(active, Some(StoreFailure::Error));
        }
        self.store_failed(active, None)
    }

    /// The store answered (or timed out).
    pub(super) fn on_store_answer(&mut self, active: &Active, body_size: usize) {
        self.global.token = None;
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        let body = hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let answer = if self.global.leasing {
            global::parse_lease(status, &body, self.global.checks.len())
                .map(|grants| self.spend_grants(active, &grants))
        } else {
            global::parse_check(status, &body, self.global.checks.len()).map(|a| a.decisions)
        };
        let next = match answer {
            Ok(decisions) => {
                active.breaker.borrow_mut().success();
                self.conclude(active, &decisions)
            }
            Err(failure) => {
                active.breaker.borrow_mut().failure(now_nanos());
                self.store_failed(active, Some(failure))
            }
        };
        if let Next::Continue = next {
            super::ffi::resume_request();
        }
    }

    /// Keep what the store leased and spend this request's cost from it; the decisions say
    /// which checks were covered. When some is not, the units spent for the others go back
    /// into their leases (the request will be denied).
    fn spend_grants(&mut self, active: &Active, grants: &[global::Grant]) -> Vec<Decision> {
        let now = now_nanos();
        let ttl = active.limiter.lease_ttl();
        let engine = &active.limiter.engine;
        let covered: Vec<bool> = self
            .global
            .checks
            .iter()
            .zip(grants)
            .map(|(c, g)| lease::apply_grant(engine, &HostSharedData, c, g, c.cost, now, ttl))
            .collect();
        let entries: Vec<lease::IndexEntry> = self.global.checks.iter().map(lease::IndexEntry::of).collect();
        lease::index_add(&HostSharedData, &entries);
        if covered.iter().any(|c| !c) {
            for (c, ok) in self.global.checks.iter().zip(&covered) {
                if *ok {
                    lease::give_back(engine, &HostSharedData, c, c.cost, now);
                }
            }
        }
        grants.iter().zip(&covered).map(|(g, ok)| Decision { allowed: *ok, ..g.decision }).collect()
    }

    /// No answer from the store: count it and apply `store.failure_mode`. `failure` is None
    /// when the circuit breaker skipped the call.
    fn store_failed(&mut self, active: &Active, failure: Option<StoreFailure>) -> Next {
        match failure {
            Some(StoreFailure::Timeout) => active.metrics.proxy(ProxyMetric::StoreTimeouts, 1),
            Some(StoreFailure::Error) => active.metrics.proxy(ProxyMetric::StoreErrors, 1),
            None => {}
        }
        active.metrics.proxy(ProxyMetric::FailureModeUsed, 1);
        let Some(store) = active.limiter.config.store.as_ref() else { return Next::Continue };
        match global::fallback(store) {
            Fallback::LocalShare => {
                let (decisions, reservations, stats) =
                    active.limiter.admit_local_share(&HostSharedData, &self.global.checks, now_nanos());
                active.metrics.record_stats(&stats);
                self.reservations.extend(reservations);
                self.global.checks.iter_mut().for_each(|c| c.cost = 0); // charged locally, not at the store
                self.conclude(active, &decisions)
            }
            Fallback::Allow => {
                let local = std::mem::take(&mut self.global.local);
                self.global.checks.clear();
                self.conclude_with(active, &local, &[], &[])
            }
            Fallback::Unavailable => {
                self.refund_all(active);
                if let Reply::Deny { status, headers, body } = active.limiter.store_unavailable(self.shape) {
                    let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    super::ffi::send_response(status, &pairs, body.as_bytes());
                }
                Next::Replied
            }
        }
    }

    fn conclude(&mut self, active: &Active, decisions: &[Decision]) -> Next {
        let local = std::mem::take(&mut self.global.local);
        let checks = self.global.checks.clone();
        self.conclude_with(active, &local, &checks, decisions)
    }

    pub(super) fn conclude_with(
        &mut self,
        active: &Active,
        local: &[AppliedRule],
        checks: &[GlobalCheck],
        decisions: &[Decision],
    ) -> Next {
        let (reply, outcomes) = active.limiter.conclude_global(local, checks, decisions, self.shape, now_nanos());
        active.metrics.record_outcomes(&outcomes);
        match reply {
            Reply::Continue { headers } => {
                self.response_headers = headers;
                // Charged at the store: settle (tokens, cost) or release (concurrency) there.
                self.global_charged =
                    checks.iter().zip(decisions).filter(|(c, d)| d.allowed && c.cost > 0).map(|(c, _)| *c).collect();
                Next::Continue
            }
            Reply::Deny { status, headers, body } => {
                self.refund_all(active);
                let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                super::ffi::send_response(status, &pairs, body.as_bytes());
                Next::Replied
            }
        }
    }

    /// Give back every local charge of a request that will not go on.
    fn refund_all(&mut self, active: &Active) {
        let reservations = std::mem::take(&mut self.reservations);
        let stats = active.limiter.refund(&HostSharedData, &reservations, now_nanos());
        active.metrics.record_stats(&stats);
    }
}
