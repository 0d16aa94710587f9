//! Named sync-arbiter pools: where every blocking call runs.
//!
//! A [`Pool`] is an actix `SyncArbiter` of [`PoolWorker`]s — `threads` dedicated OS threads
//! (named `pool-{name}-{n}`) fed from one queue. Callers hand it closures: [`Pool::run`]
//! returns a future of the closure's result, [`Pool::spawn`] fires and forgets. Each job
//! runs inside `catch_unwind`, so a panicking job becomes [`PoolError::Panicked`] and the
//! worker thread lives on (a panic escaping a sync actor would end its thread for good and
//! silently shrink the pool).
//!
//! Observability: [`Pool::stats`] gives exact counters (busy, queued, completed, panicked);
//! the pool appears in the registry as class `pool` named `{name}` (its mailbox is the
//! queue depth) with one `pool` child per worker (`{name}-worker-{i}`, state `idle` /
//! `busy`). Worker threads attribute their allocations to [`ActorClass::Pool`].
//!
//! Size: [`Pool::resize`] changes the number of threads online (a configuration reload):
//! a new set of workers takes every job submitted from then on, and the old set finishes
//! the jobs already queued to it, then its threads end.
//!
//! Lifecycle: [`Pool::start`] must be called inside a running actix System (the arbiter's
//! feeder runs on the System arbiter). The pool stops when the last clone of the `Pool`
//! is dropped or the System stops: jobs already queued still run, then the worker threads
//! end and unregister.

mod worker;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use actix::{Addr, SyncArbiter};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::class::ActorClass;
use crate::registry::{ActorId, Registration, Registry};

use worker::Job;
pub use worker::PoolWorker;

/// Why a pool job produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The job panicked; the message is the panic payload if it was a string.
    #[error("pool job panicked: {0}")]
    Panicked(String),
    /// The pool stopped before running the job.
    #[error("pool is closed")]
    Closed,
}

/// A pool's counters, as `impulsectl pools` prints them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PoolStats {
    pub name: String,
    pub threads: usize,
    /// Jobs running now.
    pub busy: usize,
    /// Jobs submitted and not yet started.
    pub queued: usize,
    /// Jobs that returned normally.
    pub completed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Mean time a job ran, in microseconds (over every job so far).
    #[serde(default)]
    pub mean_job_micros: f64,
}

/// State shared by the pool handle, its workers and its in-flight jobs.
struct Shared {
    name: String,
    threads: AtomicUsize,
    submitted: AtomicU64,
    started: AtomicU64,
    /// Jobs discarded without running (the pool stopped under them).
    discarded: AtomicU64,
    busy: AtomicUsize,
    completed: AtomicU64,
    panicked: AtomicU64,
    /// Time spent running jobs, summed over the workers.
    busy_nanos: AtomicU64,
    registry: Arc<Registry>,
    pool_id: ActorId,
    /// Serialises queue-depth writes to the registry so the last write is the latest value.
    gauge: Mutex<()>,
    /// Registrations made at start, taken by the worker threads as they come up.
    spare: Mutex<Vec<Registration>>,
}

impl Shared {
    fn queued(&self) -> usize {
        let done = self.started.load(Relaxed) + self.discarded.load(Relaxed);
        self.submitted.load(Relaxed).saturating_sub(done) as usize
    }

    /// Publish the queue depth as the pool's mailbox length in the registry.
    fn refresh_gauge(&self) {
        let _serial = self.gauge.lock().unwrap_or_else(|e| e.into_inner());
        self.registry.set_mailbox(self.pool_id, self.queued());
    }

    fn stats(&self) -> PoolStats {
        PoolStats {
            name: self.name.clone(),
            threads: self.threads.load(Relaxed),
            busy: self.busy.load(Relaxed),
            queued: self.queued(),
            completed: self.completed.load(Relaxed),
            panicked: self.panicked.load(Relaxed),
            mean_job_micros: {
                let jobs = self.completed.load(Relaxed) + self.panicked.load(Relaxed);
                if jobs == 0 {
                    0.0
                } else {
                    self.busy_nanos.load(Relaxed) as f64 / jobs as f64 / 1000.0
                }
            },
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    /// The current set of workers (replaced by [`Pool::resize`]).
    addr: RwLock<Addr<PoolWorker>>,
    registration: Registration,
}

/// A named pool of worker threads for blocking work. Cheap to clone; the pool stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// Start `threads` (at least 1) worker threads named `pool-{name}-{n}`, registered
    /// under a `pool:{name}` entry that is a child of `parent`.
    ///
    /// # Panics
    /// Outside a running actix System.
    pub fn start(
        name: &str,
        threads: usize,
        registry: &Arc<Registry>,
        parent: Option<ActorId>,
    ) -> Pool {
        let threads = threads.max(1);
        let registration = Registration::new(registry, ActorClass::Pool, name, parent);
        registration.set_state("running");
        registration.set_detail(format!("threads={threads}"));
        let shared = Arc::new(Shared {
            name: name.to_string(),
            threads: AtomicUsize::new(threads),
            submitted: AtomicU64::new(0),
            started: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            registry: Arc::clone(registry),
            pool_id: registration.id(),
            gauge: Mutex::new(()),
            spare: Mutex::new(Vec::new()),
        });
        let addr = workers(&shared, threads);
        Pool {
            inner: Arc::new(Inner {
                shared,
                addr: RwLock::new(addr),
                registration,
            }),
        }
    }

    /// Run with `threads` (at least 1) worker threads from now on: jobs submitted from
    /// now go to a new set of workers; the old set runs what it was given, then ends.
    pub fn resize(&self, threads: usize) {
        let threads = threads.max(1);
        let shared = &self.inner.shared;
        if shared.threads.load(Relaxed) == threads {
            return;
        }
        let addr = workers(shared, threads);
        *self.inner.addr.write().unwrap_or_else(|e| e.into_inner()) = addr;
        shared.threads.store(threads, Relaxed);
        self.inner
            .registration
            .set_detail(format!("threads={threads}"));
    }

    /// Run `f` on a worker thread; the future resolves to its result, to
    /// [`PoolError::Panicked`] if it panicked, or to [`PoolError::Closed`] if the pool
    /// stopped first. The job is queued immediately (not when the future is first polled),
    /// and it runs even if the future is dropped.
    pub fn run<T, F>(&self, f: F) -> impl Future<Output = Result<T, PoolError>> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, String>>();
        let work = Box::new(move || match catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => {
                let _ = tx.send(Ok(value));
                false
            }
            Err(payload) => {
                let _ = tx.send(Err(panic_message(payload.as_ref())));
                true
            }
        });
        let request = self.addr().send(self.job(work));
        async move {
            // The request resolves once the worker's handler has returned, i.e. after the
            // counters were updated, so stats read after this future are exact.
            request.await.map_err(|_| PoolError::Closed)?;
            match rx.await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(message)) => Err(PoolError::Panicked(message)),
                Err(_) => Err(PoolError::Closed),
            }
        }
    }

    /// Run `f` on a worker thread and forget it. A panic is counted in
    /// [`PoolStats::panicked`] (and printed by the panic hook).
    pub fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) {
        let work = Box::new(move || catch_unwind(AssertUnwindSafe(f)).is_err());
        self.addr().do_send(self.job(work));
    }

    fn addr(&self) -> Addr<PoolWorker> {
        self.inner
            .addr
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn job(&self, work: Box<dyn FnOnce() -> bool + Send>) -> Job {
        let shared = &self.inner.shared;
        shared.submitted.fetch_add(1, Relaxed);
        shared.refresh_gauge();
        Job::new(work, Arc::clone(shared))
    }

    /// Current counters.
    pub fn stats(&self) -> PoolStats {
        self.inner.shared.stats()
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.inner.shared.threads.load(Relaxed)
    }

    /// The pool's own registry id (the parent of its workers).
    pub fn id(&self) -> ActorId {
        self.inner.shared.pool_id
    }

    /// Whether the pool still accepts jobs.
    pub fn connected(&self) -> bool {
        self.addr().connected()
    }
}

/// Start `threads` workers for `shared`, each taking one of the registrations made here.
fn workers(shared: &Arc<Shared>, threads: usize) -> Addr<PoolWorker> {
    let name = shared.name.clone();
    {
        let mut spare = shared.spare.lock().unwrap_or_else(|e| e.into_inner());
        spare.extend((0..threads).rev().map(|i| {
            Registration::new(
                &shared.registry,
                ActorClass::Pool,
                format!("{name}-worker-{i}"),
                Some(shared.pool_id),
            )
        }));
    }
    let for_workers = Arc::clone(shared);
    let mut n = 0;
    SyncArbiter::start_with_thread_builder(
        threads,
        || {
            n += 1;
            std::thread::Builder::new().name(format!("pool-{name}-{n}"))
        },
        move || PoolWorker::new(Arc::clone(&for_workers)),
    )
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name())
            .field("threads", &self.threads())
            .field("id", &self.id())
            .finish()
    }
}

/// The text of a panic payload (`&str` and `String` payloads; others are described).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests;
