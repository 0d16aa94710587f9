//! The counting global allocator: live bytes, allocations and peak per actor class.
//!
//! [`CountingAlloc`] wraps mimalloc. Each thread has a *current class* (a const
//! thread-local byte, [`ActorClass::Other`] by default) that actors set while they run
//! ([`enter`], restored by the returned guard) or that single-purpose threads set for
//! life ([`set_thread_class`]: the I/O thread, pool workers). Every allocation records the
//! current class in a 16-byte header in front of the block and is counted in the
//! allocating thread's counter slot; every free subtracts from the class found in the
//! header (see `global.rs` for the header layout and `counters.rs` for the slots).
//!
//! [`snapshot`] sums the slots into a [`MemoryReport`]. Its `total_live_bytes` comes from
//! separate class-blind counters, so "the classes add up to the total" is a real check.
//!
//! **Peak** is sampled, not tracked per allocation (which would need a shared
//! read-modify-write on every allocation): it is the highest per-class live value seen at
//! a sampling point — every call of [`sample_peaks`] or [`snapshot`]. The daemon calls
//! [`start_peak_sampler`], which samples every [`PEAK_SAMPLE_INTERVAL`] (100 ms); spikes
//! shorter than that may go unseen.
//!
//! Cost (release, 2 cores, `examples/alloc_bench.rs`, ns per alloc+free pair, 1 thread):
//! mixed sizes 10.2 with mimalloc alone, 13.9 counted; a tight 64-byte loop 4.2 alone,
//! 13.1 counted, of which most (10.4) is mimalloc serving the 16-byte-larger block.

mod counters;
mod global;

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::class::ActorClass;

pub use counters::{threads_seen, SLOTS};
pub use global::{CountingAlloc, HEADER};

thread_local! {
    /// The class allocations on this thread are attributed to.
    static CLASS: Cell<u8> = const { Cell::new(0) };
}

/// The current class as its raw value; `Other` (0) if the thread-local is gone.
#[inline(always)]
pub(crate) fn current_raw() -> u8 {
    CLASS.try_with(Cell::get).unwrap_or(0)
}

/// The class allocations on this thread are currently attributed to.
pub fn current() -> ActorClass {
    ActorClass::from_u8(current_raw())
}

/// Attribute this thread's allocations to `class` until the guard drops, then restore the
/// previous class. Guards nest. The guard cannot leave the thread.
#[must_use = "the class is restored when the guard drops"]
pub fn enter(class: ActorClass) -> ClassGuard {
    let prev = CLASS.with(|c| c.replace(class as u8));
    ClassGuard {
        prev,
        _not_send: PhantomData,
    }
}

/// Run `f` with this thread's allocations attributed to `class`.
pub fn in_class<R>(class: ActorClass, f: impl FnOnce() -> R) -> R {
    let _guard = enter(class);
    f()
}

/// Attribute this thread's allocations to `class` from now on (for threads that are one
/// class for life: the I/O thread, pool workers).
pub fn set_thread_class(class: ActorClass) {
    CLASS.with(|c| c.set(class as u8));
}

/// Restores the previous class when dropped; see [`enter`].
pub struct ClassGuard {
    prev: u8,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ClassGuard {
    fn drop(&mut self) {
        let _ = CLASS.try_with(|c| c.set(self.prev));
    }
}

/// Memory of one class.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClassMemory {
    pub class: ActorClass,
    /// Bytes currently allocated (as requested; headers not included).
    pub live_bytes: i64,
    /// Blocks currently allocated.
    pub live_allocs: i64,
    /// Blocks allocated since start (reallocations not counted).
    pub total_allocs: u64,
    /// Highest `live_bytes` seen at a sampling point (see the module documentation).
    pub peak_bytes: i64,
}

/// What `impulsectl memory` prints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MemoryReport {
    /// One entry per class, in [`ActorClass::ALL`] order.
    pub classes: Vec<ClassMemory>,
    /// Live bytes of all classes, from counters kept apart from the per-class ones.
    pub total_live_bytes: i64,
    /// Live blocks of all classes, from counters kept apart from the per-class ones.
    pub total_live_allocs: i64,
    /// Whether the counting allocator has seen any allocation (false where it is not the
    /// global allocator: then every number is zero).
    pub installed: bool,
    /// The process's resident set size (from `/proc/self/statm`), when known; filled in
    /// by the daemon off its event loops ([`rss_bytes`]).
    #[serde(default)]
    pub rss_bytes: Option<u64>,
}

impl MemoryReport {
    /// The entry of `class`.
    pub fn class(&self, class: ActorClass) -> &ClassMemory {
        &self.classes[class as usize]
    }

    /// Sum of the per-class live bytes (equals `total_live_bytes` at a quiescent moment).
    pub fn sum_live_bytes(&self) -> i64 {
        self.classes.iter().map(|c| c.live_bytes).sum()
    }

    /// Sum of the per-class live allocations (equals `total_live_allocs` when quiescent).
    pub fn sum_live_allocs(&self) -> i64 {
        self.classes.iter().map(|c| c.live_allocs).sum()
    }
}

static PEAK: [AtomicI64; ActorClass::COUNT] = [const { AtomicI64::new(0) }; ActorClass::COUNT];

/// How often [`start_peak_sampler`] samples.
pub const PEAK_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

fn sample(t: &counters::Totals) {
    for (peak, live) in PEAK.iter().zip(t.live_bytes) {
        peak.fetch_max(live, Relaxed);
    }
}

/// Record the current per-class live bytes as a peak candidate. Cheap (sums 256 slots,
/// allocates nothing); meant for a timer.
pub fn sample_peaks() {
    let t = counters::read();
    sample(&t);
    LAST_TOTAL.store(t.total_live_bytes, Relaxed);
    SAMPLES.fetch_add(1, Relaxed);
}

/// Live bytes of all classes at the last [`sample_peaks`] (a cheap read for hot paths
/// that only need to know roughly where memory stands, e.g. admission under pressure).
pub fn last_total_live_bytes() -> i64 {
    LAST_TOTAL.load(Relaxed)
}

static LAST_TOTAL: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// How many times [`sample_peaks`] has run (the peak sampler's heartbeat).
pub fn samples_taken() -> u64 {
    SAMPLES.load(Relaxed)
}

static SAMPLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sample peaks every [`PEAK_SAMPLE_INTERVAL`] on the current actix arbiter until the
/// returned handle is aborted or the arbiter stops. Call once, inside a running System.
pub fn start_peak_sampler() -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async {
        let mut tick = actix_rt::time::interval(PEAK_SAMPLE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sample_peaks();
        }
    })
}

/// Current counters of every class (also a peak sampling point).
pub fn snapshot() -> MemoryReport {
    let t = counters::read();
    sample(&t);
    let installed = counters::installed();
    let classes = ActorClass::ALL
        .iter()
        .map(|&class| {
            let i = class as usize;
            ClassMemory {
                class,
                live_bytes: t.live_bytes[i],
                live_allocs: t.live_allocs[i],
                total_allocs: t.total_allocs[i],
                peak_bytes: PEAK[i].load(Relaxed),
            }
        })
        .collect();
    MemoryReport {
        classes,
        total_live_bytes: t.total_live_bytes,
        total_live_allocs: t.total_live_allocs,
        installed,
        rss_bytes: None,
    }
}

/// The resident set size of this process, from `/proc/self/statm` (Linux).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_nest_and_restore() {
        assert_eq!(current(), ActorClass::Other);
        {
            let _a = enter(ActorClass::Domain);
            assert_eq!(current(), ActorClass::Domain);
            {
                let _b = enter(ActorClass::Message);
                assert_eq!(current(), ActorClass::Message);
            }
            assert_eq!(current(), ActorClass::Domain);
        }
        assert_eq!(current(), ActorClass::Other);
        assert_eq!(in_class(ActorClass::Spool, current), ActorClass::Spool);
        std::thread::spawn(|| {
            set_thread_class(ActorClass::Pool);
            assert_eq!(current(), ActorClass::Pool);
        })
        .join()
        .unwrap();
        assert_eq!(current(), ActorClass::Other);
    }

    #[test]
    fn not_installed_in_the_unit_test_binary() {
        let r = snapshot();
        assert!(!r.installed);
        assert_eq!(r.classes.len(), ActorClass::COUNT);
        assert_eq!(r.total_live_bytes, 0);
        assert_eq!(r.sum_live_bytes(), 0);
        let json = serde_json::to_string(&r).unwrap();
        let back: MemoryReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
