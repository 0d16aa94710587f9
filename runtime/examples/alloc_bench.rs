//! Micro benchmark: nanoseconds per alloc+free pair, mimalloc alone vs `CountingAlloc`.
//!
//! Both allocators are called directly through `GlobalAlloc` (neither is installed as
//! this binary's global allocator), so the loop measures exactly their code paths. Two
//! patterns: `pair` (allocate one 64-byte block, free it, repeat) and `batch` (allocate
//! 256 blocks of mixed sizes 16..2064, free them all, repeat). With 2 threads each thread
//! runs the same loop concurrently; the table shows wall time divided by all pairs done
//! (aggregate throughput, as in CRATE-NOTES.md). `mi +hdr` is mimalloc alone asked for the
//! block `CountingAlloc` asks it for (64 + 16 bytes at 16): it separates the cost of the
//! bigger size class from the cost of counting.
//!
//! Run: `cargo run --release -p impulse-runtime --example alloc_bench`

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use impulse_runtime::alloc::{self as counting, CountingAlloc};
use impulse_runtime::ActorClass;
use mimalloc::MiMalloc;

const PAIRS: usize = 20_000_000;
const BATCH: usize = 256;

fn pair_loop<A: GlobalAlloc>(a: &A, pairs: usize) {
    pair_loop_of(a, pairs, Layout::from_size_align(64, 8).unwrap());
}

fn pair_loop_of<A: GlobalAlloc>(a: &A, pairs: usize, layout: Layout) {
    for _ in 0..pairs {
        unsafe {
            let p = a.alloc(layout);
            black_box(p);
            a.dealloc(p, layout);
        }
    }
}

fn batch_loop<A: GlobalAlloc>(a: &A, pairs: usize) {
    let layouts: Vec<Layout> = (0..BATCH)
        .map(|i| Layout::from_size_align(16 + (i * 37) % 2048, 8).unwrap())
        .collect();
    let mut ptrs = vec![std::ptr::null_mut::<u8>(); BATCH];
    for _ in 0..pairs / BATCH {
        unsafe {
            for (p, l) in ptrs.iter_mut().zip(&layouts) {
                *p = a.alloc(*l);
            }
            black_box(&ptrs);
            for (p, l) in ptrs.iter().zip(&layouts) {
                a.dealloc(*p, *l);
            }
        }
    }
}

/// Wall-clock nanoseconds per pair with `threads` threads each doing `PAIRS / threads`.
fn measure(threads: usize, body: fn(usize)) -> f64 {
    let per_thread = PAIRS / threads;
    body(per_thread / 10); // warm up
    let barrier = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    counting::set_thread_class(ActorClass::ALL[1 + i % (ActorClass::COUNT - 1)]);
                    body(per_thread / 10);
                    barrier.wait();
                    body(per_thread);
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        for w in workers {
            w.join().unwrap();
        }
        t0.elapsed()
    });
    elapsed.as_nanos() as f64 / (per_thread * threads) as f64
}

fn main() {
    type Case = (&'static str, fn(usize));
    let cases: [Case; 5] = [
        ("pair  mimalloc", |n| pair_loop(&MiMalloc, n)),
        ("pair  mi +hdr", |n| {
            pair_loop_of(&MiMalloc, n, Layout::from_size_align(64 + 16, 16).unwrap())
        }),
        ("pair  counting", |n| pair_loop(&CountingAlloc, n)),
        ("batch mimalloc", |n| batch_loop(&MiMalloc, n)),
        ("batch counting", |n| batch_loop(&CountingAlloc, n)),
    ];
    println!("ns per alloc+free pair ({PAIRS} pairs per run, best of 3)");
    println!("{:<16} {:>9} {:>9}", "variant", "1 thread", "2 threads");
    for (name, body) in cases {
        let best = |threads| {
            (0..3)
                .map(|_| measure(threads, body))
                .fold(f64::INFINITY, f64::min)
        };
        println!("{name:<16} {:>9.2} {:>9.2}", best(1), best(2));
    }
    let r = counting::snapshot();
    println!(
        "counting allocator sees {} live bytes in {} blocks after the runs (expected 0, 0)",
        r.total_live_bytes, r.total_live_allocs
    );
}
