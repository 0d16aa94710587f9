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
//! (`impulsectl pools` shows it with each arbiter's actors and queued messages).
//!
//! A reload may change the count online ([`Arbiters::resize`]): more arbiters start at
//! once; with fewer, new actors are placed on the first ones only, and the threads past
//! them keep running the actors they already have (a domain container is never moved).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::{Arbiter, ArbiterHandle};
use impulse_runtime::registry;

/// The arbiters, by index.
pub struct Arbiters {
    /// Every arbiter started (never fewer: see the module documentation).
    handles: RwLock<Vec<ArbiterHandle>>,
    /// Each arbiter's last and worst-of-the-last-minute scheduling lag, in µs.
    lags: RwLock<Vec<Arc<Lag>>>,
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
    let lag = Arc::new(Lag::default());
    actix_rt::spawn(probe(lag.clone()));
    let a = Arbiters {
        handles: RwLock::new(vec![Arbiter::current()]),
        lags: RwLock::new(vec![lag]),
        active: AtomicUsize::new(1),
        next: AtomicUsize::new(0),
    };
    a.resize(n);
    Arc::new(a)
}

/// How often each arbiter's lag probe wakes.
pub const PROBE: Duration = Duration::from_millis(100);

/// One arbiter's scheduling lag.
#[derive(Default)]
pub struct Lag {
    last_us: AtomicU64,
    /// The worst lag since the last read.
    worst_us: AtomicU64,
}

impl Lag {
    /// (last, worst since the last call) in µs.
    pub fn take(&self) -> (u64, u64) {
        (
            self.last_us.load(Ordering::Relaxed),
            self.worst_us.swap(0, Ordering::Relaxed),
        )
    }
}

/// Wake every [`PROBE`] and record how late the wake-up came.
async fn probe(lag: Arc<Lag>) {
    loop {
        let due = Instant::now() + PROBE;
        actix_rt::time::sleep(PROBE).await;
        let late = Instant::now().saturating_duration_since(due).as_micros() as u64;
        lag.last_us.store(late, Ordering::Relaxed);
        lag.worst_us.fetch_max(late, Ordering::Relaxed);
    }
}

/// A new arbiter thread that knows its index, with its lag probe.
fn spawn(i: usize, lag: Arc<Lag>) -> ArbiterHandle {
    let h = Arbiter::new().handle();
    h.spawn_fn(move || registry::set_thread_arbiter(i.min(u8::MAX as usize) as u8));
    h.spawn(probe(lag));
    h
}

impl Arbiters {
    /// How many arbiters new actors are placed on.
    pub fn len(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Each arbiter's scheduling lag, (last, worst since the last call) in µs.
    pub fn lags(&self) -> Vec<(u64, u64)> {
        self.lags
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
        let mut lags = self.lags.write().unwrap_or_else(|e| e.into_inner());
        while handles.len() < n {
            let i = handles.len();
            let lag = Arc::new(Lag::default());
            handles.push(spawn(i, lag.clone()));
            lags.push(lag);
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
