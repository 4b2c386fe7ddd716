//! The proxy operations on counters: check-and-charge a batch, lease, adjust.
//!
//! Every decision is computed by the filter's own code (`tollgate_core::engine::algorithm`), on the state
//! read from Redis, and committed with the compare-and-set script: if the counter changed
//! between the read and the write, the script returns the current value and the decision is
//! recomputed on it (at most `MAX_CAS_RETRIES` times). Decisions are therefore exactly the
//! filter's, and atomic per counter across every replica of the store.

use std::hash::{BuildHasher, Hash, Hasher};
use std::time::Duration;

use tollgate_core::engine::algorithm::{Algorithm, Decision, Nanos, Quota, State};

use crate::backend::{Backend, Cas, IndexEntry, StoreError};
use crate::metrics::Metrics;

/// Retries of one compare-and-set before giving up with `StoreError::Contention`.
pub const MAX_CAS_RETRIES: u32 = 64;

/// A request waits at most this many Redis timeouts for its turn on a counter.
pub const LOCK_WAIT_TIMEOUTS: u32 = 5;

/// Added to every TTL so a key outlives its counter's idle time a little.
pub const TTL_MARGIN_MS: u64 = 1_000;

/// TTLs are capped (10 years): a counter idle for longer is forgotten.
pub const MAX_TTL_MS: u64 = 10 * 366 * 24 * 3600 * 1000;

/// One counter: a rule's counter of one key hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub rule: String,
    /// 16 lower-case hex digits (validated).
    pub key: String,
    pub algorithm: Algorithm,
    pub quota: Quota,
}

/// The Redis key of a counter: `tollgate:{KEYHASH}:RULE`. The hash tag `{KEYHASH}` puts every
/// counter of one key in one Redis Cluster slot.
pub fn redis_key(key_hash: &str, rule: &str) -> String {
    format!("tollgate:{{{key_hash}}}:{rule}")
}

/// The rule index of a key hash: a Redis hash `tollgate:{KEYHASH}:#rules` of RULE → the
/// counter's last quota (`ALGORITHM LIMIT WINDOW_MS BURST`), written with every counter write and
/// living at least as long as the key's longest-lived counter. `#` cannot occur in a rule
/// name, so the index never collides with a counter.
pub fn index_key(key_hash: &str) -> String {
    format!("tollgate:{{{key_hash}}}:#rules")
}

/// `ALGORITHM LIMIT WINDOW_MS BURST`, as stored in the rule index.
pub fn encode_quota(algorithm: Algorithm, q: &Quota) -> String {
    format!("{} {} {} {}", algorithm.name(), q.limit, q.window_ns / 1_000_000, q.burst)
}

/// The inverse of `encode_quota` (None for anything else).
pub fn decode_quota(text: &str) -> Option<(Algorithm, Quota)> {
    let mut parts = text.split(' ');
    let algorithm = Algorithm::from_name(parts.next()?)?;
    let mut num = || parts.next()?.parse::<u64>().ok().filter(|n| *n > 0);
    let (limit, window_ms, burst) = (num()?, num()?, num()?);
    Some((algorithm, Quota { limit, window_ns: window_ms.checked_mul(1_000_000)?, burst }))
}

/// The state of a stored counter value as read under `quota` (`encode_quota`'s text): the
/// default (fresh) state when the value was written under another quota. See `Counter::state`.
pub fn state_under(stored: &[u8], quota: &str) -> State {
    match stored.get(State::BYTES..) {
        Some(tag) if !tag.is_empty() && tag != quota.as_bytes() => State::default(),
        _ => State::decode(stored),
    }
}

impl Counter {
    pub fn redis_key(&self) -> String {
        redis_key(&self.key, &self.rule)
    }

    /// The stored value: the state, then the quota it was written under
    /// (`encode_quota`, e.g. `gcra 10 60000 10`).
    pub fn encode(&self, state: &State) -> Vec<u8> {
        let mut out = encode(state);
        out.extend_from_slice(encode_quota(self.algorithm, &self.quota).as_bytes());
        out
    }

    /// The state of a stored value, as this counter's quota reads it. A state only means
    /// something under the quota it was written with (GCRA's time is scaled by the limit,
    /// windows are numbered by their length), so a value written under another quota (a
    /// reload, a tier change, a per-key limit or grant) starts afresh, as the filter's local
    /// counters do (they are keyed by their quota). A value without a quota (written before
    /// quotas were stored) is read as it is.
    pub fn state(&self, stored: &[u8]) -> State {
        state_under(stored, &encode_quota(self.algorithm, &self.quota))
    }

    /// Commit `new` over `old` with compare-and-set, recording this counter in its key's
    /// rule index.
    async fn cas(&self, backend: &Backend, old: &[u8], new: &[u8], ttl_ms: u64) -> Result<Cas, StoreError> {
        let (index, quota) = (index_key(&self.key), encode_quota(self.algorithm, &self.quota));
        let entry = IndexEntry { key: &index, rule: &self.rule, quota: &quota };
        backend.cas(&self.redis_key(), old, new, ttl_ms, Some(entry)).await
    }

    /// How long the key must live: until the counter is back to a fresh-equivalent state
    /// (the decision's reset time, plus one window for the sliding window, whose previous
    /// window still weighs), plus a margin.
    pub fn ttl_ms(&self, d: &Decision) -> u64 {
        let extra = match self.algorithm {
            Algorithm::SlidingWindow => self.quota.window_ns,
            _ => 0,
        };
        ns_to_ms_ceil(d.reset_after_ns.saturating_add(extra)).saturating_add(TTL_MARGIN_MS).min(MAX_TTL_MS)
    }
}

pub fn ns_to_ms_ceil(ns: u64) -> u64 {
    ns.div_ceil(1_000_000)
}

pub fn encode(state: &State) -> Vec<u8> {
    let mut out = [0u8; State::BYTES];
    state.encode(&mut out);
    out.to_vec()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Index of the first check that denied (then nothing was charged).
    pub denied_by: Option<usize>,
    pub results: Vec<Decision>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseOutcome {
    pub granted: u64,
    pub decision: Decision,
}

/// Striped per-counter locks of one replica: requests of one replica for the same counter
/// take turns, so compare-and-set conflicts only happen between replicas (and a hot counter
/// costs no wasted round trips). Only one lock is held at a time: no deadlock.
pub struct KeyLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl Default for KeyLocks {
    fn default() -> KeyLocks {
        KeyLocks { stripes: (0..1024).map(|_| tokio::sync::Mutex::new(())).collect() }
    }
}

impl KeyLocks {
    /// Lock `key`'s stripe, waiting at most `wait`.
    async fn lock(&self, key: &str, wait: Duration) -> Result<tokio::sync::MutexGuard<'_, ()>, StoreError> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let len = self.stripes.len().max(1) as u64;
        let Some(stripe) = self.stripes.get((h.finish() % len) as usize) else {
            return Err(StoreError::Unavailable("no lock stripe".into()));
        };
        tokio::time::timeout(wait, stripe.lock()).await.map_err(|_| StoreError::Busy)
    }
}

/// A short random pause after repeated conflicts with other replicas (0..=2 ms).
async fn backoff(attempt: u32) {
    if attempt < 2 {
        return;
    }
    let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
    tokio::time::sleep(Duration::from_micros(r % 2_000)).await;
}

pub struct Counters<'a> {
    pub backend: &'a Backend,
    pub metrics: &'a Metrics,
    pub locks: &'a KeyLocks,
}

impl Counters<'_> {
    /// How long a request may queue behind others of this replica for one counter.
    fn lock_wait(&self) -> Duration {
        self.backend.timeout().saturating_mul(LOCK_WAIT_TIMEOUTS)
    }

    /// This replica's turn on a counter.
    async fn turn(&self, key: &str) -> Result<tokio::sync::MutexGuard<'_, ()>, StoreError> {
        let turn = self.locks.lock(key, self.lock_wait()).await;
        if turn.is_err() {
            Metrics::add(&self.metrics.busy, 1);
        }
        turn
    }

    /// Check every counter for its cost; the batch is denied if any check denies, and then
    /// nothing is charged (charges already committed are refunded). Same semantics as the
    /// filter's engine: read and decide all first; if all allow, commit each with CAS.
    pub async fn check(&self, checks: &[(Counter, u64)], now: Nanos) -> Result<BatchOutcome, StoreError> {
        let decide = |c: &Counter, cost: u64, state: State| c.algorithm.check(state, now, cost, &c.quota);
        // Several checks: decide all first, so a denied batch writes nothing at all.
        let mut planned: Vec<Decision> = Vec::new();
        if checks.len() > 1 {
            let reads = futures_util::future::join_all(checks.iter().map(|(c, _)| self.backend.get_key(c))).await;
            for ((counter, cost), read) in checks.iter().zip(reads) {
                planned.push(decide(counter, *cost, counter.state(&read?)).0);
            }
            if let Some(i) = planned.iter().position(|d| !d.allowed) {
                return Ok(BatchOutcome { denied_by: Some(i), results: planned });
            }
        }
        let mut results: Vec<Decision> = Vec::with_capacity(checks.len());
        for (i, (counter, cost)) in checks.iter().enumerate() {
            let committed = if *cost > 0 {
                self.commit(counter, |state| decide(counter, *cost, state)).await
            } else if let Some(d) = planned.get(i) {
                Ok(*d)
            } else {
                self.backend.get_key(counter).await.map(|old| decide(counter, 0, counter.state(&old)).0)
            };
            let failure = match committed {
                Ok(d) if d.allowed => {
                    results.push(d);
                    continue;
                }
                Ok(d) => Ok(d),
                Err(e) => Err(e),
            };
            // Denied now (another request took the quota since the plan), or Redis failed:
            // undo this batch's charges.
            for ((c, cost), _) in checks.iter().zip(&results) {
                if *cost > 0 {
                    self.adjust(c, -clamp_i64(*cost), now).await?;
                }
            }
            let denial = failure?;
            results.push(denial);
            for (c, cost) in checks.iter().skip(i + 1) {
                let old = self.backend.get_key(c).await?;
                results.push(decide(c, *cost, c.state(&old)).0);
            }
            return Ok(BatchOutcome { denied_by: Some(i), results });
        }
        Ok(BatchOutcome { denied_by: None, results })
    }

    /// Under the counter's lock: read it, decide, and commit the new state with CAS; on a
    /// mismatch (another replica wrote meanwhile), decide again on the current value.
    /// Returns the committed decision, or a denial (then nothing was written).
    async fn commit(
        &self,
        counter: &Counter,
        decide: impl Fn(State) -> (Decision, State),
    ) -> Result<Decision, StoreError> {
        let key = counter.redis_key();
        let _turn = self.turn(&key).await?;
        let mut old = self.backend.get(&key).await?;
        let (mut d, mut s) = decide(counter.state(&old));
        for attempt in 0..=MAX_CAS_RETRIES {
            if !d.allowed {
                return Ok(d);
            }
            match counter.cas(self.backend, &old, &counter.encode(&s), counter.ttl_ms(&d)).await? {
                Cas::Set => return Ok(d),
                Cas::Mismatch(current) => {
                    Metrics::add(&self.metrics.cas_retries, 1);
                    old = current;
                    (d, s) = decide(counter.state(&old));
                    backoff(attempt).await;
                }
            }
        }
        Metrics::add(&self.metrics.cas_exhausted, 1);
        Err(StoreError::Contention)
    }

    /// Forced signed adjustment of one counter (`delta > 0` charges even beyond capacity,
    /// `delta < 0` refunds). Returns the counter's state after it, as a peek decision.
    pub async fn adjust(&self, counter: &Counter, delta: i64, now: Nanos) -> Result<Decision, StoreError> {
        let key = counter.redis_key();
        let _turn = self.turn(&key).await?;
        let mut old = self.backend.get_key(counter).await?;
        for attempt in 0..=MAX_CAS_RETRIES {
            let new = if delta == 0 {
                counter.state(&old)
            } else {
                counter.algorithm.adjust(counter.state(&old), now, delta, &counter.quota)
            };
            let (peek, _) = counter.algorithm.check(new, now, 0, &counter.quota);
            let bytes = counter.encode(&new);
            if delta == 0 || (bytes == old) || (old.is_empty() && new == State::default()) {
                return Ok(peek);
            }
            match counter.cas(self.backend, &old, &bytes, counter.ttl_ms(&peek)).await? {
                Cas::Set => return Ok(peek),
                Cas::Mismatch(current) => {
                    Metrics::add(&self.metrics.cas_retries, 1);
                    old = current;
                    backoff(attempt).await;
                }
            }
        }
        Metrics::add(&self.metrics.cas_exhausted, 1);
        Err(StoreError::Contention)
    }

    /// Refund `returned` unspent units, then grant up to `want` units: as many as can be
    /// admitted now, charged at once (so the fleet never admits more than the limit).
    pub async fn lease(
        &self,
        counter: &Counter,
        want: u64,
        returned: u64,
        now: Nanos,
    ) -> Result<LeaseOutcome, StoreError> {
        let key = counter.redis_key();
        let _turn = self.turn(&key).await?;
        let mut old = self.backend.get_key(counter).await?;
        for attempt in 0..=MAX_CAS_RETRIES {
            let (outcome, new) = lease_on(counter, counter.state(&old), want, returned, now);
            let bytes = counter.encode(&new);
            if bytes == old || (old.is_empty() && new == State::default()) {
                return Ok(outcome);
            }
            match counter.cas(self.backend, &old, &bytes, counter.ttl_ms(&outcome.decision)).await? {
                Cas::Set => return Ok(outcome),
                Cas::Mismatch(current) => {
                    Metrics::add(&self.metrics.cas_retries, 1);
                    old = current;
                    backoff(attempt).await;
                }
            }
        }
        Metrics::add(&self.metrics.cas_exhausted, 1);
        Err(StoreError::Contention)
    }
}

/// The pure lease step: refund `returned`, then grant g = the most units up to `want` that
/// the algorithm admits at once now, charged. The decision reports the counter after the
/// grant; when g == 0 and `want > 0`, `retry_after_ns` says when one unit is admitted.
pub fn lease_on(counter: &Counter, state: State, want: u64, returned: u64, now: Nanos) -> (LeaseOutcome, State) {
    let (alg, q) = (counter.algorithm, &counter.quota);
    let state = if returned > 0 { alg.adjust(state, now, -clamp_i64(returned), q) } else { state };
    let (peek, _) = alg.check(state, now, 0, q);
    let mut hi = want.min(peek.remaining);
    let granted = if hi == 0 {
        0
    } else if alg.check(state, now, hi, q).0.allowed {
        hi
    } else {
        // Largest admitted cost in [0, hi): admission is monotonic in the cost.
        let mut lo = 0u64;
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if alg.check(state, now, mid, q).0.allowed {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    };
    if granted > 0 {
        let (d, s) = alg.check(state, now, granted, q);
        return (LeaseOutcome { granted, decision: d }, s);
    }
    let mut d = peek;
    if want > 0 {
        d.retry_after_ns = alg.check(state, now, 1, q).0.retry_after_ns;
    }
    (LeaseOutcome { granted: 0, decision: d }, state)
}

pub fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Backend {
    async fn get_key(&self, counter: &Counter) -> Result<Vec<u8>, StoreError> {
        self.get(&counter.redis_key()).await
    }
}
