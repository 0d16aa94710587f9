//! Writes from the caller's thread: a plaintext connection with nothing queued takes an
//! actor's bytes with one non-blocking `send` on the actor's own thread, instead of a
//! command, an eventfd write to wake the loop, and the loop's `writev`.
//!
//! The loop still owns the socket: it decides when direct writes are allowed and ends
//! them before it closes the descriptor. Per connection one [`Direct`] (in the loop's
//! shared map) holds, under one mutex:
//! - `open`: set by the loop while the connection is plaintext, `Open`, not closing, not
//!   switching to TLS, and its own output queue is empty;
//! - `stopped`: set by the handle once the owner asked to close, abort or start TLS
//!   (those commands are still in the channel, so the loop cannot know yet);
//! - `queued`: `Write` commands in the channel that passed through here.
//!
//! A write goes direct only when `open && !stopped && queued == 0`; otherwise, or when
//! the socket takes only part of it, the rest is sent as a counted `Write` command while
//! the lock is held, so commands keep the order the bytes were written in, and every
//! later write follows it through the channel until the loop has written them all.
//! Errors are left to the loop: the bytes go the queued way and the loop's own write
//! meets the error and ends the connection as before.

use std::os::unix::io::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use bytes::{Buf, Bytes};

use super::conn::{Conn, State};
use super::stats::StatsCells;

/// One connection's direct-write gate.
#[derive(Default)]
pub(super) struct Direct {
    st: Mutex<Gate>,
}

#[derive(Default)]
struct Gate {
    /// The socket, while the loop allows direct writes (`open`).
    open: Option<RawFd>,
    stopped: bool,
    queued: usize,
}

impl Direct {
    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Caller's side: write `data` now if the gate allows, else (or what is left after a
    /// short write) hand it to `queue`, under the lock. `queue` returns false when the
    /// loop is gone (nothing was queued).
    pub(super) fn write(
        &self,
        mut data: Bytes,
        stats: &StatsCells,
        queue: impl FnOnce(Bytes) -> bool,
    ) {
        let mut g = self.gate();
        if let (Some(fd), false, 0) = (g.open, g.stopped, g.queued) {
            while !data.is_empty() {
                // SAFETY: `fd` stays open while `open` holds it (the loop clears it under
                // this lock before closing), and `data` is valid for its length.
                let n = unsafe {
                    libc::send(
                        fd,
                        data.as_ptr().cast(),
                        data.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                if n > 0 {
                    stats.add_bytes_out(n as u64);
                    data.advance(n as usize);
                    continue;
                }
                if n < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                    continue;
                }
                break;
            }
            if data.is_empty() {
                return;
            }
        }
        if queue(data) {
            g.queued += 1;
        }
    }

    /// Handle's side: the owner asked to close, abort or start TLS; no more direct writes.
    pub(super) fn stop(&self) {
        self.gate().stopped = true;
    }

    /// Loop side: a counted `Write` command is being taken into the loop's queue.
    pub(super) fn took_queued(&self) {
        let mut g = self.gate();
        g.queued = g.queued.saturating_sub(1);
        g.open = None;
    }

    /// Loop side: allow direct writes to `fd` now, or (`None`) no longer.
    pub(super) fn set_open(&self, open: Option<RawFd>) {
        self.gate().open = open;
    }
}

impl Conn {
    /// Loop side: open or close the gate as the connection's state now allows —
    /// plaintext, open, not closing or switching to TLS, nothing queued in the loop.
    pub(super) fn sync_direct(&mut self) {
        let ok = self.state == State::Open
            && !self.closing
            && self.tls.is_none()
            && self.tls_pending.is_none()
            && self.out.is_empty();
        if ok != self.direct_open {
            self.direct_open = ok;
            self.direct.set_open(ok.then(|| self.stream.raw_fd()));
        }
    }

    /// Loop side: close the gate (output is being queued in the loop, or the end is near).
    pub(super) fn close_direct(&mut self) {
        if self.direct_open {
            self.direct_open = false;
            self.direct.set_open(None);
        }
    }
}

impl StatsCells {
    /// Bytes written outside the loop (direct writes).
    pub(super) fn add_bytes_out(&self, n: u64) {
        self.bytes_out_direct.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::io::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn read_all(s: &mut UnixStream) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    /// A `queue` for [`Direct::write`] that keeps what it is given.
    fn into(queued: &mut Vec<Bytes>) -> impl FnOnce(Bytes) -> bool + '_ {
        |x| {
            queued.push(x);
            true
        }
    }

    #[test]
    fn writes_direct_only_while_open_and_nothing_is_queued() {
        let (a, mut b) = pair();
        let d = Direct::default();
        let fd = Some(a.as_raw_fd());
        let stats = StatsCells::default();
        let mut queued = Vec::new();
        // Closed gate: queued.
        d.write(Bytes::from_static(b"one"), &stats, into(&mut queued));
        assert_eq!(queued.len(), 1);
        assert!(read_all(&mut b).is_empty());
        // The loop takes it and opens the gate: the next write goes direct.
        d.took_queued();
        d.set_open(fd);
        d.write(Bytes::from_static(b"two"), &stats, |_| panic!("queued"));
        assert_eq!(read_all(&mut b), b"two");
        assert_eq!(stats.snapshot().bytes_out, 3);
        // Stopped (close asked): queued again.
        d.stop();
        d.write(Bytes::from_static(b"three"), &stats, into(&mut queued));
        assert_eq!(queued.len(), 2);
    }

    #[test]
    fn a_short_write_queues_the_rest_and_later_writes_follow_it() {
        let (a, mut b) = pair();
        let d = Direct::default();
        let fd = Some(a.as_raw_fd());
        let stats = StatsCells::default();
        d.set_open(fd);
        let big = Bytes::from(vec![7u8; 8 << 20]);
        let mut queued: Vec<Bytes> = Vec::new();
        d.write(big.clone(), &stats, into(&mut queued));
        assert_eq!(queued.len(), 1, "the socket cannot take 8 MiB at once");
        let sent = stats.snapshot().bytes_out as usize;
        assert_eq!(sent + queued[0].len(), big.len());
        // With a counted command in the channel, even a small write must queue, though
        // the socket has room again.
        assert_eq!(read_all(&mut b).len(), sent);
        d.write(Bytes::from_static(b"after"), &stats, into(&mut queued));
        assert_eq!(queued.len(), 2);
        assert!(read_all(&mut b).is_empty());
        // A loop that is gone queues nothing, and nothing is counted.
        d.took_queued();
        d.took_queued();
        d.set_open(None);
        d.write(Bytes::from_static(b"x"), &stats, |_| false);
        d.set_open(fd);
        d.write(Bytes::from_static(b"y"), &stats, |_| panic!("queued"));
        assert_eq!(read_all(&mut b), b"y");
    }
}
