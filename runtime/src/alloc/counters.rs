//! Per-thread counter slots: where the allocator writes and where reports read.
//!
//! A static array of [`SLOTS`] cache-line-aligned slots, each holding one
//! [`ClassCounters`] per [`ActorClass`] plus two class-blind totals (live bytes, live
//! allocations) that are updated at the same call sites but kept apart, so "the classes
//! sum to the total" is a real check and not an identity. A thread claims a slot the
//! first time it allocates (a const-initialised thread-local: no `Drop`, no lazy
//! initialisation, nothing that allocates) and from then on it is the slot's only writer,
//! so every update is a relaxed load plus a relaxed store — no read-modify-write, no
//! contended cache line. Readers sum all claimed slots.
//!
//! Contracts:
//! - A slot is never reused. A thread's slot keeps its counts after the thread exits:
//!   memory it allocated may still be live and will be freed (and subtracted) elsewhere.
//! - A free is subtracted from the class stored in the block's header but in the
//!   *freeing* thread's slot, so a single slot may go negative; only the sum is meaningful,
//!   and the sum is exact.
//! - When all slots are claimed, further threads share one overflow slot updated with
//!   `fetch_add` (correct, merely slower). So does a thread whose thread-local is no longer
//!   reachable (late in its teardown).
//! - Sums are read without stopping writers: while other threads allocate, a report is a
//!   blend of nearby instants; at a quiescent moment it is exact.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::class::ActorClass;

/// Number of per-thread slots; threads beyond this share the overflow slot.
pub const SLOTS: usize = 256;

const UNCLAIMED: u16 = 0;
const OVERFLOW: u16 = u16::MAX;

/// The counters of one class in one slot.
pub(super) struct ClassCounters {
    live_bytes: AtomicI64,
    live_allocs: AtomicI64,
    total_allocs: AtomicU64,
}

impl ClassCounters {
    const fn new() -> Self {
        ClassCounters {
            live_bytes: AtomicI64::new(0),
            live_allocs: AtomicI64::new(0),
            total_allocs: AtomicU64::new(0),
        }
    }
}

/// One thread's counters (or the shared overflow counters).
#[repr(align(64))]
pub(super) struct Slot {
    classes: [ClassCounters; ActorClass::COUNT],
    /// Live bytes of every class, counted independently of `classes`.
    total_bytes: AtomicI64,
    /// Live allocations of every class, counted independently of `classes`.
    total_allocs: AtomicI64,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            classes: [const { ClassCounters::new() }; ActorClass::COUNT],
            total_bytes: AtomicI64::new(0),
            total_allocs: AtomicI64::new(0),
        }
    }
}

static SLOT_TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
static OVERFLOW_SLOT: Slot = Slot::new();
/// How many threads have tried to claim a slot (may exceed `SLOTS`).
static CLAIMED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// 0: not yet claimed; 1..=SLOTS: index + 1; `OVERFLOW`: use the overflow slot.
    static MY_SLOT: Cell<u16> = const { Cell::new(UNCLAIMED) };
}

#[inline]
fn claim() -> u16 {
    let i = CLAIMED.fetch_add(1, Relaxed);
    if i < SLOTS {
        (i + 1) as u16
    } else {
        OVERFLOW
    }
}

/// Add `d` to `cell`: plain load + store for the owning thread, `fetch_add` when shared.
#[inline(always)]
fn add_i64(cell: &AtomicI64, d: i64, owned: bool) {
    if owned {
        cell.store(cell.load(Relaxed).wrapping_add(d), Relaxed);
    } else {
        cell.fetch_add(d, Relaxed);
    }
}

#[inline(always)]
fn add_u64(cell: &AtomicU64, d: u64, owned: bool) {
    if owned {
        cell.store(cell.load(Relaxed).wrapping_add(d), Relaxed);
    } else {
        cell.fetch_add(d, Relaxed);
    }
}

/// Apply a change to the calling thread's slot for `class`.
#[inline(always)]
fn update(class: u8, d_bytes: i64, d_allocs: i64, new_allocs: u64) {
    let idx = MY_SLOT
        .try_with(|s| {
            let v = s.get();
            if v != UNCLAIMED {
                v
            } else {
                let v = claim();
                s.set(v);
                v
            }
        })
        .unwrap_or(OVERFLOW);
    let (slot, owned) = if idx == OVERFLOW {
        (&OVERFLOW_SLOT, false)
    } else {
        (&SLOT_TABLE[(idx - 1) as usize], true)
    };
    let class = if (class as usize) < ActorClass::COUNT {
        class as usize
    } else {
        0
    };
    let c = &slot.classes[class];
    add_i64(&c.live_bytes, d_bytes, owned);
    add_i64(&slot.total_bytes, d_bytes, owned);
    if d_allocs != 0 {
        add_i64(&c.live_allocs, d_allocs, owned);
        add_i64(&slot.total_allocs, d_allocs, owned);
    }
    if new_allocs != 0 {
        add_u64(&c.total_allocs, new_allocs, owned);
    }
}

/// A block of `bytes` was allocated for `class`.
#[inline(always)]
pub(super) fn record_alloc(class: u8, bytes: usize) {
    update(class, bytes as i64, 1, 1);
}

/// A block of `bytes` allocated for `class` was freed (by whichever thread).
#[inline(always)]
pub(super) fn record_free(class: u8, bytes: usize) {
    update(class, -(bytes as i64), -1, 0);
}

/// A block of `class` changed size by `delta` bytes.
#[inline(always)]
pub(super) fn record_resize(class: u8, delta: i64) {
    update(class, delta, 0, 0);
}

/// Sums over every slot, read without allocating.
#[derive(Clone, Copy, Default)]
pub(super) struct Totals {
    pub live_bytes: [i64; ActorClass::COUNT],
    pub live_allocs: [i64; ActorClass::COUNT],
    pub total_allocs: [u64; ActorClass::COUNT],
    pub total_live_bytes: i64,
    pub total_live_allocs: i64,
}

fn add_slot(t: &mut Totals, slot: &Slot) {
    for (i, c) in slot.classes.iter().enumerate() {
        t.live_bytes[i] = t.live_bytes[i].wrapping_add(c.live_bytes.load(Relaxed));
        t.live_allocs[i] = t.live_allocs[i].wrapping_add(c.live_allocs.load(Relaxed));
        t.total_allocs[i] = t.total_allocs[i].wrapping_add(c.total_allocs.load(Relaxed));
    }
    t.total_live_bytes = t
        .total_live_bytes
        .wrapping_add(slot.total_bytes.load(Relaxed));
    t.total_live_allocs = t
        .total_live_allocs
        .wrapping_add(slot.total_allocs.load(Relaxed));
}

/// Sum every claimed slot and the overflow slot.
pub(super) fn read() -> Totals {
    let mut t = Totals::default();
    let n = CLAIMED.load(Relaxed).min(SLOTS);
    for slot in &SLOT_TABLE[..n] {
        add_slot(&mut t, slot);
    }
    add_slot(&mut t, &OVERFLOW_SLOT);
    t
}

/// Threads that have claimed a counter slot (those past [`SLOTS`] share the overflow slot).
pub fn threads_seen() -> usize {
    CLAIMED.load(Relaxed)
}

/// Whether any allocation has been counted (i.e. the counting allocator is in use).
pub(super) fn installed() -> bool {
    CLAIMED.load(Relaxed) > 0
        || OVERFLOW_SLOT
            .classes
            .iter()
            .any(|c| c.total_allocs.load(Relaxed) > 0)
}
