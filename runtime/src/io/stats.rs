//! The loop's counters: written by the loop thread only, read by any handle.
//!
//! The loop keeps each counter in a plain field and stores it to a relaxed atomic cell
//! as soon as it changes, before the event that reports the change is delivered, so an
//! actor that has seen `Closed` (or `Accepted`, or `Data`) reads stats that include it.
//! One writer means no read-modify-write atomics are needed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::IoStats;

/// The published values.
#[derive(Default)]
pub(super) struct StatsCells {
    listeners: AtomicU64,
    connections: AtomicU64,
    accepted_total: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Written from callers' threads ([`super::direct`]); the one counter with many
    /// writers, so it is added to, not stored.
    pub(super) bytes_out_direct: AtomicU64,
    paused: AtomicU64,
}

impl StatsCells {
    pub(super) fn snapshot(&self) -> IoStats {
        IoStats {
            listeners: self.listeners.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            accepted_total: self.accepted_total.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed)
                + self.bytes_out_direct.load(Ordering::Relaxed),
            paused: self.paused.load(Ordering::Relaxed),
        }
    }
}

/// The loop's side: the values and where they are published.
pub(super) struct Counters {
    cells: Arc<StatsCells>,
    accepted_total: u64,
    bytes_in: u64,
    bytes_out: u64,
    paused: u64,
}

impl Counters {
    pub(super) fn new(cells: Arc<StatsCells>) -> Counters {
        Counters {
            cells,
            accepted_total: 0,
            bytes_in: 0,
            bytes_out: 0,
            paused: 0,
        }
    }

    pub(super) fn read(&mut self, n: usize) {
        self.bytes_in += n as u64;
        self.cells.bytes_in.store(self.bytes_in, Ordering::Relaxed);
    }

    pub(super) fn wrote(&mut self, n: usize) {
        self.bytes_out += n as u64;
        self.cells
            .bytes_out
            .store(self.bytes_out, Ordering::Relaxed);
    }

    pub(super) fn accepted(&mut self) {
        self.accepted_total += 1;
        let total = self.accepted_total;
        self.cells.accepted_total.store(total, Ordering::Relaxed);
    }

    pub(super) fn paused(&mut self) {
        self.paused += 1;
        self.cells.paused.store(self.paused, Ordering::Relaxed);
    }

    pub(super) fn resumed(&mut self) {
        self.paused -= 1;
        self.cells.paused.store(self.paused, Ordering::Relaxed);
    }

    /// Publish the number of open listeners.
    pub(super) fn listeners(&self, n: usize) {
        self.cells.listeners.store(n as u64, Ordering::Relaxed);
    }

    /// Publish the number of open connections.
    pub(super) fn connections(&self, n: usize) {
        self.cells.connections.store(n as u64, Ordering::Relaxed);
    }
}
