//! The storage the engine counts in: Envoy shared data in the filter (see `host`), and an
//! in-memory store with the same compare-and-swap semantics for tests.

/// Why a write did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Another writer changed the entry since it was read.
    CasMismatch,
    /// The host refused the write.
    Failed,
}

/// A key-value store with compare-and-swap, shared by every worker of one Envoy.
pub trait SharedStore {
    /// The value and its CAS token; None when the key is absent.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Write `value` if the entry's CAS token still equals `cas` (`0`: unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError>;
}

/// In-memory `SharedStore`, safe to race on from real threads.
#[derive(Default)]
pub struct MemoryStore {
    inner: std::sync::Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    map: std::collections::HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        let guard = self.inner.lock().ok()?;
        guard.map.get(key).cloned()
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        let mut guard = self.inner.lock().map_err(|_| StoreError::Failed)?;
        // Envoy's CAS tokens start at 1 and never repeat for a key.
        guard.next_cas = guard.next_cas.wrapping_add(1).max(1);
        let next = guard.next_cas;
        match guard.map.get_mut(key) {
            Some(entry) => {
                if cas != 0 && cas != entry.1 {
                    return Err(StoreError::CasMismatch);
                }
                *entry = (value.to_vec(), next);
            }
            None => {
                guard.map.insert(key.to_string(), (value.to_vec(), next));
            }
        }
        Ok(())
    }
}
