//! The actix arbiters (event-loop threads) the actors run on.
//!
//! Arbiter 0 is the System's own (the main thread: root, spool, logger, control,
//! listeners); `pools.arbiters` (0 = one per core) counts it. A domain container lives
//! on the arbiter its name hashes to, and its outbound connections and message actors
//! start on the same one (they are started from its handlers), so a domain's traffic
//! stays on one thread; inbound sessions are spread round-robin. Each arbiter thread
//! records its index so the registry can show where every actor runs.
//!
//! Each arbiter runs a probe that wakes every [`PROBE`] and records how late it woke: the
//! scheduling lag, the time an event waits on that thread before it is handled
//! (`impulsectl pools` shows it with each arbiter's actors and queued messages). Each
//! arbiter's Tokio runtime is built by [`runtime`], whose park hooks count the event-loop
//! turns (a wake-up that runs every event ready, then parks) and the time spent running
//! them: `pools` shows turns, mean turn time and how busy the thread was over the last
//! second. The System's own runtime (arbiter 0) comes from [`system_runtime`].
//!
//! A reload may change the count online ([`Arbiters::resize`]): more arbiters start at
//! once; with fewer, new actors are placed on the first ones only, and the threads past
//! them keep running the actors they already have (a domain container is never moved).

use std::cell::Cell;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use actix::{Arbiter, ArbiterHandle};
use impulse_runtime::registry;

/// The arbiters, by index.
pub struct Arbiters {
    /// Every arbiter started (never fewer: see the module documentation).
    handles: RwLock<Vec<ArbiterHandle>>,
    /// Each arbiter's lag and load.
    gauges: RwLock<Vec<Arc<Gauges>>>,
    /// How many of them new actors are placed on.
    active: AtomicUsize,
    next: AtomicUsize,
}

/// How many arbiters `pools.arbiters = n` means on a machine with `cores` cores.
pub fn count(n: usize, cores: usize) -> usize {
    if n == 0 {
        cores.max(1)
    } else {
        n
    }
}

/// Start the arbiters (call inside the running System): `n` in all, 0 = one per core.
pub fn start(n: usize) -> Arc<Arbiters> {
    let cores = std::thread::available_parallelism().map_or(1, |p| p.get());
    let n = count(n, cores);
    registry::set_thread_arbiter(0);
    let gauges = SYSTEM_GAUGES.get_or_init(Default::default).clone();
    actix_rt::spawn(probe(gauges.clone()));
    let a = Arbiters {
        handles: RwLock::new(vec![Arbiter::current()]),
        gauges: RwLock::new(vec![gauges]),
        active: AtomicUsize::new(1),
        next: AtomicUsize::new(0),
    };
    a.resize(n);
    Arc::new(a)
}

/// How often each arbiter's lag probe wakes.
pub const PROBE: Duration = Duration::from_millis(100);

/// Arbiter 0's gauges: the System's runtime is built (by [`system_runtime`]) before
/// [`start`] runs.
static SYSTEM_GAUGES: OnceLock<Arc<Gauges>> = OnceLock::new();

/// One arbiter's scheduling lag and load.
#[derive(Default)]
pub struct Gauges {
    last_lag_us: AtomicU64,
    /// The worst lag since the last read.
    worst_lag_us: AtomicU64,
    /// Event-loop turns run, and the wall time spent running them.
    turns: AtomicU64,
    busy_ns: AtomicU64,
    /// Share of the last second spent running, in thousandths.
    busy_permille: AtomicU64,
}

/// What [`Arbiters::gauges`] reads off one arbiter.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    pub lag_us: u64,
    pub worst_lag_us: u64,
    pub turns: u64,
    pub busy_ns: u64,
    pub busy_pct: f64,
}

impl Gauges {
    /// The current reading; the worst lag restarts from here.
    pub fn take(&self) -> Reading {
        Reading {
            lag_us: self.last_lag_us.load(Ordering::Relaxed),
            worst_lag_us: self.worst_lag_us.swap(0, Ordering::Relaxed),
            turns: self.turns.load(Ordering::Relaxed),
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
            busy_pct: self.busy_permille.load(Ordering::Relaxed) as f64 / 10.0,
        }
    }
}

thread_local! {
    /// When this thread's event loop last woke (None while parked).
    static WOKE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A current-thread Tokio runtime (what actix builds for an arbiter) whose park hooks
/// feed `g`: a turn is counted when the thread wakes, its running time when it parks.
pub fn runtime(g: Arc<Gauges>) -> std::io::Result<tokio::runtime::Runtime> {
    let parked = g.clone();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_unpark(move || {
            WOKE.set(Some(Instant::now()));
            g.turns.fetch_add(1, Ordering::Relaxed);
        })
        .on_thread_park(move || {
            if let Some(t) = WOKE.take() {
                parked
                    .busy_ns
                    .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        })
        .build()
}

/// The runtime for `actix::System::with_tokio_rt` (arbiter 0, the main thread).
pub fn system_runtime() -> tokio::runtime::Runtime {
    runtime(SYSTEM_GAUGES.get_or_init(Default::default).clone())
        .expect("the System's Tokio runtime cannot be built")
}

/// Wake every [`PROBE`] and record how late the wake-up came; each second, how busy
/// the thread was.
async fn probe(g: Arc<Gauges>) {
    let mut since = Instant::now();
    let mut busy_then = g.busy_ns.load(Ordering::Relaxed);
    loop {
        let due = Instant::now() + PROBE;
        actix_rt::time::sleep(PROBE).await;
        let now = Instant::now();
        let late = now.saturating_duration_since(due).as_micros() as u64;
        g.last_lag_us.store(late, Ordering::Relaxed);
        g.worst_lag_us.fetch_max(late, Ordering::Relaxed);
        let window = now.saturating_duration_since(since);
        if window >= Duration::from_secs(1) {
            let busy = g.busy_ns.load(Ordering::Relaxed);
            let permille = busy.saturating_sub(busy_then) as u128 * 1000 / window.as_nanos();
            g.busy_permille
                .store(permille.min(1000) as u64, Ordering::Relaxed);
            since = now;
            busy_then = busy;
        }
    }
}

/// A new arbiter thread that knows its index, with its gauges and lag probe.
fn spawn(i: usize, g: Arc<Gauges>) -> ArbiterHandle {
    let on_thread = g.clone();
    let h = Arbiter::with_tokio_rt(move || {
        runtime(on_thread).expect("an arbiter's Tokio runtime cannot be built")
    })
    .handle();
    h.spawn_fn(move || registry::set_thread_arbiter(i.min(u8::MAX as usize) as u8));
    h.spawn(probe(g));
    h
}

impl Arbiters {
    /// How many arbiters new actors are placed on.
    pub fn len(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Each arbiter's lag and load (the worst lag restarts from each call).
    pub fn gauges(&self) -> Vec<Reading> {
        self.gauges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|l| l.take())
            .collect()
    }

    /// How many arbiters run (some may only finish the actors they have).
    pub fn started(&self) -> usize {
        self.handles.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Place new actors on `n` arbiters (at least 1), starting threads as needed.
    pub fn resize(&self, n: usize) {
        let n = n.max(1);
        let mut handles = self.handles.write().unwrap_or_else(|e| e.into_inner());
        let mut gauges = self.gauges.write().unwrap_or_else(|e| e.into_inner());
        while handles.len() < n {
            let i = handles.len();
            let g = Arc::new(Gauges::default());
            handles.push(spawn(i, g.clone()));
            gauges.push(g);
        }
        self.active.store(n, Ordering::Release);
    }

    fn at(&self, i: usize) -> ArbiterHandle {
        let handles = self.handles.read().unwrap_or_else(|e| e.into_inner());
        let n = self.len().min(handles.len()).max(1);
        handles[i % n].clone()
    }

    /// The arbiter for `key` (a domain name): the same one while the count stays.
    pub fn for_key(&self, key: &str) -> ArbiterHandle {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        self.at(h.finish() as usize)
    }

    /// The next arbiter in turn (for inbound sessions).
    pub fn next(&self) -> ArbiterHandle {
        self.at(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn the_default_is_one_per_core() {
        assert_eq!(count(0, 1), 1);
        assert_eq!(count(0, 2), 2);
        assert_eq!(count(0, 8), 8);
        assert_eq!(count(3, 2), 3, "an explicit count is kept");
    }
}
