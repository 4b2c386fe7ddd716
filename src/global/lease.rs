//! Batched global limits (`sync: batched`): quota leased from tollgate-store and spent locally.
//!
//! The store carves units out of the global counter atomically and grants them to one proxy,
//! so the fleet never admits more than the limit in total. The proxy keeps each lease in a
//! record of its slot table (shared by its workers, spent with compare-and-swap), so in steady
//! state a request waits for no callout. One flusher per Envoy (a leader elected through shared
//! data) renews leases ahead of need, sized to the recent rate, and returns what was not spent
//! when a lease expires. A request that finds no lease waits for one (like strict).
//!
//! Under-admission bound: units leased to a proxy and not spent are unavailable to others until
//! they are returned, at most `lease_ttl` later. Per key, at most `fleet_size × max_lease`
//! units are outstanding, where `max_lease = ceil(capacity / (2 × fleet_size))`: at worst half
//! the capacity is stranded for one lease TTL (and only while a proxy holding units is idle).

use crate::config::{Rule, StoreConfig};
use crate::engine::algorithm::{Algorithm, Nanos, Quota, State};
use crate::engine::hash::KeyHash;
use crate::engine::shared_store::SharedStore;
use crate::engine::Engine;
use crate::global::{GlobalCheck, Grant};

/// One lease, as kept in a slot-table record: `State([units_left, expires_at, meta])`, where
/// `meta` holds the level right after the last grant (low 48 bits) and the "renew soon" flag
/// (bit 63).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    pub units: u64,
    pub expires_at: Nanos,
    pub last_grant: u64,
    pub renew: bool,
}

const RENEW_BIT: u64 = 1 << 63;
const GRANT_MASK: u64 = (1 << 48) - 1;

impl Lease {
    pub fn decode(s: State) -> Lease {
        let [units, expires_at, meta] = s.0;
        Lease { units, expires_at, last_grant: meta & GRANT_MASK, renew: meta & RENEW_BIT != 0 }
    }

    pub fn encode(&self) -> State {
        let meta = (self.last_grant.min(GRANT_MASK)) | if self.renew { RENEW_BIT } else { 0 };
        State([self.units, self.expires_at, meta])
    }

    /// Spend `cost` units now, if the lease holds them and has not expired. Asks for an early
    /// renewal once less than half of the last grant is left.
    pub fn spend(&self, cost: u64, now: Nanos) -> Option<Lease> {
        if now >= self.expires_at || self.units < cost {
            return None;
        }
        let units = self.units - cost;
        let renew = self.renew || units.saturating_mul(2) < self.last_grant;
        Some(Lease { units, renew, ..*self })
    }

    /// Add `granted` units valid until `expires_at`. `last_grant` becomes the level right
    /// after the grant, so `last_grant - units` is what was spent since.
    pub fn grant(&self, granted: u64, expires_at: Nanos, now: Nanos) -> Lease {
        // Units of an expired lease are being returned by the flusher: do not reuse them.
        let kept = if now < self.expires_at { self.units } else { 0 };
        let units = kept.saturating_add(granted);
        Lease { units, expires_at, last_grant: units.max(1), renew: false }
    }

    /// Take back everything left (to return it to the store).
    pub fn drain(&self) -> (u64, Lease) {
        (self.units, Lease { units: 0, renew: false, ..*self })
    }
}

/// The most one proxy may hold of one counter at once.
pub fn max_lease(algorithm: Algorithm, q: &Quota, fleet_size: u32) -> u64 {
    let share = 2 * u64::from(fleet_size.max(1));
    algorithm.capacity(q).div_ceil(share).max(1)
}

/// How many units to ask for: enough for two sync intervals at the recent rate (units per
/// second), at least `cost`, at most `max_lease` (unless `cost` itself is larger).
pub fn lease_size(rate_per_sec: u64, sync_interval: Nanos, cost: u64, max: u64) -> u64 {
    let want = (rate_per_sec as u128 * sync_interval as u128 * 2 / 1_000_000_000) as u64;
    want.clamp(1, max.max(1)).max(cost)
}

/// When a lease granted now must be spent by: its TTL, and for windowed algorithms never past
/// the end of the store's current window (units of one window must not be spent in the next).
pub fn lease_expiry(algorithm: Algorithm, now: Nanos, ttl: Nanos, window_reset_ns: Nanos) -> Nanos {
    let end = now.saturating_add(ttl);
    match algorithm {
        Algorithm::FixedWindow | Algorithm::SlidingWindow if window_reset_ns > 0 => {
            end.min(now.saturating_add(window_reset_ns))
        }
        _ => end,
    }
}

/// The shared index of active leases, so the flusher knows which records to look at: up to
/// `INDEX_CAPACITY` entries (a counter leased beyond it is still spent locally, but is not
/// renewed ahead of need nor returned early: its units come back when the window passes).
/// How long a lease may be spent: five sync intervals.
pub fn lease_ttl(store: Option<&StoreConfig>) -> Nanos {
    store.map(|s| s.sync_interval.as_nanos()).unwrap_or(100_000_000).saturating_mul(5)
}

/// What a request without a lease asks for: half the most one proxy may hold, at least its
/// own cost.
pub fn first_lease(g: &GlobalCheck, fleet_size: u32) -> u64 {
    (max_lease(g.algorithm, &g.quota, fleet_size) / 2).max(1).max(g.cost)
}

/// The global check a leased index entry stands for (None when its rule is gone).
pub fn lease_check(rules: &[Rule], e: &IndexEntry) -> Option<GlobalCheck> {
    let rule = rules.get(e.rule as usize)?;
    let algorithm = rule.algorithm?;
    let quota = Quota { limit: e.limit, window_ns: rule.quota.window_ns, burst: e.burst };
    Some(GlobalCheck { rule: e.rule as usize, algorithm, quota, key: KeyHash(e.key), cost: 0, price: None })
}

pub const INDEX_CAPACITY: usize = 256;
pub const INDEX_KEY: &str = "tollgate:v1:lease-index";
pub const LEADER_KEY: &str = "tollgate:v1:lease-leader";
const ENTRY_BYTES: usize = 28;

/// One leased counter: its rule, key hash and the (tier's) limit and burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub rule: u32,
    pub key: u64,
    pub limit: u64,
    pub burst: u64,
}

impl IndexEntry {
    pub fn of(g: &GlobalCheck) -> IndexEntry {
        IndexEntry { rule: g.rule as u32, key: g.key.0, limit: g.quota.limit, burst: g.quota.burst }
    }
}

pub fn index_decode(bytes: &[u8]) -> Vec<IndexEntry> {
    let word = |c: &[u8], at: usize| c.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    bytes
        .chunks_exact(ENTRY_BYTES)
        .filter_map(|c| {
            let rule = u32::from_le_bytes(c.get(..4)?.try_into().ok()?);
            let e = IndexEntry { rule, key: word(c, 4)?, limit: word(c, 12)?, burst: word(c, 20)? };
            (e.key != 0).then_some(e)
        })
        .collect()
}

pub fn index_encode(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for e in entries.iter().take(INDEX_CAPACITY) {
        out.extend_from_slice(&e.rule.to_le_bytes());
        out.extend_from_slice(&e.key.to_le_bytes());
        out.extend_from_slice(&e.limit.to_le_bytes());
        out.extend_from_slice(&e.burst.to_le_bytes());
    }
    out
}

/// Add entries to the shared index (CAS), skipping those already there.
pub fn index_add(store: &dyn SharedStore, new: &[IndexEntry]) {
    for _ in 0..16 {
        let (bytes, cas) = store.get(INDEX_KEY).unwrap_or_default();
        let mut entries = index_decode(&bytes);
        let before = entries.len();
        for e in new {
            if entries.len() < INDEX_CAPACITY && !entries.iter().any(|x| x.rule == e.rule && x.key == e.key) {
                entries.push(*e);
            }
        }
        if entries.len() == before || store.set(INDEX_KEY, &index_encode(&entries), cas).is_ok() {
            return;
        }
    }
}

/// Remove entries from the shared index (CAS).
pub fn index_remove(store: &dyn SharedStore, gone: &[IndexEntry]) {
    for _ in 0..16 {
        let (bytes, cas) = store.get(INDEX_KEY).unwrap_or_default();
        let entries: Vec<IndexEntry> = index_decode(&bytes)
            .into_iter()
            .filter(|e| !gone.iter().any(|g| g.rule == e.rule && g.key == e.key))
            .collect();
        if store.set(INDEX_KEY, &index_encode(&entries), cas).is_ok() {
            return;
        }
    }
}

/// Take back what an expired lease holds (the flusher returns it to the store).
pub fn drain_expired(engine: &Engine, store: &dyn SharedStore, e: &IndexEntry, now: Nanos) -> u64 {
    engine
        .modify(store, lease_key(e.rule as usize, e.key), now, |s| {
            let l = Lease::decode(s);
            if now < l.expires_at || l.units == 0 {
                return None;
            }
            let (units, drained) = l.drain();
            Some((drained.encode(), l.expires_at, units))
        })
        .unwrap_or(0)
}

/// A lease as the flusher sees it (read only: no write to shared data).
pub fn peek(engine: &Engine, store: &dyn SharedStore, e: &IndexEntry, now: Nanos) -> Lease {
    engine.read(store, lease_key(e.rule as usize, e.key), now).map(Lease::decode).unwrap_or_default()
}

/// Lease records are kept apart from counters of the same key.
const LEASE_SALT: u64 = 0x6c65_6173_6573_616c; // "leasesal"

pub fn lease_key(rule: usize, key: u64) -> KeyHash {
    KeyHash((key ^ LEASE_SALT).rotate_left(rule as u32 % 64) | 1)
}

/// Spend every check's cost from this proxy's leases, all or nothing. False: some lease is
/// missing, expired or short (nothing is spent then).
pub fn spend_all(engine: &Engine, store: &dyn SharedStore, checks: &[GlobalCheck], now: Nanos) -> bool {
    for (i, g) in checks.iter().enumerate() {
        let spent = engine.modify(store, lease_key(g.rule, g.key.0), now, |s| {
            let lease = Lease::decode(s).spend(g.cost, now)?;
            Some((lease.encode(), lease.expires_at, ()))
        });
        if spent.is_none() {
            for back in &checks[..i] {
                give_back(engine, store, back, back.cost, now);
            }
            return false;
        }
    }
    true
}

/// Put `units` back into a lease (a request that spent them did not go on).
pub fn give_back(engine: &Engine, store: &dyn SharedStore, g: &GlobalCheck, units: u64, now: Nanos) {
    engine.modify(store, lease_key(g.rule, g.key.0), now, |s| {
        let l = Lease::decode(s);
        Some((Lease { units: l.units.saturating_add(units), ..l }.encode(), l.expires_at, ()))
    });
}

/// Record what the store granted, then take `spend` units for the request that asked (0 for
/// the flusher's renewals). True when the request's units were covered.
pub fn apply_grant(
    engine: &Engine,
    store: &dyn SharedStore,
    g: &GlobalCheck,
    grant: &Grant,
    spend: u64,
    now: Nanos,
    ttl: Nanos,
) -> bool {
    let expires = lease_expiry(g.algorithm, now, ttl, grant.decision.reset_after_ns);
    engine
        .modify(store, lease_key(g.rule, g.key.0), now, |s| {
            let granted = Lease::decode(s).grant(grant.granted, expires, now);
            let (lease, covered) = match granted.spend(spend, now) {
                Some(spent) if spend > 0 => (spent, true),
                _ => (granted, spend == 0),
            };
            Some((lease.encode(), lease.expires_at, covered))
        })
        .unwrap_or(false)
}

/// Who flushes for this Envoy: `(worker id, heartbeat)`.
pub fn leader_decode(bytes: &[u8]) -> (u64, Nanos) {
    let word = |i: usize| bytes.get(i * 8..i * 8 + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    (word(0).unwrap_or(0), word(1).unwrap_or(0))
}

pub fn leader_encode(worker: u64, heartbeat: Nanos) -> Vec<u8> {
    let mut out = worker.to_le_bytes().to_vec();
    out.extend_from_slice(&heartbeat.to_le_bytes());
    out
}

/// Whether `worker` should lead now: it already does, or the leader missed three beats.
pub fn should_lead(current: (u64, Nanos), worker: u64, now: Nanos, interval: Nanos) -> bool {
    current.0 == worker || current.0 == 0 || now.saturating_sub(current.1) > interval.saturating_mul(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::algorithm::NANOS_PER_SEC;

    #[test]
    fn encode_roundtrip() {
        let l = Lease { units: 7, expires_at: 99, last_grant: 12, renew: true };
        assert_eq!(Lease::decode(l.encode()), l);
        assert_eq!(Lease::decode(State::default()), Lease::default());
    }

    #[test]
    fn spending_stops_at_zero_and_at_expiry_and_asks_for_renewal_at_half() {
        let l = Lease::default().grant(10, 100, 0);
        let l = l.spend(4, 1).unwrap();
        assert!(!l.renew);
        let l = l.spend(2, 2).unwrap();
        assert!(l.renew, "4 left of 10");
        assert_eq!(l.spend(5, 3), None);
        assert_eq!(l.spend(1, 100), None, "expired");
        let (back, drained) = l.drain();
        assert_eq!((back, drained.units), (4, 0));
    }

    #[test]
    fn use_after_a_renewal_is_seen_so_busy_leases_keep_being_renewed() {
        let l = Lease::default().grant(10, 100, 0).spend(2, 1).unwrap();
        let renewed = l.grant(5, 200, 2);
        assert_eq!((renewed.units, renewed.last_grant), (13, 13));
        let spent = renewed.spend(1, 3).unwrap();
        assert_eq!(spent.last_grant - spent.units, 1, "spent since the renewal");
        assert!(renewed.spend(7, 3).unwrap().renew, "less than half of what it held is left");
    }

    #[test]
    fn an_expired_lease_is_not_topped_up_with_units_being_returned() {
        let l = Lease { units: 5, expires_at: 10, last_grant: 5, renew: false };
        assert_eq!(l.grant(3, 30, 20).units, 3);
        assert_eq!(l.grant(3, 30, 5).units, 8);
    }

    #[test]
    fn sizes_and_expiries() {
        let q = Quota { limit: 100, window_ns: 60 * NANOS_PER_SEC, burst: 100 };
        assert_eq!(max_lease(Algorithm::Gcra, &q, 2), 25);
        let interval = NANOS_PER_SEC / 10;
        assert_eq!(lease_size(50, interval, 1, 25), 10);
        assert_eq!(lease_size(1000, interval, 1, 25), 25);
        assert_eq!(lease_size(0, interval, 3, 25), 3);
        assert_eq!(lease_expiry(Algorithm::FixedWindow, 1000, 500, 200), 1200);
        assert_eq!(lease_expiry(Algorithm::Gcra, 1000, 500, 200), 1500);
    }

    #[test]
    fn index_and_leader() {
        let e = vec![
            IndexEntry { rule: 1, key: 5, limit: 10, burst: 3 },
            IndexEntry { rule: 2, key: 9, limit: 1, burst: 1 },
        ];
        assert_eq!(index_decode(&index_encode(&e)), e);
        assert_eq!(index_decode(&[1, 2, 3]), vec![]);
        let (w, t) = leader_decode(&leader_encode(7, 100));
        assert_eq!((w, t), (7, 100));
        assert!(should_lead((7, 100), 7, 1000, 10));
        assert!(!should_lead((7, 100), 8, 120, 10));
        assert!(should_lead((7, 100), 8, 131, 10));
        assert!(should_lead((0, 0), 8, 1, 10));
    }
}
