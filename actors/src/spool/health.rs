//! Spool health, shared with whoever must act on it without asking the spool actor: the
//! inbound sessions (`452 4.3.1` at MAIL FROM while unhealthy) and `impulsectl status`.
//!
//! The spool is unhealthy while its last write failed (ENOSPC, EIO, a read-only file
//! system) or its file system has less free space than `spool.min_free`; it turns
//! healthy by itself once a write (or its periodic probe) succeeds with room to spare.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// The spool's health, readable from any thread.
#[derive(Debug)]
pub struct SpoolHealth {
    healthy: AtomicBool,
    reason: Mutex<String>,
    quarantined: AtomicU64,
}

impl Default for SpoolHealth {
    fn default() -> Self {
        SpoolHealth {
            healthy: AtomicBool::new(true),
            reason: Mutex::new(String::new()),
            quarantined: AtomicU64::new(0),
        }
    }
}

impl SpoolHealth {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Why it is unhealthy ("" while healthy).
    pub fn reason(&self) -> String {
        self.reason.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn set_unhealthy(&self, reason: String) {
        if self.is_healthy() {
            eprintln!("spool: unhealthy: {reason}");
        }
        if let Ok(mut r) = self.reason.lock() {
            *r = reason;
        }
        self.healthy.store(false, Ordering::Relaxed);
    }

    pub fn set_healthy(&self) {
        if !self.is_healthy() {
            eprintln!("spool: healthy again");
        }
        if let Ok(mut r) = self.reason.lock() {
            r.clear();
        }
        self.healthy.store(true, Ordering::Relaxed);
    }

    /// Damaged records moved to quarantine since start.
    pub fn quarantined(&self) -> u64 {
        self.quarantined.load(Ordering::Relaxed)
    }

    pub fn add_quarantined(&self, n: u64) {
        self.quarantined.fetch_add(n, Ordering::Relaxed);
    }
}
