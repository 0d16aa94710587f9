//! The handle actors hold to command an I/O loop, and the command channel behind it.
//!
//! Every command is one message on an unbounded `std::sync::mpsc` channel followed,
//! at most once per drain, by a `mio::Waker::wake` (an eventfd write): senders
//! test-and-set the shared `wake_pending` flag and only the one that raises it pays the
//! syscall; the loop lowers it just before draining the channel. Ids are allocated here,
//! on the caller's thread, so `connect` can answer at once: the low 56 bits come from
//! one process-wide counter (so ids are never reused, whatever loops exist), the top 8
//! bits name the loop.
//!
//! When the loop is gone, commands that promise an event (`attach`, `connect`) answer
//! it from the caller's thread, so an actor never waits for a `Closed` that cannot come.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use actix::Recipient;
use bytes::Bytes;
use dashmap::DashMap;
use mio::Waker;

use super::credit::Credit;
use super::direct::Direct;
use super::listener::ListenSocket;
use super::stats::StatsCells;
use super::{sock, Accepted, CloseReason, ConnEvent, ConnId, IoStats, ListenerId, LOOP_SHIFT};

/// Backlog of TCP listeners.
const TCP_BACKLOG: i32 = 1024;

/// A command for the loop.
pub(super) enum Command {
    Listen {
        id: ListenerId,
        socket: ListenSocket,
        owner: Recipient<Accepted>,
    },
    CloseListener(ListenerId),
    Attach {
        conn: ConnId,
        owner: Recipient<ConnEvent>,
        credit: Credit,
        /// TLS from the first byte (implicit TLS): no byte is ever read as plaintext.
        tls: Option<super::TlsStart>,
    },
    Connect {
        conn: ConnId,
        addr: SocketAddr,
        source: Option<IpAddr>,
        owner: Recipient<ConnEvent>,
        credit: Credit,
        direct: Arc<Direct>,
    },
    Write {
        conn: ConnId,
        data: Bytes,
        /// Went through the connection's [`Direct`] gate (which counts it).
        counted: bool,
    },
    StartTls {
        conn: ConnId,
        /// Plaintext queued in the same step, before the switch (the server's `220`).
        preface: Option<Bytes>,
        start: super::TlsStart,
    },
    Close(ConnId),
    Abort(ConnId),
    Resume(ConnId),
    Shutdown,
}

/// What every handle and credit of one loop shares.
pub(super) struct Shared {
    tx: Sender<Command>,
    waker: Waker,
    wake_pending: AtomicBool,
    /// Set once the loop has stopped taking commands.
    stopped: AtomicBool,
    /// Senders between their `stopped` check and the end of their `send`.
    in_flight: AtomicUsize,
    index: u8,
    read_window: usize,
    pub stats: Arc<StatsCells>,
    /// The direct-write gate of every connection of this loop, by id.
    pub(super) direct: DashMap<ConnId, Arc<Direct>>,
}

impl Shared {
    pub(super) fn new(tx: Sender<Command>, waker: Waker, index: u8, read_window: usize) -> Self {
        Shared {
            tx,
            waker,
            wake_pending: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            index,
            read_window,
            stats: Arc::default(),
            direct: DashMap::new(),
        }
    }

    /// Queue a command and wake the loop unless a wake is already pending.
    /// Gives the command back if the loop has exited.
    pub(super) fn send(&self, cmd: Command) -> Result<(), Command> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.stopped.load(Ordering::SeqCst) {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(cmd);
        }
        let sent = self.tx.send(cmd);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        sent.map_err(|e| e.0)?;
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                eprintln!("impulse-io: waker failed: {e}");
            }
        }
        Ok(())
    }

    /// Loop side: called before draining the channel.
    pub(super) fn clear_wake(&self) {
        self.wake_pending.swap(false, Ordering::AcqRel);
    }

    /// Loop side, at exit: refuse further commands and wait out senders already past
    /// the check, so a final drain of the channel sees every command ever accepted.
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        while self.in_flight.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }

    /// Whether the loop still takes commands.
    pub(super) fn is_running(&self) -> bool {
        !self.stopped.load(Ordering::SeqCst)
    }

    /// A fresh connection or listener id of this loop.
    pub(super) fn next_id(&self) -> u64 {
        /// The low bits of every id, shared by all loops; starts at 1 (0 is the waker).
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        (u64::from(self.index) << LOOP_SHIFT) | (n & ((1 << LOOP_SHIFT) - 1))
    }
}

/// Commands an I/O loop. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct IoHandle {
    shared: Arc<Shared>,
}

fn loop_gone() -> io::Error {
    io::Error::other("the I/O loop has shut down")
}

impl IoHandle {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        IoHandle { shared }
    }

    /// The index of the loop this handle commands (the top 8 bits of its ids).
    pub fn loop_index(&self) -> u8 {
        self.shared.index
    }

    /// Whether the loop is still running (false once `shutdown` has taken effect).
    pub fn is_running(&self) -> bool {
        self.shared.is_running()
    }

    /// Bind a TCP listener (`SO_REUSEADDR`, backlog 1024) on the caller's thread and
    /// hand it to the loop; `owner` receives an [`Accepted`] per connection. Returns the
    /// bound address, with the real port when `addr` asked for port 0.
    pub fn listen_tcp(
        &self,
        addr: SocketAddr,
        owner: Recipient<Accepted>,
    ) -> io::Result<(ListenerId, SocketAddr)> {
        let listener = sock::tcp_listener(addr, TCP_BACKLOG)?;
        let local = listener.local_addr()?;
        let id = self.shared.next_id();
        let socket = ListenSocket::Tcp(listener);
        self.shared
            .send(Command::Listen { id, socket, owner })
            .map_err(|_| loop_gone())?;
        Ok((id, local))
    }

    /// Bind a Unix-domain listener at `path` (mode 0600) and hand it to the loop. A
    /// stale socket file is removed first; a live one (something answers) is an
    /// `AddrInUse` error, and a path that is not a socket is left alone (`AlreadyExists`).
    /// The socket file is removed when the listener closes.
    pub fn listen_unix(&self, path: &Path, owner: Recipient<Accepted>) -> io::Result<ListenerId> {
        let socket = sock::unix_listener(path)?;
        let id = self.shared.next_id();
        self.shared
            .send(Command::Listen { id, socket, owner })
            .map_err(|_| loop_gone())?;
        Ok(id)
    }

    /// Stop accepting on a listener and close it. Connections it accepted live on.
    pub fn close_listener(&self, id: ListenerId) {
        let _ = self.shared.send(Command::CloseListener(id));
    }

    /// Take ownership of an accepted connection: from now on its events go to `owner`
    /// and it is read, bounded by the returned credit. Attaching an unknown (already
    /// closed) connection answers `Closed { reason: Error }` at once.
    pub fn attach(&self, conn: ConnId, owner: Recipient<ConnEvent>) -> Credit {
        self.attach_with(conn, owner, None)
    }

    /// [`attach`](Self::attach) a connection that speaks TLS from its first byte
    /// (implicit TLS, RFC 8314): the handshake starts at once, `TlsReady` follows.
    pub fn attach_tls(
        &self,
        conn: ConnId,
        owner: Recipient<ConnEvent>,
        start: super::TlsStart,
    ) -> Credit {
        self.attach_with(conn, owner, Some(start))
    }

    fn attach_with(
        &self,
        conn: ConnId,
        owner: Recipient<ConnEvent>,
        tls: Option<super::TlsStart>,
    ) -> Credit {
        let credit = Credit::new(conn, self.shared.read_window, self.shared.clone());
        let cmd = Command::Attach {
            conn,
            owner,
            credit: credit.clone(),
            tls,
        };
        if let Err(Command::Attach { owner, .. }) = self.shared.send(cmd) {
            owner.do_send(ConnEvent::Closed {
                conn,
                reason: CloseReason::Error(loop_gone().to_string()),
            });
        }
        credit
    }

    /// Open an outbound TCP connection without blocking, from `source` if given.
    /// `Connected` or `ConnectFailed` (then `Closed`) follows; writes issued before
    /// `Connected` are queued. Timing out is the caller's job (`abort`).
    pub fn connect(
        &self,
        addr: SocketAddr,
        source: Option<IpAddr>,
        owner: Recipient<ConnEvent>,
    ) -> (ConnId, Credit) {
        let conn = self.shared.next_id();
        let credit = Credit::new(conn, self.shared.read_window, self.shared.clone());
        // In the map before `connect` returns the id, so every write is counted.
        let direct = Arc::new(Direct::default());
        self.shared.direct.insert(conn, direct.clone());
        let cmd = Command::Connect {
            conn,
            addr,
            source,
            owner,
            credit: credit.clone(),
            direct,
        };
        if let Err(Command::Connect { owner, .. }) = self.shared.send(cmd) {
            self.shared.direct.remove(&conn);
            let error = loop_gone().to_string();
            owner.do_send(ConnEvent::ConnectFailed {
                conn,
                error: error.clone(),
            });
            owner.do_send(ConnEvent::Closed {
                conn,
                reason: CloseReason::Error(error),
            });
        }
        (conn, credit)
    }

    /// Write bytes: on the caller's thread when the connection is plaintext with nothing
    /// queued (see `direct`), else queued for the loop. Unknown (closed) connections are
    /// ignored; so are writes after `close`.
    pub fn write(&self, conn: ConnId, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let gate = self.shared.direct.get(&conn).map(|d| d.clone());
        match gate {
            Some(gate) => gate.write(data, &self.shared.stats, |data| {
                let cmd = Command::Write {
                    conn,
                    data,
                    counted: true,
                };
                self.shared.send(cmd).is_ok()
            }),
            None => {
                let cmd = Command::Write {
                    conn,
                    data,
                    counted: false,
                };
                let _ = self.shared.send(cmd);
            }
        }
    }

    /// No more direct writes to `conn`: a command that changes what writing means
    /// (close, abort, TLS) follows in the channel.
    fn stop_direct(&self, conn: ConnId) {
        if let Some(gate) = self.shared.direct.get(&conn) {
            gate.stop();
        }
    }

    /// Turn connection `conn` into TLS (STARTTLS): output queued before this call is
    /// written in plaintext first, then the handshake runs; `TlsReady` follows, or
    /// `Closed` with the error.
    pub fn start_tls(&self, conn: ConnId, start: super::TlsStart) {
        self.stop_direct(conn);
        let _ = self.shared.send(Command::StartTls {
            conn,
            preface: None,
            start,
        });
    }

    /// Write `preface` in plaintext (a server's `220 Ready to start TLS`), then turn the
    /// connection into TLS — in one step of the loop, so no byte the client sends after
    /// reading the preface (its ClientHello) can be read as plaintext.
    pub fn write_then_start_tls(&self, conn: ConnId, preface: Bytes, start: super::TlsStart) {
        self.stop_direct(conn);
        let _ = self.shared.send(Command::StartTls {
            conn,
            preface: Some(preface),
            start,
        });
    }

    /// Graceful close: flush what is queued, shut the socket down, close it, then send
    /// `Closed { reason: Local }`. Bytes that arrive meanwhile are discarded.
    pub fn close(&self, conn: ConnId) {
        self.stop_direct(conn);
        let _ = self.shared.send(Command::Close(conn));
    }

    /// Drop the connection now, discarding queued output; `Closed { reason: Local }`
    /// follows if it had an owner.
    pub fn abort(&self, conn: ConnId) {
        self.stop_direct(conn);
        let _ = self.shared.send(Command::Abort(conn));
    }

    /// The loop's counters. Each is published before the event that reports its
    /// change is delivered.
    pub fn stats(&self) -> IoStats {
        self.shared.stats.snapshot()
    }

    /// Ask the loop to exit: every listener and connection is closed (owners get
    /// `Closed { reason: Local }`) and the thread ends. Returns at once.
    pub fn shutdown(&self) {
        let _ = self.shared.send(Command::Shutdown);
    }
}

impl std::fmt::Debug for IoHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoHandle")
            .field("loop_index", &self.shared.index)
            .finish_non_exhaustive()
    }
}
