//! Read credit: the per-connection counter that bounds what the loop delivers.
//!
//! The loop adds every `Data` chunk it delivers to `outstanding`; the owning actor
//! subtracts what it has processed with [`Credit::consumed`]. The loop reads a
//! connection only while `outstanding < read_window`, and never reads more than the
//! room left, so at most `read_window` bytes are ever delivered and unconsumed.
//!
//! Pausing is a two-party handshake on the `paused` flag, so no wake-up is lost and
//! none is sent when nothing is paused: the loop raises the flag, then re-checks the
//! count; a consumer that brings the count under the window takes the flag down and,
//! if it was the one to do so, sends `Resume(conn)` to the loop. Whoever swaps the flag
//! from `true` to `false` owns the resumption.

use crate::ActorClass;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::handle::{Command, Shared};
use super::ConnId;

/// State shared between the loop and the connection's owner.
pub(super) struct CreditInner {
    conn: ConnId,
    window: usize,
    outstanding: AtomicUsize,
    paused: AtomicBool,
    write_backlog: AtomicUsize,
    /// The actor class of the owner (current on the thread that attached or connected):
    /// what the loop's read buffers for this connection are counted as.
    class: ActorClass,
    shared: Arc<Shared>,
}

/// A connection's read credit, shared by the loop and the owning actor. Cheap to clone.
#[derive(Clone)]
pub struct Credit {
    inner: Arc<CreditInner>,
}

/// What the loop should do when the window is full.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pause {
    /// Stop reading; a `Resume(conn)` command will come.
    Paused,
    /// The owner caught up meanwhile: keep reading.
    KeepReading,
}

impl Credit {
    pub(super) fn new(conn: ConnId, window: usize, shared: Arc<Shared>) -> Credit {
        Credit {
            inner: Arc::new(CreditInner {
                conn,
                window: window.max(1),
                outstanding: AtomicUsize::new(0),
                paused: AtomicBool::new(false),
                write_backlog: AtomicUsize::new(0),
                class: crate::alloc::current(),
                shared,
            }),
        }
    }

    /// The owner has processed `n` more bytes of `Data`. If that reopens the window of
    /// a paused connection, the loop is told to read it again.
    pub fn consumed(&self, n: usize) {
        if n == 0 {
            return;
        }
        let inner = &*self.inner;
        let prev = inner
            .outstanding
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_sub(n))
            })
            .unwrap_or_else(|v| v);
        let now = prev.saturating_sub(n);
        if now < inner.window
            && inner.paused.load(Ordering::SeqCst)
            && inner.paused.swap(false, Ordering::SeqCst)
        {
            // A loop that has shut down needs no resumption.
            let _ = inner.shared.send(Command::Resume(inner.conn));
        }
    }

    /// Bytes delivered but not yet consumed.
    pub fn outstanding(&self) -> usize {
        self.inner.outstanding.load(Ordering::SeqCst)
    }

    /// Bytes the owner has written that the loop has not yet handed to the kernel.
    /// An actor streaming a large body can wait for this to fall before writing more.
    pub fn write_backlog(&self) -> usize {
        self.inner.write_backlog.load(Ordering::Relaxed)
    }

    /// The class this connection's buffers are counted as (its owner's).
    pub fn class(&self) -> ActorClass {
        self.inner.class
    }

    /// The connection this credit belongs to.
    pub fn conn(&self) -> ConnId {
        self.inner.conn
    }

    /// Loop side: room left in the window.
    pub(super) fn room(&self) -> usize {
        self.inner.window.saturating_sub(self.outstanding())
    }

    /// Loop side: `n` bytes were just delivered.
    pub(super) fn delivered(&self, n: usize) {
        self.inner.outstanding.fetch_add(n, Ordering::SeqCst);
    }

    /// Loop side: the window is full; raise the flag, then re-check.
    pub(super) fn pause(&self) -> Pause {
        let inner = &*self.inner;
        inner.paused.store(true, Ordering::SeqCst);
        if inner.outstanding.load(Ordering::SeqCst) < inner.window
            && inner.paused.swap(false, Ordering::SeqCst)
        {
            return Pause::KeepReading;
        }
        Pause::Paused
    }

    /// Loop side: publish the write backlog.
    pub(super) fn set_write_backlog(&self, n: usize) {
        self.inner.write_backlog.store(n, Ordering::Relaxed);
    }
}

impl fmt::Debug for Credit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credit")
            .field("conn", &self.inner.conn)
            .field("window", &self.inner.window)
            .field("outstanding", &self.outstanding())
            .field("paused", &self.inner.paused.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use mio::{Poll, Token, Waker};

    use super::*;

    fn credit(window: usize) -> (Credit, mpsc::Receiver<Command>, Poll) {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), Token(0)).unwrap();
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::new(tx, waker, 0, window));
        (Credit::new(7, window, shared), rx, poll)
    }

    fn resumes(rx: &mpsc::Receiver<Command>) -> usize {
        rx.try_iter()
            .filter(|c| matches!(c, Command::Resume(7)))
            .count()
    }

    #[test]
    fn room_shrinks_with_deliveries_and_grows_with_consumption() {
        let (c, rx, _poll) = credit(100);
        assert_eq!(c.room(), 100);
        c.delivered(60);
        assert_eq!((c.room(), c.outstanding()), (40, 60));
        c.consumed(10);
        assert_eq!(c.room(), 50);
        c.consumed(1000); // saturates
        assert_eq!(c.outstanding(), 0);
        assert_eq!(resumes(&rx), 0, "nothing was paused");
    }

    #[test]
    fn a_paused_connection_is_resumed_exactly_once() {
        let (c, rx, _poll) = credit(100);
        c.delivered(100);
        assert_eq!(c.pause(), Pause::Paused);
        c.consumed(1);
        c.consumed(1);
        assert_eq!(resumes(&rx), 1);
        // The loop reads again, fills the window and pauses anew.
        c.delivered(2);
        assert_eq!(c.pause(), Pause::Paused);
        c.consumed(102);
        assert_eq!(resumes(&rx), 1);
    }

    #[test]
    fn pausing_after_the_owner_caught_up_keeps_reading() {
        let (c, rx, _poll) = credit(100);
        c.delivered(100);
        c.consumed(50); // before the loop noticed the full window
        assert_eq!(c.pause(), Pause::KeepReading);
        c.consumed(50);
        assert_eq!(resumes(&rx), 0, "the loop resumed itself");
    }

    #[test]
    fn handles_and_credits_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Credit>();
        send_sync::<super::super::IoHandle>();
    }
}
