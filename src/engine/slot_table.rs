//! Bounded memory for counters.
//!
//! Envoy shared data never deletes a key, so one entry per distinct key would grow without
//! end under a flood of random API keys or IPs. Instead, counters live in a fixed table of
//! `capacity` records, allocated once: `capacity / WAYS` shared-data entries ("sets") of
//! `WAYS` records each. A key hash picks one set; within it a key takes:
//!   1. its own record (same hash), else
//!   2. an empty record, or one whose counter is idle (back to its fresh state: a full bucket,
//!      a past window): reusing it loses nothing, else
//!   3. when every record of the set is live, the rule's shared *overflow* counter.
//!
//! So a live counter is never evicted: a key being limited stays limited, and a flood of new
//! keys can never hand anyone a fresh full bucket; new keys that find their set full share one
//! counter per rule (they are limited together) until records go idle.
//!
//! Record layout (`RECORD_BYTES` = 40): key hash (u64, 0 = empty), idle-at time (u64 ns),
//! algorithm state (24 bytes). All little-endian.

use crate::engine::algorithm::{Nanos, State};
use crate::engine::hash::KeyHash;
use crate::engine::shared_store::{SharedStore, StoreError};

pub const WAYS: usize = 8;
pub const RECORD_BYTES: usize = 40;
pub const SET_BYTES: usize = WAYS * RECORD_BYTES;
const PREFIX: &str = "tollgate:v1:";

/// The fixed table of sets, with their shared-data key names prepared at configure time.
pub struct SlotTable {
    set_names: Vec<String>,
}

/// Where a counter lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A record of a set.
    Set(usize),
    /// The overflow counter of a rule.
    Overflow(usize),
}

/// What a key finds in its set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The key's own record.
    Own(usize),
    /// A free record; `evicts` when it held another (idle) key's counter.
    Free { way: usize, evicts: bool },
    /// Every record is live.
    Full,
}

impl SlotTable {
    pub fn new(capacity: u32) -> SlotTable {
        let sets = (capacity as usize).div_ceil(WAYS).max(1);
        SlotTable { set_names: (0..sets).map(|i| format!("{PREFIX}set:{i}")).collect() }
    }

    pub fn sets(&self) -> usize {
        self.set_names.len()
    }

    pub fn capacity(&self) -> usize {
        self.sets() * WAYS
    }

    /// Shared-data bytes the table holds (values only; Envoy adds its per-entry overhead).
    pub fn value_bytes(&self) -> usize {
        self.sets() * SET_BYTES
    }

    pub fn set_of(&self, key: KeyHash) -> usize {
        // Multiply-high maps the hash uniformly onto 0..sets without a division.
        ((key.0 as u128 * self.sets() as u128) >> 64) as usize
    }

    pub fn set_name(&self, set: usize) -> &str {
        self.set_names.get(set).map(String::as_str).unwrap_or("")
    }

    pub fn overflow_name(rule_name: &str) -> String {
        format!("{PREFIX}overflow:{rule_name}")
    }

    /// Create every entry that does not exist yet (Envoy cannot create a key atomically, so
    /// they are made once at configure time, before traffic; existing counters are kept).
    pub fn create_missing(&self, store: &dyn SharedStore, overflow_names: &[String]) -> Result<usize, StoreError> {
        let mut created = 0;
        let empty_set = [0u8; SET_BYTES];
        for name in &self.set_names {
            if store.get(name).is_none() {
                store.set(name, &empty_set, 0)?;
                created += 1;
            }
        }
        for name in overflow_names {
            if store.get(name).is_none() {
                store.set(name, &[0u8; RECORD_BYTES], 0)?;
                created += 1;
            }
        }
        Ok(created)
    }
}

/// One record, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub key: u64,
    pub idle_at: Nanos,
    pub state: State,
}

impl Record {
    pub fn decode(bytes: &[u8]) -> Record {
        let word =
            |i: usize| bytes.get(i * 8..i * 8 + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0);
        Record { key: word(0), idle_at: word(1), state: State([word(2), word(3), word(4)]) }
    }

    pub fn encode_into(&self, out: &mut [u8]) {
        let words = [self.key, self.idle_at, self.state.0[0], self.state.0[1], self.state.0[2]];
        for (i, w) in words.iter().enumerate() {
            if let Some(dst) = out.get_mut(i * 8..i * 8 + 8) {
                dst.copy_from_slice(&w.to_le_bytes());
            }
        }
    }
}

/// Find `key`'s record in a set's bytes.
pub fn lookup(set: &[u8], key: KeyHash, now: Nanos) -> Lookup {
    let mut free: Option<(usize, bool)> = None;
    for way in 0..WAYS {
        let rec = record_at(set, way);
        if rec.key == key.0 {
            return Lookup::Own(way);
        }
        if free.is_none() {
            if rec.key == 0 {
                free = Some((way, false));
            } else if rec.idle_at <= now {
                free = Some((way, true));
            }
        }
    }
    match free {
        Some((way, evicts)) => Lookup::Free { way, evicts },
        None => Lookup::Full,
    }
}

pub fn record_at(set: &[u8], way: usize) -> Record {
    set.get(way * RECORD_BYTES..(way + 1) * RECORD_BYTES).map(Record::decode).unwrap_or_default()
}

/// A copy of the set's bytes with `way` replaced by `rec` (always `SET_BYTES` long).
pub fn with_record(set: &[u8], way: usize, rec: &Record) -> Vec<u8> {
    into_record(set.to_vec(), way, rec)
}

/// `with_record` on a set read for this write (no copy).
pub fn into_record(mut set: Vec<u8>, way: usize, rec: &Record) -> Vec<u8> {
    set.resize(SET_BYTES, 0);
    if let Some(dst) = set.get_mut(way * RECORD_BYTES..(way + 1) * RECORD_BYTES) {
        rec.encode_into(dst);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_short_input() {
        let r = Record { key: 7, idle_at: 9, state: State([1, 2, 3]) };
        let mut b = [0u8; RECORD_BYTES];
        r.encode_into(&mut b);
        assert_eq!(Record::decode(&b), r);
        assert_eq!(Record::decode(&b[..3]), Record::default());
    }

    #[test]
    fn lookup_prefers_own_then_empty_then_idle_and_reports_full() {
        let mut set = vec![0u8; SET_BYTES];
        for way in 0..WAYS {
            set = with_record(&set, way, &Record { key: 100 + way as u64, idle_at: 50, state: State::default() });
        }
        assert_eq!(lookup(&set, KeyHash(103), 10), Lookup::Own(3));
        assert_eq!(lookup(&set, KeyHash(1), 10), Lookup::Full);
        assert_eq!(lookup(&set, KeyHash(1), 50), Lookup::Free { way: 0, evicts: true });
        set = with_record(&set, 5, &Record::default());
        assert_eq!(lookup(&set, KeyHash(1), 10), Lookup::Free { way: 5, evicts: false });
    }

    #[test]
    fn sets_cover_the_capacity_and_spread_keys() {
        let t = SlotTable::new(1000);
        assert_eq!(t.sets(), 125);
        assert!(t.capacity() >= 1000);
        let mut seen = vec![false; t.sets()];
        for i in 0..10_000u32 {
            seen[t.set_of(KeyHash::of(1, &[&i.to_le_bytes()]))] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
