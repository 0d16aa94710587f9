//! The actix arbiters (event-loop threads) the actors run on.
//!
//! Arbiter 0 is the System's own (the main thread: root, spool, logger, control,
//! listeners); `pools.arbiters` (0 = one per core) counts it. A domain container lives
//! on the arbiter its name hashes to, and its outbound connections and message actors
//! start on the same one (they are started from its handlers), so a domain's traffic
//! stays on one thread; inbound sessions are spread round-robin. Each arbiter thread
//! records its index so the registry can show where every actor runs.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::{Arbiter, ArbiterHandle};
use impulse_runtime::registry;

/// The arbiters, by index.
pub struct Arbiters {
    handles: Vec<ArbiterHandle>,
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
    let mut handles = vec![Arbiter::current()];
    for i in 1..n {
        let a = Arbiter::new();
        let h = a.handle();
        h.spawn_fn(move || registry::set_thread_arbiter(i as u8));
        handles.push(h);
    }
    Arc::new(Arbiters {
        handles,
        next: AtomicUsize::new(0),
    })
}

impl Arbiters {
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The arbiter for `key` (a domain name): always the same one.
    pub fn for_key(&self, key: &str) -> &ArbiterHandle {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.handles[h.finish() as usize % self.handles.len()]
    }

    /// The next arbiter in turn (for inbound sessions).
    pub fn next(&self) -> &ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.handles[i % self.handles.len()]
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
