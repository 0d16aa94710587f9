//! The pool's sync actor and the job message it handles.
//!
//! A [`PoolWorker`] lives on one `SyncArbiter` thread. On creation (on its own thread) it
//! sets the thread's allocation class to `pool` and takes one of the registrations the
//! pool made at start. Each [`Job`] runs under `catch_unwind`; the counters move around
//! it: `started`/`busy` before, `busy` and `completed`/`panicked` after. A job dropped
//! without running (the pool stopped) counts as discarded, so the queue depth stays true.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use actix::{Actor, Handler, Message, SyncContext};

use super::Shared;
use crate::alloc;
use crate::class::ActorClass;
use crate::registry::Registration;

/// A boxed closure for a worker; it returns whether the user's code panicked.
pub(super) struct Job {
    work: Option<Box<dyn FnOnce() -> bool + Send>>,
    shared: Arc<Shared>,
}

impl Job {
    pub(super) fn new(work: Box<dyn FnOnce() -> bool + Send>, shared: Arc<Shared>) -> Job {
        Job {
            work: Some(work),
            shared,
        }
    }
}

impl Message for Job {
    type Result = ();
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.work.is_some() {
            self.shared.discarded.fetch_add(1, Relaxed);
            self.shared.refresh_gauge();
        }
    }
}

/// One worker of a [`Pool`](super::Pool), running on its own thread.
pub struct PoolWorker {
    shared: Arc<Shared>,
    registration: Registration,
}

impl PoolWorker {
    /// Called by the `SyncArbiter` on the worker's own thread.
    pub(super) fn new(shared: Arc<Shared>) -> PoolWorker {
        alloc::set_thread_class(ActorClass::Pool);
        let spare = shared.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let registration = spare.unwrap_or_else(|| {
            Registration::new(
                &shared.registry,
                ActorClass::Pool,
                format!("{}-worker", shared.name),
                Some(shared.pool_id),
            )
        });
        PoolWorker {
            shared,
            registration,
        }
    }
}

impl Actor for PoolWorker {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut SyncContext<Self>) {
        self.registration.set_state("idle");
    }
}

impl Handler<Job> for PoolWorker {
    type Result = ();

    fn handle(&mut self, mut job: Job, _: &mut SyncContext<Self>) {
        let Some(work) = job.work.take() else {
            return;
        };
        let shared = &self.shared;
        shared.started.fetch_add(1, Relaxed);
        shared.busy.fetch_add(1, Relaxed);
        shared.refresh_gauge();
        self.registration.set_state("busy");

        // `work` catches the user's panic itself; this outer guard covers a panic while
        // dropping a panic payload, so nothing can unwind out of the worker.
        let started = std::time::Instant::now();
        let panicked = catch_unwind(AssertUnwindSafe(work)).unwrap_or(true);
        let took = started.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        shared.busy_nanos.fetch_add(took, Relaxed);

        self.registration.set_state("idle");
        if panicked {
            shared.panicked.fetch_add(1, Relaxed);
        } else {
            shared.completed.fetch_add(1, Relaxed);
        }
        shared.busy.fetch_sub(1, Relaxed);
    }
}
