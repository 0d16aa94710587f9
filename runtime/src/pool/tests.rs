//! Pool tests: results, panic containment, counters, registry entries, concurrency.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use super::*;
use crate::alloc;

/// Poll `cond` every 5 ms for up to 5 s.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix_rt::test]
async fn runs_jobs_on_named_pool_threads_and_returns_results() {
    let registry = Registry::new();
    let pool = Pool::start("spool", 2, &registry, None);
    assert_eq!(pool.run(|| 6 * 7).await, Ok(42));

    let (name, class) = pool
        .run(|| {
            let t = std::thread::current();
            (t.name().unwrap_or("").to_string(), alloc::current())
        })
        .await
        .unwrap();
    assert!(name.starts_with("pool-spool-"), "{name}");
    assert_eq!(class, ActorClass::Pool);

    // Submission is eager: futures created first and awaited later all run.
    let futures: Vec<_> = (0..50u64).map(|i| pool.run(move || i * i)).collect();
    let mut sum = 0;
    for f in futures {
        sum += f.await.unwrap();
    }
    assert_eq!(sum, (0..50u64).map(|i| i * i).sum::<u64>());

    let stats = pool.stats();
    assert_eq!(
        (stats.completed, stats.panicked, stats.busy, stats.queued),
        (52, 0, 0, 0)
    );
    assert_eq!((stats.name.as_str(), stats.threads), ("spool", 2));
}

#[actix_rt::test]
async fn a_panicking_job_is_an_error_and_every_worker_survives() {
    let registry = Registry::new();
    let pool = Pool::start("dns", 2, &registry, None);
    for i in 0..4 {
        let r: Result<(), _> = pool.run(move || panic!("boom {i}")).await;
        assert_eq!(r, Err(PoolError::Panicked(format!("boom {i}"))));
    }
    let r: Result<(), _> = pool.run(|| std::panic::panic_any(17u32)).await;
    assert_eq!(
        r,
        Err(PoolError::Panicked("non-string panic payload".into()))
    );

    // Both threads must still be alive: two jobs that can only finish together.
    for _ in 0..3 {
        let barrier = Arc::new(Barrier::new(2));
        let a = pool.run({
            let b = Arc::clone(&barrier);
            move || b.wait().is_leader()
        });
        let b = pool.run(move || barrier.wait().is_leader());
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert!(a ^ b, "exactly one leader");
    }
    let stats = pool.stats();
    assert_eq!((stats.panicked, stats.completed), (5, 6));
    assert_eq!(registry.children(pool.id()).len(), 2);
}

#[actix_rt::test]
async fn stats_and_registry_show_busy_workers_and_queue_depth() {
    let registry = Registry::new();
    let root = registry.register(ActorClass::Root, "impulsed", None);
    let pool = Pool::start("spool", 2, &registry, Some(root));

    let info = registry.get(pool.id()).unwrap();
    assert_eq!(
        (info.class, info.name.as_str(), info.parent),
        (ActorClass::Pool, "spool", Some(root))
    );
    assert_eq!(info.detail, "threads=2");
    let workers = registry.children(pool.id());
    assert_eq!(workers.len(), 2);
    for w in &workers {
        assert_eq!(registry.get(*w).unwrap().class, ActorClass::Pool);
    }

    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let gate_rx = Arc::new(std::sync::Mutex::new(gate_rx));
    let mut jobs = Vec::new();
    for i in 0..5 {
        let gate = Arc::clone(&gate_rx);
        jobs.push(pool.run(move || {
            gate.lock().unwrap().recv().unwrap();
            i
        }));
    }
    // Two jobs take the two threads (one holds the gate lock, one waits on it).
    wait_until("two busy workers", || pool.stats().busy == 2).await;
    let stats = pool.stats();
    assert_eq!((stats.busy, stats.queued, stats.completed), (2, 3, 0));
    assert_eq!(registry.get(pool.id()).unwrap().mailbox, 3);
    wait_until("workers marked busy", || {
        workers
            .iter()
            .all(|w| registry.get(*w).unwrap().state == "busy")
    })
    .await;

    for _ in 0..5 {
        gate_tx.send(()).unwrap();
    }
    let mut got = Vec::new();
    for j in jobs {
        got.push(j.await.unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    let stats = pool.stats();
    assert_eq!(
        (stats.busy, stats.queued, stats.completed, stats.panicked),
        (0, 0, 5, 0)
    );
    assert_eq!(registry.get(pool.id()).unwrap().mailbox, 0);
    wait_until("workers idle", || {
        workers
            .iter()
            .all(|w| registry.get(*w).unwrap().state == "idle")
    })
    .await;
}

#[actix_rt::test]
async fn concurrency_equals_thread_count() {
    let registry = Registry::new();
    let pool = Pool::start("sleepy", 2, &registry, None);
    let running = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let jobs: Vec<_> = (0..4)
        .map(|_| {
            let (running, max) = (Arc::clone(&running), Arc::clone(&max));
            pool.run(move || {
                let now = running.fetch_add(1, SeqCst) + 1;
                max.fetch_max(now, SeqCst);
                std::thread::sleep(Duration::from_millis(150));
                running.fetch_sub(1, SeqCst);
            })
        })
        .collect();
    for j in jobs {
        j.await.unwrap();
    }
    let elapsed = t0.elapsed();
    assert_eq!(max.load(SeqCst), 2);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(450 + 1000), "{elapsed:?}");
}

#[actix_rt::test]
async fn spawn_fires_and_forgets_and_counts_panics() {
    let registry = Registry::new();
    let pool = Pool::start("bg", 3, &registry, None);
    let (tx, rx) = mpsc::channel();
    for i in 0..10 {
        let tx = tx.clone();
        pool.spawn(move || tx.send(i).unwrap());
    }
    pool.spawn(|| panic!("background boom"));
    drop(tx);
    wait_until("all spawned jobs", || {
        let s = pool.stats();
        s.completed == 10 && s.panicked == 1
    })
    .await;
    let mut got: Vec<i32> = rx.iter().collect();
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(pool.run(|| "still alive").await, Ok("still alive"));
}

#[actix_rt::test]
async fn dropping_the_pool_stops_workers_and_unregisters_them() {
    let registry = Registry::new();
    let pool = Pool::start("short", 2, &registry, None);
    let copy = pool.clone();
    assert_eq!(copy.run(|| 1).await, Ok(1));
    assert_eq!(registry.len(), 3);
    drop(pool);
    assert_eq!(registry.len(), 3, "a clone keeps the pool alive");
    assert!(copy.connected());
    drop(copy);
    wait_until("registry empty", || registry.is_empty()).await;
}

#[test]
fn run_future_is_send_and_static() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    actix::System::new().block_on(async {
        let pool = Pool::start("send", 1, &Registry::new(), None);
        let fut = pool.run(|| 5);
        assert_send(&fut);
        assert_eq!(fut.await, Ok(5));
    });
}

#[actix_rt::test]
async fn resize_grows_and_shrinks_online_and_loses_no_job() {
    let registry = Registry::new();
    let pool = Pool::start("blocking", 1, &registry, None);
    // A job holding the only thread of the old set while the pool grows.
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let held = pool.run(move || gate_rx.recv().is_ok());
    wait_until("the held job to start", || pool.stats().busy == 1).await;

    pool.resize(3);
    assert_eq!(pool.stats().threads, 3);
    assert_eq!(registry.get(pool.id()).unwrap().detail, "threads=3");
    // Three new threads: three jobs that can only finish together, while the old
    // thread is still held.
    let barrier = Arc::new(Barrier::new(3));
    let jobs: Vec<_> = (0..3)
        .map(|_| {
            let b = Arc::clone(&barrier);
            pool.run(move || b.wait().is_leader())
        })
        .collect();
    let mut leaders = 0;
    for j in jobs {
        leaders += j.await.unwrap() as usize;
    }
    assert_eq!(leaders, 1);
    gate_tx.send(()).unwrap();
    assert_eq!(held.await, Ok(true), "the old set finished its job");
    wait_until("the old worker to end", || {
        registry.children(pool.id()).len() == 3
    })
    .await;

    pool.resize(1);
    let sum: u64 = {
        let futures: Vec<_> = (0..20u64).map(|i| pool.run(move || i)).collect();
        let mut sum = 0;
        for f in futures {
            sum += f.await.unwrap();
        }
        sum
    };
    assert_eq!(sum, 190);
    wait_until("the old workers to end", || {
        registry.children(pool.id()).len() == 1
    })
    .await;
    let stats = pool.stats();
    assert_eq!((stats.threads, stats.completed, stats.panicked), (1, 24, 0));
}
