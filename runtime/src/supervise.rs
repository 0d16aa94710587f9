//! Supervision: a panic inside a handler becomes a restart, never a silent death.
//!
//! actix stops an actor whose handler panics and does not restart it, even under a
//! `Supervisor` (which restarts only on `ctx.stop()`). [`guard`] runs a handler body under
//! `catch_unwind`; on a panic it reports the actor and the panic, counts it, and stops
//! the context — so an actor started with `actix::Supervisor::start` is restarted with
//! its struct (and therefore its queues) intact, behind the same `Addr`, and its
//! `Supervised::restarting` hook can repair what the interrupted handler left.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use actix::{Actor, ActorContext, Context};

/// Panics caught by [`guard`] in this process (shown by `impulsectl status`).
#[derive(Debug, Default)]
pub struct PanicCount(AtomicU64);

impl PanicCount {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Run `f` (a handler body) and turn a panic into `ctx.stop()`: under a `Supervisor`
/// that is a restart with the actor's struct kept. Returns `None` after a panic; the
/// caller answers with a neutral value.
pub fn guard<A, R>(
    act: &mut A,
    ctx: &mut Context<A>,
    who: &str,
    panics: Option<&PanicCount>,
    f: impl FnOnce(&mut A, &mut Context<A>) -> R,
) -> Option<R>
where
    A: Actor<Context = Context<A>>,
{
    let done = contain(who, panics, || f(act, ctx));
    if done.is_none() {
        ctx.stop();
    }
    done
}

/// Run `f` and report a panic instead of unwinding; the caller decides what follows
/// (restart through [`guard`], retire — a message or connection hands back what it held
/// and stops — or carry on, as the spool and the logger do). Returns `None` after a
/// panic, which was printed and counted.
pub fn contain<R>(who: &str, panics: Option<&PanicCount>, f: impl FnOnce() -> R) -> Option<R> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            eprintln!(
                "impulsed: {who} panicked ({}); contained",
                panic_message(payload.as_ref())
            );
            if let Some(p) = panics {
                p.0.fetch_add(1, Ordering::Relaxed);
            }
            None
        }
    }
}

/// Test-only fault injection: in debug builds, a handler that calls `fault_point(name)`
/// panics once per process when the `IMPULSE_FAULT` environment variable lists `name`
/// (comma-separated). Compiled out of release builds.
#[cfg(debug_assertions)]
pub fn fault_point(name: &str) {
    use std::sync::{Mutex, OnceLock};
    static WANTED: OnceLock<Vec<String>> = OnceLock::new();
    static FIRED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let wanted = WANTED.get_or_init(|| {
        std::env::var("IMPULSE_FAULT")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    if !wanted.iter().any(|w| w == name) {
        return;
    }
    let mut fired = FIRED.lock().unwrap_or_else(|e| e.into_inner());
    if fired.iter().any(|f| f == name) {
        return;
    }
    fired.push(name.to_string());
    drop(fired);
    panic!("injected fault in {name}");
}

/// Release builds: no fault injection.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn fault_point(_name: &str) {}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
