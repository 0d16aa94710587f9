//! The poll loop: one thread, one `mio::Poll`, every socket of this loop.
//!
//! Each turn: wait for readiness (no timeout unless work is queued or an accept pause
//! must end), dispatch events by token (token 0 is the waker, others are listener or
//! connection ids), drain the command channel if the waker fired, continue reading
//! connections and listeners left on the ready queue, flush the connections that
//! received writes during the drain (coalescing them into one `write_vectored`), and
//! end accept pauses that are due. Counters are published as they change (`stats`).
//! `Shutdown` ends the loop: it stops taking commands, every owner gets
//! `Closed { reason: Local }`, and commands still queued that promised an event are
//! answered.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::mem;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use super::conn::{deliver, Conn, State};
use super::handle::{Command, IoHandle, Shared};
use super::listener::Listener;
use super::stats::Counters;
use super::{CloseReason, ConnEvent, IoConfig};

// Ids are used as tokens directly; they need the full 64 bits.
const _: () = assert!(usize::BITS >= 64);

/// The waker's token; ids start at 1 so none collides with it.
const WAKER: Token = Token(0);
/// Most commands handled per turn before readiness gets its turn again.
const COMMAND_BATCH: usize = 4096;
/// Capacity of the event buffer.
const EVENTS: usize = 1024;

/// The loop's state; lives on the I/O thread.
pub(super) struct EventLoop {
    pub(super) poll: Poll,
    pub(super) shared: Arc<Shared>,
    rx: Receiver<Command>,
    pub(super) config: IoConfig,
    pub(super) conns: HashMap<Token, Conn>,
    pub(super) listeners: HashMap<Token, Listener>,
    /// The reusable read buffer (`read_chunk` bytes).
    pub(super) buf: Vec<u8>,
    /// Sockets with work left after their turn's budget.
    ready: VecDeque<Token>,
    /// Connections given output during the command drain.
    pub(super) dirty: Vec<Token>,
    pub(super) counters: Counters,
    /// Listeners whose accepting is paused.
    pub(super) accept_paused: usize,
    /// The last drain stopped at the batch limit.
    more_commands: bool,
    running: bool,
}

/// Start loop `index` on its own thread.
pub(super) fn spawn(mut config: IoConfig, index: u8) -> io::Result<IoHandle> {
    config.read_chunk = config.read_chunk.max(1);
    config.read_window = config.read_window.max(1);
    config.max_write_buffer = config.max_write_buffer.max(1);
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Shared::new(tx, waker, index, config.read_window));
    let event_loop = EventLoop {
        poll,
        shared: shared.clone(),
        rx,
        buf: Vec::new(),
        config,
        conns: HashMap::new(),
        listeners: HashMap::new(),
        ready: VecDeque::new(),
        dirty: Vec::new(),
        counters: Counters::new(shared.stats.clone()),
        accept_paused: 0,
        more_commands: false,
        running: true,
    };
    let name = if index == 0 {
        "impulse-io".to_string()
    } else {
        format!("impulse-io-{index}")
    };
    thread::Builder::new()
        .name(name)
        .spawn(move || event_loop.run())?;
    Ok(IoHandle::new(shared))
}

impl EventLoop {
    fn run(mut self) {
        crate::alloc::set_thread_class(crate::ActorClass::Io);
        // Allocated here so the I/O class owns it.
        self.buf = vec![0; self.config.read_chunk];
        let mut events = Events::with_capacity(EVENTS);
        while self.running {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("impulse-io: poll failed, I/O loop exiting: {e}");
                break;
            }
            let mut woke = false;
            for ev in events.iter() {
                let token = ev.token();
                if token == WAKER {
                    woke = true;
                } else if self.listeners.contains_key(&token) {
                    self.accept_ready(token);
                } else {
                    self.conn_event(token, ev);
                }
            }
            if woke {
                self.shared.clear_wake();
            }
            if woke || self.more_commands {
                self.drain_commands();
            }
            if !self.running {
                break;
            }
            self.run_ready();
            self.flush_dirty();
            self.retry_accepts();
        }
        self.teardown();
    }

    /// How long the next poll may wait.
    fn timeout(&self) -> Option<Duration> {
        if !self.ready.is_empty() || self.more_commands {
            return Some(Duration::ZERO);
        }
        self.next_accept_retry()
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    fn drain_commands(&mut self) {
        self.more_commands = false;
        for _ in 0..COMMAND_BATCH {
            match self.rx.try_recv() {
                Ok(cmd) => self.command(cmd),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.running = false;
                    return;
                }
            }
            if !self.running {
                return;
            }
        }
        self.more_commands = true;
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Listen { id, socket, owner } => self.add_listener(id, socket, owner),
            Command::CloseListener(id) => self.close_listener(Token(id as usize)),
            Command::Attach {
                conn,
                owner,
                credit,
                tls,
            } => {
                let token = Token(conn as usize);
                let error = match self.conns.get_mut(&token) {
                    Some(c) if c.state == State::Accepted => {
                        c.owner = Some(owner);
                        c.credit = Some(credit);
                        c.state = State::Open;
                        match tls {
                            // The handshake reads what is waiting (the ClientHello).
                            Some(start) => self.start_tls(conn, start),
                            // Its readable edge may have passed before the attach.
                            None => {
                                c.sync_direct();
                                self.read_conn(token)
                            }
                        }
                        return;
                    }
                    Some(_) => "connection already has an owner",
                    None => "no such connection (closed before attach)",
                };
                let reason = CloseReason::Error(error.to_string());
                deliver(Some(&owner), ConnEvent::Closed { conn, reason });
            }
            Command::Connect {
                conn,
                addr,
                source,
                owner,
                credit,
                direct,
            } => self.connect(conn, addr, source, owner, credit, direct),
            Command::Write {
                conn,
                data,
                counted,
            } => {
                if counted {
                    if let Some(c) = self.conns.get_mut(&Token(conn as usize)) {
                        c.direct.took_queued();
                        c.direct_open = false;
                    }
                }
                self.queue_write(conn, data)
            }
            Command::StartTls {
                conn,
                preface,
                start,
            } => {
                if let Some(p) = preface {
                    self.queue_write(conn, p);
                }
                self.start_tls(conn, start)
            }
            Command::Close(conn) => self.close_conn(conn),
            Command::Abort(conn) => self.finish_by_owner(Token(conn as usize)),
            Command::Resume(conn) => self.resume(conn),
            Command::Shutdown => self.running = false,
        }
    }

    /// Put a socket with work left on the ready queue (once).
    pub(super) fn queue_ready(&mut self, token: Token) {
        let queued = if let Some(c) = self.conns.get_mut(&token) {
            &mut c.queued
        } else if let Some(l) = self.listeners.get_mut(&token) {
            &mut l.queued
        } else {
            return;
        };
        if !*queued {
            *queued = true;
            self.ready.push_back(token);
        }
    }

    /// Give every socket that was on the ready queue at the start one more turn.
    fn run_ready(&mut self) {
        for _ in 0..self.ready.len() {
            let Some(token) = self.ready.pop_front() else {
                break;
            };
            if let Some(c) = self.conns.get_mut(&token) {
                c.queued = false;
                self.read_conn(token);
            } else if let Some(l) = self.listeners.get_mut(&token) {
                l.queued = false;
                self.accept_ready(token);
            }
        }
    }

    fn flush_dirty(&mut self) {
        let mut dirty = mem::take(&mut self.dirty);
        for token in dirty.drain(..) {
            if let Some(c) = self.conns.get_mut(&token) {
                c.dirty = false;
                self.flush_conn(token);
            }
        }
        self.dirty = dirty;
    }

    /// Publish the number of open listeners and connections.
    pub(super) fn publish_gauges(&self) {
        self.counters.listeners(self.listeners.len());
        self.counters.connections(self.conns.len());
    }

    /// Close everything; answer commands that promised an event.
    fn teardown(mut self) {
        // Output queued in the same drain as `Shutdown` (e.g. the control socket's answer
        // to `impulsectl shutdown`, followed by its close) still gets one non-blocking
        // write, and graceful closes whose output went out are completed.
        self.flush_dirty();
        self.shared.stop();
        self.listeners.clear();
        self.publish_gauges();
        let open: Vec<Token> = self.conns.keys().copied().collect();
        for token in open {
            self.finish(token, Some(CloseReason::Local));
        }
        while let Ok(cmd) = self.rx.try_recv() {
            let gone = || CloseReason::Error("the I/O loop has shut down".to_string());
            match cmd {
                Command::Attach { conn, owner, .. } => {
                    owner.do_send(ConnEvent::Closed {
                        conn,
                        reason: gone(),
                    });
                }
                Command::Connect { conn, owner, .. } => {
                    self.shared.direct.remove(&conn);
                    let error = "the I/O loop has shut down".to_string();
                    owner.do_send(ConnEvent::ConnectFailed { conn, error });
                    owner.do_send(ConnEvent::Closed {
                        conn,
                        reason: gone(),
                    });
                }
                _ => {}
            }
        }
    }
}
