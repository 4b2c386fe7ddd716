//! Requests held by throttle rules on one worker, bounded by `throttle_queue`; the worker's
//! tick hands back those that are due, in due order, for the host to resume.

use crate::engine::algorithm::Nanos;

/// A held request: when it may go on, and its id (the host's stream id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    due: Nanos,
    since: Nanos,
    id: u64,
}

/// A request to resume, and how long it was held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    pub id: u64,
    pub waited_ns: u64,
}

#[derive(Debug, Default)]
pub struct HeldQueue {
    entries: Vec<Held>,
    capacity: usize,
}

impl HeldQueue {
    pub fn new(capacity: usize) -> HeldQueue {
        HeldQueue { entries: Vec::new(), capacity }
    }

    pub fn has_room(&self) -> bool {
        self.entries.len() < self.capacity
    }

    pub fn hold(&mut self, id: u64, now: Nanos, wait_ns: u64) {
        self.entries.push(Held { due: now.saturating_add(wait_ns), since: now, id });
    }

    /// Forget a request (its client went away); true when it was still held.
    pub fn forget(&mut self, id: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|h| h.id != id);
        self.entries.len() != before
    }

    /// The requests due at `now`, in due order (removed from the queue).
    pub fn due(&mut self, now: Nanos) -> Vec<Release> {
        if !self.entries.iter().any(|h| h.due <= now) {
            return Vec::new();
        }
        let (mut due, keep): (Vec<Held>, Vec<Held>) = self.entries.iter().partition(|h| h.due <= now);
        self.entries = keep;
        due.sort_by_key(|h| h.due);
        due.iter().map(|h| Release { id: h.id, waited_ns: now.saturating_sub(h.since) }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_in_due_order_and_forgets_the_departed() {
        let mut q = HeldQueue::new(3);
        q.hold(1, 0, 300);
        q.hold(2, 0, 100);
        q.hold(3, 50, 100);
        assert!(!q.has_room());
        assert!(q.due(99).is_empty());
        assert_eq!(q.due(150), vec![Release { id: 2, waited_ns: 150 }, Release { id: 3, waited_ns: 100 }]);
        assert!(q.forget(1));
        assert!(!q.forget(1));
        assert!(q.due(u64::MAX).is_empty());
    }
}
