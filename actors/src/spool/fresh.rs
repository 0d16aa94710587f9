//! The bodies of freshly stored messages, kept in memory for their first delivery.
//!
//! Most messages are delivered within milliseconds of being stored; reading them back
//! from the segment costs a pool job (two thread hand-offs and a `pread`) for bytes the
//! spool held a moment ago. The spool keeps the most recently stored bodies, up to a
//! byte budget, and answers `ReadData` from here when it can. The cache holds only
//! bodies already durable in a segment: it is a copy, never the only one, and losing it
//! (eviction, restart) only means the next read goes to the disk.
//!
//! Oldest first out: a message still queued after `budget` bytes of newer mail has
//! arrived is read from its segment, so a deep queue costs the cache nothing.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::ids::MessageId;

/// Bytes of message bodies kept by default.
pub const DEFAULT_BUDGET: usize = 8 << 20;

/// Recently stored bodies by id, bounded by total bytes.
pub struct Fresh {
    budget: usize,
    bytes: usize,
    bodies: HashMap<MessageId, Bytes>,
    /// Insertion order; ids already removed are skipped when they reach the front.
    order: VecDeque<MessageId>,
}

impl Fresh {
    pub fn new(budget: usize) -> Fresh {
        Fresh {
            budget,
            bytes: 0,
            bodies: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Keep `data` as the body of `id`; evicts the oldest bodies past the budget. A body
    /// larger than the whole budget is not kept.
    pub fn insert(&mut self, id: MessageId, data: Bytes) {
        if data.len() > self.budget {
            return;
        }
        if let Some(old) = self.bodies.insert(id, data.clone()) {
            self.bytes -= old.len();
        } else {
            self.order.push_back(id);
        }
        self.bytes += data.len();
        while self.bytes > self.budget {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.bodies.remove(&oldest) {
                self.bytes -= b.len();
            }
        }
        // Removed ids leave holes in `order`; keep it from growing past the live set.
        if self.order.len() > 2 * self.bodies.len() + 64 {
            let bodies = &self.bodies;
            self.order.retain(|id| bodies.contains_key(id));
        }
    }

    pub fn get(&self, id: MessageId) -> Option<Bytes> {
        self.bodies.get(&id).cloned()
    }

    /// The message left the spool (or its copy moved): forget its body.
    pub fn remove(&mut self, id: MessageId) {
        if let Some(b) = self.bodies.remove(&id) {
            self.bytes -= b.len();
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn keeps_what_fits_and_evicts_oldest_first() {
        let mut f = Fresh::new(100);
        for i in 0..5 {
            f.insert(MessageId(i), body(30));
        }
        // 5 × 30 > 100: the two oldest are gone.
        assert_eq!(f.len(), 3);
        assert!(f.get(MessageId(0)).is_none());
        assert!(f.get(MessageId(1)).is_none());
        assert_eq!(f.get(MessageId(4)).unwrap().len(), 30);
        assert_eq!(f.bytes(), 90);
    }

    #[test]
    fn remove_frees_the_budget_and_skips_holes() {
        let mut f = Fresh::new(100);
        f.insert(MessageId(1), body(50));
        f.insert(MessageId(2), body(50));
        f.remove(MessageId(1));
        assert_eq!(f.bytes(), 50);
        f.insert(MessageId(3), body(50));
        assert_eq!(f.len(), 2, "the freed room is used, nothing evicted");
        f.insert(MessageId(4), body(50));
        assert!(f.get(MessageId(2)).is_none());
        assert!(f.get(MessageId(3)).is_some() && f.get(MessageId(4)).is_some());
    }

    #[test]
    fn a_body_larger_than_the_budget_is_not_kept() {
        let mut f = Fresh::new(10);
        f.insert(MessageId(1), body(11));
        assert!(f.is_empty());
        assert_eq!(f.bytes(), 0);
    }

    #[test]
    fn reinsert_replaces_without_double_counting() {
        let mut f = Fresh::new(100);
        f.insert(MessageId(1), body(40));
        f.insert(MessageId(1), body(20));
        assert_eq!(f.bytes(), 20);
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn order_does_not_grow_with_churn() {
        let mut f = Fresh::new(1 << 20);
        for i in 0..100_000 {
            f.insert(MessageId(i), body(10));
            f.remove(MessageId(i));
        }
        assert!(f.order.len() < 200, "order holds {}", f.order.len());
    }
}
