//! The memory budget (`memory.limit`): near it, new transactions wait.
//!
//! The live heap bytes the counting allocator sees (sampled every 100 ms by the root) are
//! compared with the limit; from 90 % of it on, MAIL gets `451 4.3.1` until memory falls
//! back under 80 % (the gap keeps the answer from flapping). Nothing already accepted is
//! dropped: transactions under way finish, the spool and deliveries go on. Without a
//! configured limit it is 80 % of the cgroup's memory limit, or of the machine's RAM.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use impulse_runtime::alloc;

/// The budget and whether it is under pressure now.
#[derive(Default)]
pub struct Budget {
    limit: AtomicU64,
    pressed: AtomicBool,
}

impl Budget {
    /// Put `limit` in force (see [`limit_for`]).
    pub fn set(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Whether new transactions should wait, for `live` bytes in use.
    pub fn pressed_at(&self, live: u64) -> bool {
        let limit = self.limit();
        if limit == 0 {
            return false;
        }
        let was = self.pressed.load(Ordering::Relaxed);
        let now = if was {
            live >= limit / 10 * 8
        } else {
            live >= limit / 10 * 9
        };
        if now != was {
            self.pressed.store(now, Ordering::Relaxed);
        }
        now
    }

    /// [`pressed_at`](Self::pressed_at) the allocator's last sample.
    pub fn pressed(&self) -> bool {
        self.pressed_at(alloc::last_total_live_bytes().max(0) as u64)
    }
}

/// The budget a configuration asks for: its `memory.limit`, else [`default_limit`] (which
/// reads `/sys` and `/proc`: call it where blocking is fine, at start or on the pool).
pub fn limit_for(cfg: &impulse_config::Config) -> u64 {
    cfg.memory.limit.map_or_else(default_limit, |l| l.get())
}

/// 80 % of the cgroup's memory limit, else of the machine's RAM, else 4 GiB.
pub fn default_limit() -> u64 {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&b| b > 0 && b < 1 << 60);
    let ram = read("/proc/meminfo").and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    let total = match (cgroup, ram) {
        (Some(c), Some(r)) => c.min(r),
        (Some(c), None) => c,
        (None, Some(r)) => r,
        (None, None) => 5 << 30,
    };
    total / 10 * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_starts_at_90_percent_and_ends_under_80() {
        let b = Budget::default();
        b.set(1000);
        assert!(!b.pressed_at(899));
        assert!(b.pressed_at(900));
        assert!(b.pressed_at(850), "still pressed until it falls under 80 %");
        assert!(!b.pressed_at(799));
        assert!(!b.pressed_at(850));
        assert!(default_limit() > 1 << 20);
    }
}
