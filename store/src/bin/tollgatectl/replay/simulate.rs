//! The filter's own core, run natively in simulated time: each record goes through
//! `Limiter::evaluate` (the same code Envoy runs in the Wasm VM) at the log's start time, in
//! an in-memory shared store.
//!
//! What is modelled, and how:
//! - **Global rules** (`scope: global`) are counted as one fleet: every request of the logs
//!   shares one exact counter per key, as `sync: strict` counts at the store (`batched`
//!   never admits more, and may admit slightly less).
//! - **Throttle**: a request a throttle rule holds is counted as throttled and charged at once
//!   (into debt, as the filter does); it takes a place in the throttle queue
//!   (`throttle_queue`, one worker's) until its release time, so a full queue rejects as in
//!   the filter. The simulation does not delay the request itself or anything after it.
//! - **Tokens, cost, concurrency**: reservations are settled with the tokens the log reports
//!   (none: the estimate stands) and concurrency slots released when the request ends
//!   (start + duration + hold), through the limiter's own settle path.
//! - Not simulated: overrides and per-key limits from a store (only the configuration's own
//!   `allow` lists apply), failure modes (the store always answers).

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use tollgate_core::config::{Config, Scope, Unit};
use tollgate_core::engine::hash::KeyHash;
use tollgate_core::engine::shared_store::{SharedStore, StoreError};
use tollgate_core::limiter::{Limiter, Reply, Reservation, RuleOutcome, RuleStatus};
use tollgate_core::llm::Usage;
use tollgate_core::overrides::Overrides;

use super::record::Record;

/// A single-threaded store with Envoy's shared-data semantics (CAS tokens start at 1 and
/// never repeat for a key).
#[derive(Default)]
pub struct Memory {
    map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    next: Cell<u32>,
}

impl SharedStore for Memory {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.map.borrow().get(key).cloned()
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        let next = self.next.get().wrapping_add(1).max(1);
        self.next.set(next);
        let mut map = self.map.borrow_mut();
        match map.get_mut(key) {
            Some(entry) => {
                if cas != 0 && cas != entry.1 {
                    return Err(StoreError::CasMismatch);
                }
                entry.0.clear();
                entry.0.extend_from_slice(value);
                entry.1 = next;
            }
            None => {
                map.insert(key.to_string(), (value.to_vec(), next));
            }
        }
        Ok(())
    }
}

/// What happened to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fate {
    Allowed,
    /// Held by a throttle rule, then let through.
    Throttled,
    /// Answered locally with this status (429, 403, 400...).
    Denied(u16),
}

impl Fate {
    pub fn label(self) -> String {
        match self {
            Fate::Allowed => "allowed".into(),
            Fate::Throttled => "throttled".into(),
            Fate::Denied(s) => format!("denied {s}"),
        }
    }
}

/// The decision on one request.
#[derive(Clone, Debug)]
pub struct Decision {
    pub fate: Fate,
    pub rules: Vec<RuleOutcome>,
    /// The rule that answered (for `Denied`).
    pub denied_by: Option<usize>,
    /// An `allow` list let the request skip every rule.
    pub overridden: bool,
}

impl Decision {
    /// The rule a throttled request was held by.
    pub fn throttled_by(&self) -> Option<usize> {
        self.rules.iter().find(|o| o.status == RuleStatus::Throttled).map(|o| o.rule)
    }
}

/// A counter key as the report shows it: the fleet key hash of the rule's key parts (the
/// hash the store, `tollgatectl stats` and the console show), or None when the request lacks
/// the key; and the raw parts (joined by `|`) for `--show-keys`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyId {
    pub hash: Option<u64>,
}

pub struct Sim {
    pub limiter: Limiter,
    store: Memory,
    none: Overrides,
    /// Settlements due: (end time, sequence) → reservations and the reported usage.
    due: BinaryHeap<Reverse<(u64, u64)>>,
    settlements: HashMap<u64, (Vec<Reservation>, Option<Usage>)>,
    /// Release times of held (throttled) requests.
    held: BinaryHeap<Reverse<u64>>,
    seq: u64,
    /// How many rules have `scope: global` (simulated as one fleet).
    pub global_rules: usize,
}

impl Sim {
    pub fn new(mut config: Config) -> Result<Sim, String> {
        let global_rules = config.rules.iter().filter(|r| r.scope == Scope::Global).count();
        for r in &mut config.rules {
            r.scope = Scope::Local;
        }
        let limiter = Limiter::new(config);
        let store = Memory::default();
        limiter.prepare(&store).map_err(|e| format!("cannot prepare the counters: {e:?}"))?;
        Ok(Sim {
            limiter,
            store,
            none: Overrides::default(),
            due: BinaryHeap::new(),
            settlements: HashMap::new(),
            held: BinaryHeap::new(),
            seq: 0,
            global_rules,
        })
    }

    pub fn rule_name(&self, i: usize) -> &str {
        self.limiter.config.rules.get(i).map(|r| r.name.as_str()).unwrap_or("?")
    }

    /// Settle what ended by `now`, and free the throttle queue of requests released by then.
    fn catch_up(&mut self, now: u64) {
        while let Some(Reverse((end, seq))) = self.due.peek().copied() {
            if end > now {
                break;
            }
            self.due.pop();
            if let Some((reservations, usage)) = self.settlements.remove(&seq) {
                self.limiter.settle(&self.store, &reservations, usage.as_ref(), end);
            }
        }
        while self.held.peek().is_some_and(|Reverse(t)| *t <= now) {
            self.held.pop();
        }
    }

    /// Decide one request at its log time.
    pub fn decide(&mut self, r: &Record) -> Decision {
        let now = r.time_ns;
        self.catch_up(now);
        let can_hold = self.held.len() < self.limiter.config.throttle_queue as usize;
        let eval = self.limiter.evaluate(&self.store, &r.request(), now, can_hold, &self.none);
        let fate = match eval.reply {
            Reply::Deny { status, .. } => Fate::Denied(u16::try_from(status).unwrap_or(u16::MAX)),
            Reply::Continue { .. } if eval.hold_ns > 0 => Fate::Throttled,
            Reply::Continue { .. } => Fate::Allowed,
        };
        if eval.hold_ns > 0 {
            self.held.push(Reverse(now.saturating_add(eval.hold_ns)));
        }
        if eval.reservations.iter().any(|res| res.unit != Unit::Requests) {
            self.seq += 1;
            let end = now.saturating_add(eval.hold_ns).saturating_add(r.duration_ns);
            self.due.push(Reverse((end, self.seq)));
            self.settlements.insert(self.seq, (eval.reservations, r.usage));
        }
        let denied_by = match fate {
            Fate::Denied(_) => eval
                .rules
                .iter()
                .find(|o| matches!(o.status, RuleStatus::Denied | RuleStatus::MissingKey))
                .map(|o| o.rule),
            _ => None,
        };
        Decision { fate, rules: eval.rules, denied_by, overridden: eval.overridden }
    }

    /// The key of `rule` in a request: its fleet hash and raw text.
    pub fn key_of(&self, rule: usize, r: &Record) -> (KeyId, Option<String>) {
        let config = &self.limiter.config;
        let Some(rule) = config.rules.get(rule) else { return (KeyId { hash: None }, None) };
        let req = r.request();
        let parts: Option<Vec<_>> =
            rule.key.iter().map(|src| src.extract(&req, &config.api_key, config.trusted_hops)).collect();
        match parts {
            None => (KeyId { hash: None }, None),
            Some(parts) => {
                let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
                let raw = bytes.iter().map(|b| String::from_utf8_lossy(b)).collect::<Vec<_>>().join("|");
                (KeyId { hash: Some(KeyHash::fleet(&bytes).0) }, Some(raw))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(t_ms: u64, key: &str) -> Record {
        let mut r = Record {
            time_ns: t_ms * 1_000_000,
            method: "GET".into(),
            path: "/".into(),
            headers: vec![("x-api-key".into(), key.into())],
            ..Record::default()
        };
        r.finish_headers();
        r
    }

    fn sim(json: &str) -> Sim {
        Sim::new(Config::parse(json.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn decides_with_the_filter_core_in_log_time() {
        let mut s =
            sim(r#"{"rules":[{"name":"rpm","key":["api_key"],"algorithm":"fixed_window","limit":2,"window":"1m"}]}"#);
        let fates: Vec<Fate> = [0, 1, 2, 60_000].iter().map(|t| s.decide(&record(*t, "sk-a")).fate).collect();
        assert_eq!(fates, [Fate::Allowed, Fate::Allowed, Fate::Denied(429), Fate::Allowed], "a new window at 1m");
        let d = s.decide(&record(60_001, "sk-a"));
        assert_eq!(d.fate, Fate::Allowed);
        assert_eq!(s.decide(&record(60_002, "sk-a")).denied_by, Some(0));
        assert_eq!(s.decide(&record(60_003, "sk-b")).fate, Fate::Allowed, "keys are apart");
        let (key, raw) = s.key_of(0, &record(0, "sk-a"));
        assert_eq!(key.hash, Some(KeyHash::fleet(&[b"sk-a"]).0));
        assert_eq!(raw.as_deref(), Some("sk-a"));
        assert_eq!(s.key_of(0, &Record::default()).0.hash, None);
    }

    #[test]
    fn global_rules_are_one_fleet_and_throttle_holds_a_queue_place() {
        let mut s = sim(r#"{"store":{"cluster":"c","authority":"a"},"throttle_queue":1,"rules":[
            {"name":"g","key":["api_key"],"scope":"global","algorithm":"token_bucket","limit":10,"window":"1s",
             "burst":1,"strategy":"throttle","max_wait":"1s"}]}"#);
        assert_eq!(s.global_rules, 1);
        assert_eq!(s.decide(&record(0, "k")).fate, Fate::Allowed);
        let held = s.decide(&record(0, "k"));
        assert_eq!(held.fate, Fate::Throttled, "100 ms wait within max_wait");
        assert_eq!(held.throttled_by(), Some(0));
        assert_eq!(s.decide(&record(0, "k")).fate, Fate::Denied(429), "the queue (1) is full");
        // Once the held request is released the queue has room again.
        assert_eq!(s.decide(&record(150, "k")).fate, Fate::Throttled);
    }

    #[test]
    fn token_usage_settles_when_the_request_ends() {
        let mut s = sim(r#"{"llm":{"estimate":"fixed:100"},"rules":[{"name":"tpm","key":["api_key"],
            "algorithm":"fixed_window","limit":300,"window":"1h","unit":"tokens"}]}"#);
        let mut r = record(0, "k");
        r.body = Some(serde_json::json!({"model": "m"}));
        r.usage = Some(Usage { total: Some(10), ..Usage::default() });
        r.duration_ns = 1_000_000_000;
        // Three reservations of 100 fill the window; each settles to 10 one second later.
        for t in [0, 1, 2] {
            r.time_ns = t * 1_000_000;
            assert_eq!(s.decide(&r).fate, Fate::Allowed);
        }
        r.time_ns = 3_000_000;
        assert_eq!(s.decide(&r).fate, Fate::Denied(429), "reserved 300 of 300");
        r.time_ns = 2_000_000_000;
        assert_eq!(s.decide(&r).fate, Fate::Allowed, "settled to 30 used");
    }
}
