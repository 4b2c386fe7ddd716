//! Requests held by throttle rules on this worker, released from the root context's tick.

use std::cell::RefCell;
use std::rc::Rc;

/// A held request: when it may go on, and its HTTP context.
#[derive(Clone, Copy, Debug)]
struct Held {
    due_ns: u64,
    since_ns: u64,
    context_id: u32,
}

/// This worker's queue of held requests (bounded by `throttle_queue`).
#[derive(Default)]
pub struct HeldQueue {
    entries: Vec<Held>,
    capacity: usize,
}

pub type SharedQueue = Rc<RefCell<HeldQueue>>;

impl HeldQueue {
    pub fn new(capacity: usize) -> SharedQueue {
        Rc::new(RefCell::new(HeldQueue { entries: Vec::new(), capacity }))
    }

    pub fn has_room(&self) -> bool {
        self.entries.len() < self.capacity
    }

    pub fn hold(&mut self, context_id: u32, now_ns: u64, wait_ns: u64) {
        self.entries.push(Held { due_ns: now_ns.saturating_add(wait_ns), since_ns: now_ns, context_id });
    }

    /// Forget a request (its client went away); true when it was still held.
    pub fn forget(&mut self, context_id: u32) -> bool {
        let before = self.entries.len();
        self.entries.retain(|h| h.context_id != context_id);
        self.entries.len() != before
    }

    /// Resume every request that is due, in due order; returns how long each waited (ns).
    pub fn release_due(&mut self, now_ns: u64) -> Vec<u64> {
        let (mut due, keep): (Vec<Held>, Vec<Held>) = self.entries.iter().partition(|h| h.due_ns <= now_ns);
        self.entries = keep;
        due.sort_by_key(|h| h.due_ns);
        due.iter()
            .filter_map(|h| {
                let resumed = super::ffi::set_effective_context(h.context_id) && super::ffi::resume_request();
                resumed.then_some(now_ns.saturating_sub(h.since_ns))
            })
            .collect()
    }
}
