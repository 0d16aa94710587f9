//! One connection as the loop sees it: its socket, its owner and credit, its queue of
//! pending output, and what reading and writing it means.
//!
//! States: `Accepted` (registered, not read until attached; writable, so a listener
//! can answer and close) → `Open`; or `Connecting` (outbound, waiting for the first
//! writable event) → `Open`. Any state → gone, through [`EventLoop::finish`], which is
//! the single place a connection leaves the loop and its owner gets `Closed`.
//!
//! Reading happens only in `Open`, never beyond the credit window, and at most
//! `READ_TURN_CHUNKS` chunks per loop turn (a connection with more waiting goes to the
//! ready queue, so one fast peer cannot starve the others). A closing connection's
//! input is read and discarded. Read EOF (the peer shut its sending side) marks the
//! connection read-closed: it is never read again, its owner gets `ReadClosed`, and it
//! stays open for writing until the owner closes or aborts it. Writing drains the queue with `write_vectored` until
//! `WouldBlock`; the next writable edge resumes it.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::Arc;

use actix::Recipient;
use bytes::{Buf, Bytes};
use mio::{event, Interest, Registry, Token};

use super::credit::{Credit, Pause};
use super::direct::Direct;
use super::event_loop::EventLoop;
use super::stats::Counters;
use super::tls::{TlsLayer, TlsStart};
use super::{CloseReason, ConnEvent, ConnId};

/// Most chunks read from one connection per loop turn.
const READ_TURN_CHUNKS: usize = 8;
/// Most buffers handed to one `write_vectored` call.
const MAX_IOV: usize = 64;
/// Most input discarded when completing a graceful close.
const CLOSE_DRAIN_LIMIT: usize = 1 << 20;

/// A connected socket of either kind.
pub(super) enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream {
    pub(super) fn raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }
}

impl event::Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(registry, token, interests),
            Stream::Unix(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(registry, token, interests),
            Stream::Unix(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Accepted by a listener, waiting for `attach`.
    Accepted,
    /// Outbound, connect in progress.
    Connecting,
    /// Attached or connected: read and written.
    Open,
}

/// The result of one reading pass.
pub(super) enum Step {
    /// Nothing more to do until the next event (`WouldBlock`, or paused).
    Idle,
    /// The turn's budget ran out with input possibly left: go on next turn.
    More,
    /// The peer shut its sending side (read returned 0).
    ReadClosed,
    /// The connection is over: `Some(reason)` for the owner, `None` if the owner is gone.
    End(Option<CloseReason>),
}

/// One connection.
pub(super) struct Conn {
    pub id: ConnId,
    pub stream: Stream,
    pub state: State,
    pub owner: Option<Recipient<ConnEvent>>,
    pub credit: Option<Credit>,
    /// Output not yet written, oldest first, and its total length.
    pub out: VecDeque<Bytes>,
    pub out_len: usize,
    /// `close` was asked: flush, then shut down; input is discarded.
    pub closing: bool,
    /// The peer shut its sending side: not read any more; the final `Closed` says
    /// `PeerClosed`.
    pub read_closed: bool,
    /// Not read until the owner's `consumed` sends `Resume`.
    pub paused: bool,
    /// Listed in the loop's dirty list (output to flush after the command drain).
    pub dirty: bool,
    /// Listed in the loop's ready queue.
    pub queued: bool,
    /// TLS is on: reads and writes go through rustls ([`super::tls`]).
    pub tls: Option<Box<TlsLayer>>,
    /// TLS was asked for while plaintext output was still queued: it starts once that
    /// is written (the `220` of STARTTLS must leave in plaintext).
    pub tls_pending: Option<TlsStart>,
    /// The gate for writes from the owner's thread ([`super::direct`]), and whether the
    /// loop has it open.
    pub direct: Arc<Direct>,
    pub direct_open: bool,
}

/// Send an event to the owner; false if the owner is gone.
pub(super) fn deliver(owner: Option<&Recipient<ConnEvent>>, event: ConnEvent) -> bool {
    match owner {
        Some(owner) if owner.connected() => {
            owner.do_send(event);
            true
        }
        _ => false,
    }
}

impl Conn {
    pub(super) fn new(
        id: ConnId,
        stream: Stream,
        state: State,
        owner: Option<Recipient<ConnEvent>>,
        credit: Option<Credit>,
        direct: Arc<Direct>,
    ) -> Conn {
        Conn {
            id,
            stream,
            state,
            owner,
            credit,
            out: VecDeque::new(),
            out_len: 0,
            closing: false,
            read_closed: false,
            paused: false,
            dirty: false,
            queued: false,
            tls: None,
            tls_pending: None,
            direct,
            direct_open: false,
        }
    }

    /// Read and deliver until `WouldBlock` (or, with `short_read_drains`, a short read),
    /// the window fills, or the budget runs out.
    fn read_open(
        &mut self,
        buf: &mut [u8],
        mut budget: usize,
        short_read_drains: bool,
        c: &mut Counters,
    ) -> Step {
        let Some(credit) = self.credit.clone() else {
            return Step::Idle;
        };
        // What is read for a connection belongs to its owner, not to the loop.
        let _class = crate::alloc::enter(credit.class());
        loop {
            let room = match self.gate(&credit, budget, c) {
                Ok(room) => room,
                Err(step) => return step,
            };
            let want = room.min(buf.len()).min(budget);
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => return Step::ReadClosed,
                Ok(n) => {
                    c.read(n);
                    budget = budget.saturating_sub(n);
                    credit.delivered(n);
                    let bytes = Bytes::copy_from_slice(&buf[..n]);
                    let event = ConnEvent::Data {
                        conn: self.id,
                        bytes,
                    };
                    if !deliver(self.owner.as_ref(), event) {
                        return Step::End(None);
                    }
                    // A short read drained the socket's receive queue. Edge-triggered
                    // epoll reports every later arrival (each one runs the socket's
                    // wake-up callback, and so does a later FIN), so the read that
                    // would only say `WouldBlock` is saved: one syscall per input
                    // event. Not when the edge said the input had ended: the FIN is
                    // already here, and only reading on finds it.
                    if short_read_drains && n < want {
                        return Step::Idle;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Idle,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Step::End(Some(CloseReason::Error(e.to_string()))),
            }
        }
    }

    /// Whether one more read may happen in this pass: `Ok(room)`, the credit window
    /// left, or the step that ends the pass (paused by its credit, or the turn's budget
    /// spent). Shared by the plaintext and the TLS read passes.
    pub(super) fn gate(
        &mut self,
        credit: &Credit,
        budget: usize,
        c: &mut Counters,
    ) -> Result<usize, Step> {
        loop {
            if self.paused {
                return Err(Step::Idle);
            }
            let room = credit.room();
            if room == 0 {
                match credit.pause() {
                    Pause::Paused => {
                        self.paused = true;
                        c.paused();
                        return Err(Step::Idle);
                    }
                    Pause::KeepReading => continue,
                }
            }
            if budget == 0 {
                return Err(Step::More);
            }
            return Ok(room);
        }
    }

    /// Read and throw away up to `limit` bytes (a closing connection's input).
    /// `Ok(true)` if the limit stopped it before `WouldBlock` or end of input.
    fn discard_input(
        &mut self,
        buf: &mut [u8],
        limit: usize,
        c: &mut Counters,
    ) -> io::Result<bool> {
        let mut left = limit;
        while left > 0 {
            let want = left.min(buf.len());
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    c.read(n);
                    left -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Nothing left to write: no queued output, no ciphertext inside rustls.
    pub(super) fn drained(&self) -> bool {
        self.out.is_empty()
            && !self
                .tls
                .as_ref()
                .is_some_and(|t| t.wants_write() || t.closing_unsent())
    }

    /// Write queued output until it is gone or the socket would block.
    fn flush(&mut self, c: &mut Counters) -> io::Result<()> {
        if self.tls.is_some() {
            self.flush_tls(c)?;
            if let Some(credit) = &self.credit {
                credit.set_write_backlog(self.out_len);
            }
            return Ok(());
        }
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut k = 0;
            for (slot, b) in slices.iter_mut().zip(self.out.iter()) {
                *slot = IoSlice::new(b);
                k += 1;
            }
            match self.stream.write_vectored(&slices[..k]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    c.wrote(n);
                    self.advance_out(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(credit) = &self.credit {
            credit.set_write_backlog(self.out_len);
        }
        Ok(())
    }

    /// Drop `n` written bytes from the front of the queue.
    fn advance_out(&mut self, mut n: usize) {
        self.out_len -= n;
        while n > 0 {
            let Some(front) = self.out.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.out.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

impl EventLoop {
    /// A readiness event for connection `token`.
    pub(super) fn conn_event(&mut self, token: Token, ev: &event::Event) {
        let Some(conn) = self.conns.get(&token) else {
            return;
        };
        let failed = ev.is_error() || ev.is_write_closed();
        if conn.state == State::Connecting {
            if ev.is_writable() || failed || ev.is_read_closed() {
                self.finish_connect(token, failed);
            }
            return;
        }
        if ev.is_writable() || failed {
            self.flush_conn(token);
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            // A short read ends the pass only when this edge reported no end of input.
            let short_read_drains = !(ev.is_read_closed() || ev.is_error());
            self.read_conn_with(token, short_read_drains);
        }
    }

    /// Read connection `token` as far as its state, credit and this turn allow, until
    /// `WouldBlock`.
    pub(super) fn read_conn(&mut self, token: Token) {
        self.read_conn_with(token, false)
    }

    /// [`read_conn`](Self::read_conn); with `short_read_drains`, a short read ends the
    /// pass (see `read_open`). Only a readiness event that reported no end of input may
    /// say so: a FIN that arrived with the data raises no further edge after the read.
    fn read_conn_with(&mut self, token: Token, short_read_drains: bool) {
        let budget = self.config.read_chunk.saturating_mul(READ_TURN_CHUNKS);
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let step = match conn.state {
            // Nothing more will come; repeated read-closed edges must not read again.
            _ if conn.read_closed => Step::Idle,
            State::Open if conn.closing => {
                match conn.discard_input(&mut self.buf, budget, &mut self.counters) {
                    Ok(true) => Step::More,
                    Ok(false) => Step::Idle,
                    Err(e) => Step::End(Some(CloseReason::Error(e.to_string()))),
                }
            }
            State::Open if conn.tls.is_some() => {
                conn.read_tls(&mut self.buf, budget, &mut self.counters)
            }
            State::Open => {
                conn.read_open(&mut self.buf, budget, short_read_drains, &mut self.counters)
            }
            State::Accepted | State::Connecting => Step::Idle,
        };
        match step {
            Step::Idle => {}
            Step::More => self.queue_ready(token),
            Step::ReadClosed => {
                // The peer may have shut only its side: keep writing until the owner
                // closes (it was told after all the Data).
                conn.read_closed = true;
                let event = ConnEvent::ReadClosed { conn: conn.id };
                if !deliver(conn.owner.as_ref(), event) {
                    self.finish(token, None);
                }
            }
            Step::End(reason) => self.finish(token, reason),
        }
    }

    /// Write connection `token`'s queued output; complete a pending close once empty.
    pub(super) fn flush_conn(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.state == State::Connecting {
            return;
        }
        if let Err(e) = conn.flush(&mut self.counters) {
            self.finish(token, Some(CloseReason::Error(e.to_string())));
            return;
        }
        if conn.out.is_empty() && conn.tls_pending.is_some() {
            self.activate_tls(token);
            return;
        }
        if conn.closing && conn.drained() {
            self.complete_close(token);
            return;
        }
        conn.sync_direct();
    }

    /// Start TLS on connection `id` now, or once its queued plaintext is written.
    pub(super) fn start_tls(&mut self, id: ConnId, start: TlsStart) {
        let token = Token(id as usize);
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.closing || conn.tls.is_some() || conn.state != State::Open {
            return;
        }
        conn.tls_pending = Some(start);
        self.flush_conn(token);
    }

    fn activate_tls(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let Some(start) = conn.tls_pending.take() else {
            return;
        };
        match TlsLayer::new(start) {
            Ok(layer) => {
                conn.tls = Some(Box::new(layer));
                // A client speaks first (ClientHello); a server may find the client's
                // hello already waiting, with no edge to come for it.
                self.flush_conn(token);
                self.read_conn(token);
            }
            Err(e) => self.finish(token, Some(CloseReason::Error(format!("TLS: {e}")))),
        }
    }

    /// Queue `data` on connection `id` (flushed after the command drain).
    pub(super) fn queue_write(&mut self, id: ConnId, data: Bytes) {
        let token = Token(id as usize);
        let max = self.config.max_write_buffer;
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.closing {
            return;
        }
        conn.close_direct();
        if conn.out_len + data.len() > max {
            let reason = format!("write buffer over {max} bytes");
            self.finish(token, Some(CloseReason::Error(reason)));
            return;
        }
        conn.out_len += data.len();
        conn.out.push_back(data);
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(token);
        }
    }

    /// Begin a graceful close of connection `id`.
    pub(super) fn close_conn(&mut self, id: ConnId) {
        let token = Token(id as usize);
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        conn.closing = true;
        conn.close_direct();
        conn.tls_pending = None;
        if conn.paused {
            // Its input is now discarded, whatever the credit says.
            conn.paused = false;
            self.counters.resumed();
        }
        if let Some(tls) = conn.tls.as_mut() {
            tls.close_notify();
            self.flush_conn(token);
            return;
        }
        if conn.state != State::Connecting && conn.out.is_empty() {
            self.complete_close(token);
        }
    }

    /// Output is flushed: shut down, drain what the peer sent (so the kernel does not
    /// answer it with a reset that could destroy our last output), close.
    fn complete_close(&mut self, token: Token) {
        if let Some(conn) = self.conns.get_mut(&token) {
            let _ = conn.stream.shutdown(Shutdown::Write);
            if !conn.read_closed {
                let _ = conn.discard_input(&mut self.buf, CLOSE_DRAIN_LIMIT, &mut self.counters);
            }
        }
        self.finish_by_owner(token);
    }

    /// End connection `token` as its owner asked: `PeerClosed` if the peer had shut its
    /// side first, `Local` otherwise.
    pub(super) fn finish_by_owner(&mut self, token: Token) {
        let reason = match self.conns.get(&token) {
            Some(conn) if conn.read_closed => CloseReason::PeerClosed,
            _ => CloseReason::Local,
        };
        self.finish(token, Some(reason));
    }

    /// The owner consumed enough: read a paused connection again. Edge-triggered
    /// readiness will not repeat for input already waiting, so read until `WouldBlock`.
    pub(super) fn resume(&mut self, id: ConnId) {
        let token = Token(id as usize);
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.paused {
            conn.paused = false;
            self.counters.resumed();
            self.read_conn(token);
        }
    }

    /// Remove connection `token` from the loop and close its socket. `reason` goes to
    /// the owner as `Closed` (`None`: the owner is gone, tell nobody), preceded by
    /// `ConnectFailed` if the connection was still connecting.
    pub(super) fn finish(&mut self, token: Token, reason: Option<CloseReason>) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        // No direct write may reach the descriptor once it is closed (and reused).
        conn.close_direct();
        self.shared.direct.remove(&conn.id);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if conn.paused {
            self.counters.resumed();
        }
        self.publish_gauges();
        if let Some(credit) = &conn.credit {
            credit.set_write_backlog(0);
        }
        if let Some(reason) = reason {
            if conn.state == State::Connecting {
                // An outbound connection always hears how its connect ended.
                let error = match &reason {
                    CloseReason::Error(e) => e.clone(),
                    CloseReason::Local => "connect aborted".to_string(),
                    CloseReason::PeerClosed => "connection closed by peer".to_string(),
                };
                let event = ConnEvent::ConnectFailed {
                    conn: conn.id,
                    error,
                };
                deliver(conn.owner.as_ref(), event);
            }
            let event = ConnEvent::Closed {
                conn: conn.id,
                reason,
            };
            deliver(conn.owner.as_ref(), event);
        }
    }
}
