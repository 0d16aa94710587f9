//! The actix arbiters (event-loop threads) the actors run on.
//!
//! Arbiter 0 is the System's own (the main thread: root, spool, logger, control,
//! listeners); `pools.arbiters` (0 = one per core) counts it. A domain container lives
//! on the arbiter its name hashes to, and its outbound connections and message actors
//! start on the same one (they are started from its handlers), so a domain's traffic
//! stays on one thread; inbound sessions are spread round-robin. Each arbiter thread
//! records its index so the registry can show where every actor runs.
//!
//! A reload may change the count online ([`Arbiters::resize`]): more arbiters start at
//! once; with fewer, new actors are placed on the first ones only, and the threads past
//! them keep running the actors they already have (a domain container is never moved).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use actix::{Arbiter, ArbiterHandle};
use impulse_runtime::registry;

/// The arbiters, by index.
pub struct Arbiters {
    /// Every arbiter started (never fewer: see the module documentation).
    handles: RwLock<Vec<ArbiterHandle>>,
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
    let a = Arbiters {
        handles: RwLock::new(vec![Arbiter::current()]),
        active: AtomicUsize::new(1),
        next: AtomicUsize::new(0),
    };
    a.resize(n);
    Arc::new(a)
}

/// A new arbiter thread that knows its index.
fn spawn(i: usize) -> ArbiterHandle {
    let h = Arbiter::new().handle();
    h.spawn_fn(move || registry::set_thread_arbiter(i.min(u8::MAX as usize) as u8));
    h
}

impl Arbiters {
    /// How many arbiters new actors are placed on.
    pub fn len(&self) -> usize {
        self.active.load(Ordering::Acquire)
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
        while handles.len() < n {
            let i = handles.len();
            handles.push(spawn(i));
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
