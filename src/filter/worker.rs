//! One worker's state: the compiled rules, the throttle queue, the store's circuit breaker,
//! the overrides last pulled, settlements waiting to be sent, metrics not yet flushed, and the
//! background jobs its tick runs (lease flusher, sync poller, settlements, releases).
//! Requests of the worker share it; it is used from the worker's thread only.

use super::failure_mode::Breaker;
use super::flusher::Flusher;
use super::held::{HeldQueue, Release};
use super::poller::{Polled, Poller};
use super::{Host, StoreAnswer, StoreCall};
use crate::config::{Config, ConfigError};
use crate::engine::EngineStats;
use crate::global::{self, GlobalCheck};
use crate::limiter::{Evaluation, Limiter, RuleOutcome, RuleStatus};
use crate::metrics::{ProxyMetric, RuleMetric, Tally};
use crate::overrides::Overrides;
use std::cell::RefCell;
use std::rc::Rc;

pub struct Worker {
    pub limiter: Limiter,
    pub tally: Tally,
    pub(super) held: RefCell<HeldQueue>,
    pub(super) breaker: RefCell<Breaker>,
    /// Corrections for global counters (settled tokens, released slots), sent by the tick.
    pub(super) adjustments: RefCell<Vec<(GlobalCheck, i64)>>,
    /// Overrides and per-key limits last pulled from the store.
    pub(super) overrides: RefCell<Rc<Overrides>>,
    flusher: RefCell<Flusher>,
    poller: RefCell<Poller>,
}

/// Why a configuration was refused.
#[derive(Debug)]
pub enum ConfigureError {
    Invalid(ConfigError),
    /// The host's shared data refused the counter table.
    SharedData(String),
}

impl std::fmt::Display for ConfigureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigureError::Invalid(e) => write!(f, "invalid configuration: {e}"),
            ConfigureError::SharedData(e) => write!(f, "cannot allocate shared data for counters: {e}"),
        }
    }
}

impl Worker {
    /// Compile the plugin configuration and prepare the shared counter table.
    /// `worker_id`: random per worker, for the lease flusher's leader election.
    pub fn configure(bytes: &[u8], host: &dyn Host, worker_id: u64) -> Result<Worker, ConfigureError> {
        let config = Config::parse(bytes).map_err(ConfigureError::Invalid)?;
        let limiter = Limiter::new(config);
        limiter.prepare(host.shared()).map_err(|e| ConfigureError::SharedData(format!("{e:?}")))?;
        if limiter.config.enabled {
            log::info!(
                "configured {} rule(s), {} counter slots ({} KiB of shared data)",
                limiter.config.rules.len(),
                limiter.engine.table().capacity(),
                limiter.engine.table().value_bytes() / 1024
            );
        } else {
            log::info!("disabled by configuration (\"enabled\": false): every request passes");
        }
        Ok(Worker::new(limiter, worker_id))
    }

    pub fn new(limiter: Limiter, worker_id: u64) -> Worker {
        let held = HeldQueue::new(limiter.config.throttle_queue as usize);
        Worker {
            tally: Tally::new(limiter.config.rules.len()),
            held: RefCell::new(held),
            breaker: RefCell::new(Breaker::default()),
            adjustments: RefCell::new(Vec::new()),
            overrides: RefCell::new(Rc::new(Overrides::default())),
            flusher: RefCell::new(Flusher::new(worker_id)),
            poller: RefCell::new(Poller::default()),
            limiter,
        }
    }

    /// The periodic work (every 10 ms or so): lease renewals, the sync poll, settlements of
    /// global counters. Returns the held requests that are due, for the host to resume (and
    /// then to report each with `resumed`).
    pub fn tick(&self, host: &dyn Host) -> Vec<Release> {
        let now = host.now();
        let due = self.held.borrow_mut().due(now);
        if self.limiter.needs.leases && !self.flusher.borrow_mut().tick(&self.limiter, host, now) {
            self.tally.proxy(ProxyMetric::StoreErrors, 1);
        }
        if let Some(store) = self.limiter.config.store.as_ref() {
            let version = self.overrides.borrow().version.clone();
            let call = self.poller.borrow_mut().due(store, &version, now);
            if let Some(token) = call.and_then(|c| host.dispatch(&c)) {
                self.poller.borrow_mut().sent(token);
            }
            let adjustments = std::mem::take(&mut *self.adjustments.borrow_mut());
            if !adjustments.is_empty() {
                let body = global::adjust_body(&adjustments, |i| self.limiter.rule_name(i).to_string());
                if host.dispatch(&StoreCall::post(store, "/v1/adjust", body)).is_none() {
                    self.tally.proxy(ProxyMetric::StoreErrors, 1);
                }
            }
        }
        due
    }

    /// A held request went on (`resumed`: the host could resume it).
    pub fn resumed(&self, release: Release, resumed: bool) {
        if resumed {
            self.tally.released(release.waited_ns);
        } else {
            self.tally.abandoned();
        }
    }

    /// An answer to one of the worker's own calls (flush, poll, settlements).
    pub fn on_store_answer(&self, host: &dyn Host, token: u32, answer: StoreAnswer) {
        let now = host.now();
        match self.flusher.borrow_mut().on_answer(&self.limiter, host, token, answer, now) {
            Some(true) => return,
            Some(false) => return self.tally.proxy(ProxyMetric::StoreErrors, 1),
            None => {}
        }
        match self.poller.borrow_mut().on_answer(token, answer) {
            Polled::Unchanged => {}
            Polled::Changed(o) => *self.overrides.borrow_mut() = o,
            Polled::Failed => self.tally.proxy(ProxyMetric::StoreErrors, 1),
            // Answers to /v1/adjust: only failures matter.
            Polled::NotOurs if answer.status == Some(200) => {}
            Polled::NotOurs => self.tally.proxy(ProxyMetric::StoreErrors, 1),
        }
    }

    /// The overrides in force now.
    pub fn overrides(&self) -> Rc<Overrides> {
        self.overrides.borrow().clone()
    }

    pub(super) fn record(&self, eval: &Evaluation) {
        self.record_outcomes(&eval.rules);
        self.record_stats(&eval.stats);
    }

    pub(super) fn record_outcomes(&self, outcomes: &[RuleOutcome]) {
        for o in outcomes {
            let m = match o.status {
                RuleStatus::Allowed | RuleStatus::Unlimited => RuleMetric::Allowed,
                RuleStatus::Denied | RuleStatus::MissingKey | RuleStatus::UnknownModel => RuleMetric::Denied,
                RuleStatus::ShadowDenied => RuleMetric::ShadowDenied,
                RuleStatus::Degraded => RuleMetric::Degraded,
                RuleStatus::Throttled => RuleMetric::Throttled,
            };
            self.tally.rule(o.rule, m);
            if o.near_limit {
                self.tally.rule(o.rule, RuleMetric::NearLimit);
            }
        }
    }

    pub(super) fn record_stats(&self, s: &EngineStats) {
        self.tally.proxy(ProxyMetric::CasRetries, u64::from(s.cas_retries));
        self.tally.proxy(ProxyMetric::CasExhausted, u64::from(s.cas_exhausted));
        self.tally.proxy(ProxyMetric::SlotsEvicted, u64::from(s.evictions));
        self.tally.proxy(ProxyMetric::SlotsOverflow, u64::from(s.overflows));
    }
}
