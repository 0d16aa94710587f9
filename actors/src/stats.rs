//! Process-wide counters for `impulsectl status`, passed explicitly (no global).
//!
//! Plain relaxed atomics, incremented where the event happens; the control actor reads
//! them and derives per-second rates from two samples.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of everything `impulsectl status` reports.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_in: AtomicU64,
    pub connections_out: AtomicU64,
    pub received: AtomicU64,
    pub delivered: AtomicU64,
    pub deferred: AtomicU64,
    pub bounced: AtomicU64,
    pub expired: AtomicU64,
    /// Messages currently spooled and not yet finished.
    pub messages_live: AtomicU64,
    /// Message actors alive (messages being worked on; the rest are queued records).
    pub messages_working: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
