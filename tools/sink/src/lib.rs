//! # Layout
//!
//! impulse-sink — a real, recording SMTP server: the receiving MX for Impulse's
//! integration tests and relay benchmark. [`Sink::start`] binds (port 0 by default),
//! answers SMTP on one thread per connection, and records every message it answers 250
//! to; tests read them back with [`Sink::messages`] and wait with [`Sink::wait_for`].
//! [`Rule`]s script temporary or permanent failures per recipient, at RCPT or at the end
//! of DATA. With [`SinkConfig::tls`] set the sink offers STARTTLS, and each
//! [`ReceivedMessage::tls`] tells whether the message came over TLS.
//!
//! - [`config`] — [`SinkConfig`], [`Rule`] and [`Stage`]: what the sink is told at start.
//! - [`record`] — [`ReceivedMessage`] and the shared recorder: message log, connection
//!   counters, rule attempt counts.
//! - `session` — one SMTP server session per connection (greeting to QUIT), pipelining
//!   aware, switching to TLS on STARTTLS.
//! - `tls` — the connection stream (plain TCP or TLS), the server handshake, and
//!   [`self_signed_tls`], a server configuration for tests and benchmarks.
//! - `data` — the DATA phase: `CRLF.CRLF` framing, dot-unstuffing, Message-ID lookup.
//! - this file — [`Sink`]: the listener thread, start and stop.
//! - `main.rs` — the `impulse-sink` binary (argument parsing and a JSON-lines log only).

pub mod config;
mod data;
pub mod record;
mod session;
mod tls;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use config::{Rule, SinkConfig, Stage};
pub use record::{Observer, ReceivedMessage};
pub use tls::self_signed_tls;

use record::Recorder;
use session::Settings;

/// A running sink. Dropping it (or [`Sink::stop`]) closes the listener and every
/// connection and joins all threads.
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    rec: Recorder,
    settings: Settings,
    stopping: AtomicBool,
    /// Live connections by index, kept so `stop` can shut them down.
    live: Mutex<HashMap<usize, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Sink {
    /// Bind `cfg.addr` and start serving.
    pub fn start(cfg: SinkConfig) -> io::Result<Sink> {
        Self::start_inner(cfg, None)
    }

    /// Like [`Sink::start`], calling `observer` on the session thread for every accepted
    /// message (with its data, even when bodies are not recorded).
    pub fn start_with_observer(cfg: SinkConfig, observer: Observer) -> io::Result<Sink> {
        Self::start_inner(cfg, Some(observer))
    }

    fn start_inner(cfg: SinkConfig, observer: Option<Observer>) -> io::Result<Sink> {
        let listener = TcpListener::bind(cfg.addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            rec: Recorder::new(cfg.record_bodies, cfg.rules, observer),
            settings: Settings {
                pipelining: cfg.pipelining,
                tls: cfg.tls,
                smtputf8: cfg.smtputf8,
                dsn: cfg.dsn,
                chunking: cfg.chunking,
            },
            stopping: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("sink-accept".into())
                .spawn(move || accept_loop(listener, shared))?
        };
        Ok(Sink {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address (with the real port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every accepted message so far, in acceptance order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.rec.messages()
    }

    /// The Message-ID of every accepted message so far (cheaper than [`Sink::messages`]).
    pub fn message_ids(&self) -> Vec<Option<String>> {
        self.shared.rec.message_ids()
    }

    /// Number of accepted messages.
    pub fn count(&self) -> usize {
        self.shared.rec.count()
    }

    /// When the most recent message was accepted.
    pub fn last_message_at(&self) -> Option<Instant> {
        self.shared.rec.last_message_at()
    }

    /// Wait until at least `n` messages were accepted; `false` on timeout.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        self.shared.rec.wait_for(n, timeout)
    }

    /// Connections accepted since start.
    pub fn connections_total(&self) -> usize {
        self.shared.rec.connections_total()
    }

    /// Connections open right now.
    pub fn connections_open(&self) -> usize {
        self.shared.rec.connections_now()
    }

    /// The most connections that were open at the same time.
    pub fn max_concurrent_connections(&self) -> usize {
        self.shared.rec.max_concurrent_connections()
    }

    /// Close the listener and all connections, and join every thread.
    pub fn stop(self) {
        drop(self)
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&wake_addr(self.addr), Duration::from_secs(1));
        let _ = acceptor.join();
        for stream in lock(&self.shared.live).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(_) => {
                // Out of descriptors or an aborted handshake: back off briefly.
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let conn = shared.rec.connection_opened();
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.live).insert(conn, clone);
        }
        let worker = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("sink-conn-{conn}"))
            .spawn(move || {
                let _ = session::serve(stream, &worker.rec, &worker.settings, conn);
                lock(&worker.live).remove(&conn);
            });
        match spawned {
            Ok(handle) => {
                let mut threads = lock(&shared.threads);
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
            }
            Err(_) => {
                // The closure (and with it the session's close accounting) never ran.
                lock(&shared.live).remove(&conn);
                shared.rec.connection_closed();
            }
        }
    }
}

/// Where to connect to wake our own listener (an unspecified bind address is reached
/// over loopback).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => (Ipv4Addr::LOCALHOST, a.port()).into(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => (Ipv6Addr::LOCALHOST, a.port()).into(),
        a => a,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
