//! The limiting engine: applies every check of a request to its counter in the slot table,
//! exact across workers through compare-and-swap.
//!
//! Check all, then charge all: a request denied by any (non-shadow) check writes nothing. If a
//! charge loses a CAS race it re-reads and decides again; when the new decision denies, what
//! this request already charged is refunded, so a denied request consumes no quota.

pub mod algorithm;
pub mod hash;
pub mod shared_store;
pub mod slot_table;

use algorithm::{Algorithm, Decision, Nanos, Quota, State};
use hash::KeyHash;
use shared_store::{SharedStore, StoreError};
use slot_table::{into_record, lookup, record_at, with_record, Lookup, Place, Record, SlotTable, RECORD_BYTES};

/// CAS attempts per counter before giving up. Other writers won every one of them (so the
/// counter is hot): the check then denies with a one-second Retry-After rather than admit
/// uncounted, so a limit is never exceeded; `cas_exhausted` counts it.
pub const MAX_CAS_RETRIES: u32 = 64;

/// One counter to check and charge for a request.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    /// Index of the rule (selects its overflow counter).
    pub rule: usize,
    pub algorithm: Algorithm,
    pub quota: Quota,
    pub key: KeyHash,
    pub cost: u64,
    /// Shadow checks are charged when they allow, but never deny the request.
    pub shadow: bool,
    /// Throttle: a denial whose exact wait is at most this long is admitted late instead:
    /// the cost is charged now (into debt) and the request is held for the wait. 0 = off.
    pub max_wait_ns: u64,
}

/// What happened to one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub place: Place,
    /// Whether the cost was written to the counter (so it may need a refund or settlement).
    pub charged: bool,
    /// How long the request must be held before it goes on (throttle); 0 = at once.
    pub delay_ns: u64,
}

/// Engine counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub cas_retries: u32,
    pub cas_exhausted: u32,
    pub evictions: u32,
    pub overflows: u32,
}

impl EngineStats {
    pub fn add(&mut self, other: &EngineStats) {
        self.cas_retries += other.cas_retries;
        self.cas_exhausted += other.cas_exhausted;
        self.evictions += other.evictions;
        self.overflows += other.overflows;
    }
}

#[derive(Debug)]
pub struct Outcome {
    /// One per check, in order.
    pub verdicts: Vec<Verdict>,
    /// The first non-shadow check that denied.
    pub denied_by: Option<usize>,
    pub stats: EngineStats,
}

impl Outcome {
    /// How long the request must be held (the longest throttle wait).
    pub fn delay_ns(&self) -> u64 {
        self.verdicts.iter().map(|v| v.delay_ns).max().unwrap_or(0)
    }
}

/// A counter read and the write that would charge it.
struct Plan {
    place: Place,
    cas: u32,
    decision: Decision,
    /// The entry's new bytes when the decision allows.
    bytes: Vec<u8>,
    evicts: bool,
    delay_ns: u64,
}

impl Plan {
    fn verdict(&self, charged: bool) -> Verdict {
        Verdict {
            decision: self.decision,
            place: self.place,
            charged,
            delay_ns: if charged { self.delay_ns } else { 0 },
        }
    }
}

pub struct Engine {
    table: SlotTable,
    /// Overflow counter names, by rule index.
    overflow_names: Vec<String>,
}

impl Engine {
    pub fn new(capacity: u32, rule_names: &[&str]) -> Engine {
        Engine {
            table: SlotTable::new(capacity),
            overflow_names: rule_names.iter().map(|n| SlotTable::overflow_name(n)).collect(),
        }
    }

    pub fn table(&self) -> &SlotTable {
        &self.table
    }

    /// Create the shared-data entries (once, at configure time).
    pub fn create_entries(&self, store: &dyn SharedStore) -> Result<usize, StoreError> {
        self.table.create_missing(store, &self.overflow_names)
    }

    fn place_name(&self, place: Place) -> &str {
        match place {
            Place::Set(s) => self.table.set_name(s),
            Place::Overflow(r) => self.overflow_names.get(r).map(String::as_str).unwrap_or(""),
        }
    }

    /// What `admit` would decide, charging nothing (every verdict uncharged).
    pub fn check_only(&self, store: &dyn SharedStore, checks: &[Check], now: Nanos) -> Outcome {
        let plans: Vec<Plan> = checks.iter().map(|c| self.plan(store, c, now)).collect();
        let denied_by = checks.iter().zip(&plans).position(|(c, p)| !c.shadow && !p.decision.allowed);
        let verdicts: Vec<Verdict> = plans.iter().map(|p| p.verdict(false)).collect();
        let stats = EngineStats { overflows: count_overflows(&verdicts), ..EngineStats::default() };
        Outcome { verdicts, denied_by, stats }
    }

    /// Check and charge every check; see the module docs.
    pub fn admit(&self, store: &dyn SharedStore, checks: &[Check], now: Nanos) -> Outcome {
        let mut stats = EngineStats::default();
        let mut plans: Vec<Plan> = checks.iter().map(|c| self.plan(store, c, now)).collect();
        let denied_by = checks.iter().zip(&plans).position(|(c, p)| !c.shadow && !p.decision.allowed);
        if denied_by.is_some() {
            let verdicts: Vec<Verdict> = plans.iter().map(|p| p.verdict(false)).collect();
            stats.overflows = count_overflows(&verdicts);
            return Outcome { verdicts, denied_by, stats };
        }
        let mut verdicts: Vec<Verdict> = Vec::with_capacity(checks.len());
        for (i, (check, plan)) in checks.iter().zip(plans.iter_mut()).enumerate() {
            let mut tries = 0;
            let verdict = loop {
                if !plan.decision.allowed {
                    if check.shadow {
                        break plan.verdict(false);
                    }
                    // Another worker took the quota first: undo this request's charges.
                    for (c, v) in checks.iter().zip(&verdicts) {
                        if v.charged {
                            self.adjust(store, c, v.place, -clamp_i64(c.cost), now, &mut stats);
                        }
                    }
                    verdicts.iter_mut().for_each(|v| v.charged = false);
                    verdicts.push(plan.verdict(false));
                    let rest = checks.iter().skip(i + 1).map(|c| {
                        let p = self.plan(store, c, now);
                        p.verdict(false)
                    });
                    verdicts.extend(rest);
                    stats.overflows = count_overflows(&verdicts);
                    return Outcome { verdicts, denied_by: Some(i), stats };
                }
                if check.cost == 0 {
                    break plan.verdict(false);
                }
                match store.set(self.place_name(plan.place), &plan.bytes, plan.cas) {
                    Ok(()) => {
                        stats.evictions += plan.evicts as u32;
                        break plan.verdict(true);
                    }
                    Err(StoreError::CasMismatch) if tries < MAX_CAS_RETRIES => {
                        tries += 1;
                        stats.cas_retries += 1;
                        *plan = self.plan(store, check, now);
                    }
                    Err(_) => {
                        stats.cas_exhausted += 1;
                        plan.decision = Decision {
                            allowed: false,
                            remaining: 0,
                            reset_after_ns: plan.decision.reset_after_ns,
                            retry_after_ns: crate::engine::algorithm::NANOS_PER_SEC,
                        };
                    }
                }
            };
            verdicts.push(verdict);
        }
        stats.overflows = count_overflows(&verdicts);
        Outcome { verdicts, denied_by: None, stats }
    }

    /// Read the check's counter and decide.
    fn plan(&self, store: &dyn SharedStore, check: &Check, now: Nanos) -> Plan {
        let set = self.table.set_of(check.key);
        let (bytes, cas) = store.get(self.table.set_name(set)).unwrap_or_else(|| (Vec::new(), 0));
        let (way, state, evicts) = match lookup(&bytes, check.key, now) {
            Lookup::Own(way) => (way, record_at(&bytes, way).state, false),
            Lookup::Free { way, evicts } => (way, State::default(), evicts),
            Lookup::Full => return self.plan_overflow(store, check, now),
        };
        let (decision, new_state, delay_ns) = decide(check, state, now);
        let rec = Record { key: check.key.0, idle_at: idle_at(check, &decision, now), state: new_state };
        let bytes = if decision.allowed { into_record(bytes, way, &rec) } else { Vec::new() };
        Plan { place: Place::Set(set), cas, decision, bytes, evicts, delay_ns }
    }

    fn plan_overflow(&self, store: &dyn SharedStore, check: &Check, now: Nanos) -> Plan {
        let place = Place::Overflow(check.rule);
        let (bytes, cas) = store.get(self.place_name(place)).unwrap_or_else(|| (Vec::new(), 0));
        let state = Record::decode(&bytes).state;
        let (decision, new_state, delay_ns) = decide(check, state, now);
        let mut out = vec![0u8; RECORD_BYTES];
        Record { key: u64::MAX, idle_at: idle_at(check, &decision, now), state: new_state }.encode_into(&mut out);
        Plan { place, cas, decision, bytes: out, evicts: false, delay_ns }
    }

    /// Apply a signed correction to a counter charged earlier (refund, or settle a reservation
    /// with the real usage). A counter that went idle and was reused is left alone: a refund
    /// to a fresh counter has nothing to give back.
    pub fn adjust(
        &self,
        store: &dyn SharedStore,
        check: &Check,
        place: Place,
        delta: i64,
        now: Nanos,
        stats: &mut EngineStats,
    ) {
        if delta == 0 {
            return;
        }
        for _ in 0..=MAX_CAS_RETRIES {
            let name = self.place_name(place);
            let Some((bytes, cas)) = store.get(name) else { return };
            let (way, rec) = match place {
                Place::Set(_) => match lookup(&bytes, check.key, now) {
                    Lookup::Own(way) => (Some(way), record_at(&bytes, way)),
                    _ => return,
                },
                Place::Overflow(_) => (None, Record::decode(&bytes)),
            };
            let state = check.algorithm.adjust(rec.state, now, delta, &check.quota);
            let (peek, _) = check.algorithm.check(state, now, 0, &check.quota);
            let rec = Record { key: rec.key, idle_at: idle_at(check, &peek, now), state };
            let new_bytes = match way {
                Some(way) => with_record(&bytes, way, &rec),
                None => {
                    let mut out = vec![0u8; RECORD_BYTES];
                    rec.encode_into(&mut out);
                    out
                }
            };
            match store.set(name, &new_bytes, cas) {
                Ok(()) => return,
                Err(StoreError::CasMismatch) => stats.cas_retries += 1,
                Err(StoreError::Failed) => break,
            }
        }
        stats.cas_exhausted += 1;
    }

    /// Read-modify-write the record of `key` when it is not an algorithm counter (a lease):
    /// `f` gets its state (fresh when the key has no record yet) and returns the new state, when
    /// the record may be reused, and a result; None leaves the record as it is. Returns `f`'s
    /// result, or None when `f` declined, the key's set is full, or CAS kept failing.
    pub fn modify<T>(
        &self,
        store: &dyn SharedStore,
        key: KeyHash,
        now: Nanos,
        mut f: impl FnMut(State) -> Option<(State, Nanos, T)>,
    ) -> Option<T> {
        let set = self.table.set_of(key);
        let name = self.table.set_name(set);
        for _ in 0..=MAX_CAS_RETRIES {
            let (bytes, cas) = store.get(name)?;
            let (way, state) = match lookup(&bytes, key, now) {
                Lookup::Own(way) => (way, record_at(&bytes, way).state),
                Lookup::Free { way, .. } => (way, State::default()),
                Lookup::Full => return None,
            };
            let (new_state, idle_at, out) = f(state)?;
            let rec = Record { key: key.0, idle_at, state: new_state };
            match store.set(name, &with_record(&bytes, way, &rec), cas) {
                Ok(()) => return Some(out),
                Err(StoreError::CasMismatch) => continue,
                Err(StoreError::Failed) => return None,
            }
        }
        None
    }

    /// The state of `key`'s record, read only (None: the key has no record).
    pub fn read(&self, store: &dyn SharedStore, key: KeyHash, now: Nanos) -> Option<State> {
        let (bytes, _) = store.get(self.table.set_name(self.table.set_of(key)))?;
        match lookup(&bytes, key, now) {
            Lookup::Own(way) => Some(record_at(&bytes, way).state),
            Lookup::Free { .. } | Lookup::Full => None,
        }
    }

    /// Read a counter without charging (cost 0).
    pub fn peek(&self, store: &dyn SharedStore, check: &Check, now: Nanos) -> Decision {
        let zero = Check { cost: 0, ..*check };
        self.plan(store, &zero, now).decision
    }
}

/// The algorithm's decision, or for a throttle check whose wait fits `max_wait`: a charge
/// into debt now, and the wait. The bucket algorithms make this exact: the debt delays the
/// next request by precisely the cost, so held requests leave in order, evenly spaced.
fn decide(check: &Check, state: State, now: Nanos) -> (Decision, State, u64) {
    let (decision, new_state) = check.algorithm.check(state, now, check.cost, &check.quota);
    let wait = decision.retry_after_ns;
    if decision.allowed || check.max_wait_ns == 0 || wait > check.max_wait_ns {
        return (decision, new_state, 0);
    }
    let charged = check.algorithm.adjust(state, now, clamp_i64(check.cost), &check.quota);
    let (peek, _) = check.algorithm.check(charged, now, 0, &check.quota);
    (Decision { allowed: true, remaining: 0, reset_after_ns: peek.reset_after_ns, retry_after_ns: 0 }, charged, wait)
}

/// Decisions taken on a rule's shared overflow counter (the key's set was full), allowed or not.
fn count_overflows(verdicts: &[Verdict]) -> u32 {
    verdicts.iter().filter(|v| matches!(v.place, Place::Overflow(_))).count() as u32
}

/// When the counter will be back to its fresh state (so its record may be reused).
fn idle_at(check: &Check, d: &Decision, now: Nanos) -> Nanos {
    let extra = match check.algorithm {
        // The current window's count weighs on the next window too.
        Algorithm::SlidingWindow => check.quota.window_ns,
        _ => 0,
    };
    now.saturating_add(d.reset_after_ns).saturating_add(extra)
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
