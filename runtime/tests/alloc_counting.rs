//! The counting allocator installed as this test binary's global allocator.
//!
//! Tests share the process-wide counters, so each takes `SERIAL` and asserts only on
//! classes nothing else in this binary allocates under (the harness runs as `other`).
//! Deltas are exact: counted bytes are the requested sizes.

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::sync::{Mutex, MutexGuard};
use std::thread;

use impulse_runtime::alloc::{self as counting, CountingAlloc, MemoryReport};
use impulse_runtime::ActorClass;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn live(r: &MemoryReport, class: ActorClass) -> (i64, i64) {
    let c = r.class(class);
    (c.live_bytes, c.live_allocs)
}

const MIB: usize = 1 << 20;

#[test]
fn one_mib_is_attributed_to_message_and_freed_elsewhere_exactly() {
    let _s = serial();
    let before = counting::snapshot();
    assert!(before.installed);

    let buf = counting::in_class(ActorClass::Message, || vec![7u8; MIB]);
    let after = counting::snapshot();
    let (b0, a0) = live(&before, ActorClass::Message);
    assert_eq!(live(&after, ActorClass::Message), (b0 + MIB as i64, a0 + 1));
    assert_eq!(
        after.class(ActorClass::Message).total_allocs,
        before.class(ActorClass::Message).total_allocs + 1
    );

    // Freed on another thread while that thread runs as `domain`.
    let dom_before = live(&counting::snapshot(), ActorClass::Domain);
    thread::spawn(move || {
        let _g = counting::enter(ActorClass::Domain);
        drop(buf);
    })
    .join()
    .unwrap();
    let end = counting::snapshot();
    assert_eq!(live(&end, ActorClass::Message), (b0, a0));
    assert_eq!(live(&end, ActorClass::Domain), dom_before);
}

#[test]
fn realloc_keeps_the_original_class_and_counts_the_delta() {
    let _s = serial();
    let base = live(&counting::snapshot(), ActorClass::Inbound);
    let mut v: Vec<u8> = counting::in_class(ActorClass::Inbound, || Vec::with_capacity(1000));
    let at = |r: &MemoryReport| live(r, ActorClass::Inbound);
    assert_eq!(at(&counting::snapshot()), (base.0 + 1000, base.1 + 1));

    // Grown and shrunk on another thread under another class: still inbound's bytes.
    let out_before = live(&counting::snapshot(), ActorClass::Outbound);
    let v = thread::spawn(move || {
        let _g = counting::enter(ActorClass::Outbound);
        v.reserve_exact(100_000);
        assert_eq!(v.capacity(), 100_000);
        v.extend_from_slice(b"hello");
        v
    })
    .join()
    .unwrap();
    assert_eq!(at(&counting::snapshot()), (base.0 + 100_000, base.1 + 1));
    assert_eq!(
        live(&counting::snapshot(), ActorClass::Outbound),
        out_before
    );

    let mut v = v;
    v.shrink_to_fit();
    assert_eq!(v.capacity(), 5);
    assert_eq!(&v[..], b"hello");
    assert_eq!(at(&counting::snapshot()), (base.0 + 5, base.1 + 1));
    drop(v);
    assert_eq!(at(&counting::snapshot()), base);
}

#[test]
fn large_alignments_are_honoured_and_counted() {
    let _s = serial();
    let base = live(&counting::snapshot(), ActorClass::Listener);
    let _g = counting::enter(ActorClass::Listener);
    unsafe {
        for align in [32usize, 64, 4096, 1 << 16] {
            let layout = Layout::from_size_align(3000, align).unwrap();
            let p = alloc(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "align {align}");
            for i in 0..3000 {
                *p.add(i) = (i % 251) as u8;
            }
            let q = realloc(p, layout, 50_000);
            assert!(!q.is_null());
            assert_eq!(q as usize % align, 0, "realloc keeps align {align}");
            assert!((0..3000).all(|i| *q.add(i) == (i % 251) as u8));
            let grown = Layout::from_size_align(50_000, align).unwrap();
            let q = realloc(q, grown, 100);
            assert_eq!(q as usize % align, 0);
            assert!((0..100).all(|i| *q.add(i) == (i % 251) as u8));

            let z = Layout::from_size_align(8192, align).unwrap();
            let zp = alloc_zeroed(z);
            assert_eq!(zp as usize % align, 0);
            assert!((0..8192).all(|i| *zp.add(i) == 0));

            let r = counting::snapshot();
            let c = r.class(ActorClass::Listener);
            assert_eq!((c.live_bytes, c.live_allocs), (base.0 + 8292, base.1 + 2));
            dealloc(q, Layout::from_size_align(100, align).unwrap());
            dealloc(zp, z);
        }
    }
    drop(_g);
    assert_eq!(live(&counting::snapshot(), ActorClass::Listener), base);
}

/// A deterministic xorshift so the workload is the same every run.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Blocks one thread allocated and another frees.
type Batch = Vec<Box<[u8]>>;

#[test]
fn concurrent_threads_under_many_classes_sum_exactly() {
    let _s = serial();
    use ActorClass::*;
    let classes = [Root, Io, Pool, Spool, Control, Logger, Listener, Domain];
    let before = counting::snapshot();

    // Phase 1: each thread allocates under its class, frees half, keeps half.
    let kept: Vec<(ActorClass, Batch, i64)> = classes
        .iter()
        .enumerate()
        .map(|(i, &class)| {
            thread::spawn(move || {
                let mut next = rng(i as u64 + 1);
                let mut keep: Batch = Vec::with_capacity(5_000);
                let _g = counting::enter(class);
                let mut bytes = 0i64;
                for _ in 0..10_000 {
                    let size = 1 + (next() % 4096) as usize;
                    let b = vec![0xA5u8; size].into_boxed_slice();
                    if next().is_multiple_of(2) && keep.len() < keep.capacity() {
                        bytes += size as i64;
                        keep.push(b);
                    }
                }
                drop(_g);
                (class, keep, bytes)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();

    let mid = counting::snapshot();
    for (class, keep, bytes) in &kept {
        let (b0, a0) = live(&before, *class);
        assert_eq!(
            live(&mid, *class),
            (b0 + bytes, a0 + keep.len() as i64),
            "{class}"
        );
        assert!(mid.class(*class).total_allocs >= before.class(*class).total_allocs + 10_000);
    }

    // Phase 2: every batch is freed by the next thread, running under the next class,
    // which also churns allocations of its own.
    let n = classes.len();
    kept.into_iter()
        .enumerate()
        .map(|(i, (_, keep, _))| {
            let class = classes[(i + 1) % n];
            thread::spawn(move || {
                let _g = counting::enter(class);
                let mut next = rng(99 + i as u64);
                for (j, b) in keep.into_iter().enumerate() {
                    drop(b);
                    if j.is_multiple_of(3) {
                        let tmp = vec![1u8; 1 + (next() % 1000) as usize];
                        std::hint::black_box(&tmp);
                    }
                }
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .for_each(|h| h.join().unwrap());

    let end = counting::snapshot();
    for class in classes {
        assert_eq!(live(&end, class), live(&before, class), "{class}");
    }
}

#[test]
fn classes_sum_to_the_independent_total() {
    let _s = serial();
    let _keep = counting::in_class(ActorClass::Control, || vec![0u8; 12345]);
    // Other test threads may be allocating; at a quiet moment the two must agree.
    let agreed = (0..1000).any(|_| {
        let r = counting::snapshot();
        r.sum_live_bytes() == r.total_live_bytes && r.sum_live_allocs() == r.total_live_allocs
    });
    assert!(agreed, "per-class sums never matched the totals");
    let r = counting::snapshot();
    assert!(r.total_live_bytes >= 12345);
    assert!(r
        .classes
        .iter()
        .all(|c| c.live_allocs >= 0 && c.live_bytes >= 0));
}

#[test]
fn peak_is_the_highest_sampled_value() {
    let _s = serial();
    let base = counting::snapshot().class(ActorClass::Logger).live_bytes;
    let big = counting::in_class(ActorClass::Logger, || vec![0u8; 4 * MIB]);
    counting::sample_peaks();
    drop(big);
    let r = counting::snapshot();
    let c = r.class(ActorClass::Logger);
    assert_eq!(c.live_bytes, base);
    assert!(c.peak_bytes >= base + 4 * MIB as i64, "{c:?}");
}

#[test]
fn threads_beyond_the_slot_table_share_the_overflow_slot_exactly() {
    let _s = serial();
    let base = live(&counting::snapshot(), ActorClass::Outbound);
    let mut kept = Vec::new();
    // Enough short-lived threads to use up every slot; later ones share the overflow.
    for i in 0..(counting::SLOTS + 40) {
        let b = thread::spawn(move || {
            let _g = counting::enter(ActorClass::Outbound);
            let keep = vec![0u8; 100 + i];
            let _tmp = vec![0u8; 1000];
            keep
        })
        .join()
        .unwrap();
        kept.push(b);
    }
    assert!(counting::threads_seen() > counting::SLOTS);
    let expect: i64 = kept.iter().map(|b| b.len() as i64).sum();
    let r = counting::snapshot();
    assert_eq!(
        live(&r, ActorClass::Outbound),
        (base.0 + expect, base.1 + kept.len() as i64)
    );
    // Freed here (this thread's own slot), still exact.
    drop(kept);
    assert_eq!(live(&counting::snapshot(), ActorClass::Outbound), base);
}

#[test]
fn the_peak_sampler_samples_on_its_own() {
    let _s = serial();
    actix_rt::System::new().block_on(async {
        let before = counting::snapshot();
        let (live0, peak0) = (
            before.class(ActorClass::Root).live_bytes,
            before.class(ActorClass::Root).peak_bytes,
        );
        // Big enough that only a sample taken while it is live can reach the new peak.
        let size = (peak0 - live0).max(0) as usize + 3 * MIB;
        let sampler = counting::start_peak_sampler();
        let big = counting::in_class(ActorClass::Root, || vec![1u8; size]);
        // No `snapshot` while `big` lives: it would sample by itself. Wait for two
        // samples by the sampler (not for a time: a loaded machine delays timers).
        let seen = counting::samples_taken();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while counting::samples_taken() < seen + 2 && std::time::Instant::now() < deadline {
            actix_rt::time::sleep(counting::PEAK_SAMPLE_INTERVAL / 4).await;
        }
        drop(big);
        sampler.abort();
        let peak = counting::snapshot().class(ActorClass::Root).peak_bytes;
        assert!(
            peak >= live0 + size as i64,
            "peak {peak}, live {live0} + {size}"
        );
        assert!(peak > peak0);
    });
}
