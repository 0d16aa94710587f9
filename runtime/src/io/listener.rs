//! Listening sockets: TCP listeners and the Unix-domain control socket, and accepting
//! from them.
//!
//! A listener is read with edge-triggered readiness, so accepting goes on until
//! `WouldBlock`, at most `ACCEPT_BATCH` connections per turn (then the listener goes
//! on the ready queue). Running out of descriptors (`EMFILE`, `ENFILE`) or memory is
//! logged and accepting pauses for `ACCEPT_PAUSE` instead of spinning: the pending
//! connections wait in the kernel backlog. Each accepted connection gets a fresh id,
//! is registered (readable and writable, edge-triggered) and is announced to the
//! listener's owner with [`Accepted`]; it is not read until attached. If that owner is
//! gone, the listener closes.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use mio::{event, Interest, Registry, Token};

use super::conn::{Conn, State, Stream};
use super::direct::Direct;
use super::event_loop::EventLoop;
use super::sock::{remove_socket_file, FileKey};
use super::{Accepted, ListenerId, PeerAddr};

/// Most connections accepted from one listener per loop turn.
const ACCEPT_BATCH: usize = 256;
/// How long accepting pauses after running out of descriptors or memory.
pub(super) const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// A listening socket. A Unix one removes its socket file when dropped, if the file
/// is still the one it created.
pub(super) enum ListenSocket {
    Tcp(mio::net::TcpListener),
    Unix {
        listener: mio::net::UnixListener,
        path: PathBuf,
        key: FileKey,
    },
}

impl Drop for ListenSocket {
    fn drop(&mut self) {
        if let ListenSocket::Unix { path, key, .. } = self {
            remove_socket_file(path, *key);
        }
    }
}

impl ListenSocket {
    /// Accept one connection: the stream, its peer and its local address.
    /// A connection that fails setup after `accept` is reported as `ConnectionAborted`.
    fn accept(&self) -> io::Result<(Stream, PeerAddr, PeerAddr)> {
        match self {
            ListenSocket::Tcp(l) => {
                let (s, peer) = l.accept()?;
                let setup = s.set_nodelay(true).and_then(|()| s.local_addr());
                let local: SocketAddr = setup
                    .map_err(|e| io::Error::new(io::ErrorKind::ConnectionAborted, e.to_string()))?;
                Ok((Stream::Tcp(s), PeerAddr::Tcp(peer), PeerAddr::Tcp(local)))
            }
            ListenSocket::Unix { listener, .. } => {
                let (s, _) = listener.accept()?;
                if !same_user(&s) {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "control connection from another user refused",
                    ));
                }
                Ok((Stream::Unix(s), PeerAddr::Unix, PeerAddr::Unix))
            }
        }
    }
}

/// Whether the peer of a control connection runs as this process's user (or as root),
/// by its credentials (SO_PEERCRED): the socket's mode 0600 is the first guard, this the
/// second, should the file's mode be changed.
fn same_user(s: &mio::net::UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    rc == 0 && (cred.uid == me || cred.uid == 0)
}

impl event::Source for ListenSocket {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            ListenSocket::Tcp(l) => l.register(registry, token, interests),
            ListenSocket::Unix { listener, .. } => listener.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            ListenSocket::Tcp(l) => l.reregister(registry, token, interests),
            ListenSocket::Unix { listener, .. } => listener.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            ListenSocket::Tcp(l) => l.deregister(registry),
            ListenSocket::Unix { listener, .. } => listener.deregister(registry),
        }
    }
}

/// A listener in the loop.
pub(super) struct Listener {
    pub id: ListenerId,
    pub socket: ListenSocket,
    pub owner: Recipient<Accepted>,
    /// Accepting is paused until then (out of descriptors).
    pub retry_at: Option<Instant>,
    /// Consecutive accept failures that paused accepting (for quieter logging).
    pub failures: u32,
    /// Listed in the loop's ready queue.
    pub queued: bool,
}

/// Errors after which accepting goes on at once: the failed connection is simply gone.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) || matches!(e.raw_os_error(), Some(libc::EPROTO | libc::EPERM))
}

impl EventLoop {
    /// Start serving listener `id`.
    pub(super) fn add_listener(
        &mut self,
        id: ListenerId,
        mut socket: ListenSocket,
        owner: Recipient<Accepted>,
    ) {
        let token = Token(id as usize);
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)
        {
            eprintln!("impulse-io: cannot register listener {id}: {e}");
            return;
        }
        let listener = Listener {
            id,
            socket,
            owner,
            retry_at: None,
            failures: 0,
            queued: false,
        };
        self.listeners.insert(token, listener);
        self.publish_gauges();
        self.accept_ready(token);
    }

    /// Stop and close listener `token`.
    pub(super) fn close_listener(&mut self, token: Token) {
        if let Some(mut l) = self.listeners.remove(&token) {
            if l.retry_at.is_some() {
                self.accept_paused -= 1;
            }
            let _ = self.poll.registry().deregister(&mut l.socket);
            self.publish_gauges();
        }
    }

    /// Accept from listener `token` until `WouldBlock`, a pause, or the batch limit.
    pub(super) fn accept_ready(&mut self, token: Token) {
        for _ in 0..ACCEPT_BATCH {
            let Some(l) = self.listeners.get_mut(&token) else {
                return;
            };
            if l.retry_at.is_some() {
                return;
            }
            match l.socket.accept() {
                Ok((mut stream, peer, local)) => {
                    if l.failures > 0 {
                        eprintln!(
                            "impulse-io: listener {} accepting again after {} failed tries",
                            l.id, l.failures
                        );
                        l.failures = 0;
                    }
                    if !l.owner.connected() {
                        eprintln!("impulse-io: owner of listener {} is gone; closing it", l.id);
                        self.close_listener(token);
                        return;
                    }
                    let id = self.shared.next_id();
                    let conn_token = Token(id as usize);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = self
                        .poll
                        .registry()
                        .register(&mut stream, conn_token, interest)
                    {
                        eprintln!("impulse-io: cannot register accepted connection: {e}");
                        continue;
                    }
                    // In the map before anyone can learn the id, so every write is counted.
                    let direct = Arc::new(Direct::default());
                    self.shared.direct.insert(id, direct.clone());
                    let conn = Conn::new(id, stream, State::Accepted, None, None, direct);
                    self.conns.insert(conn_token, conn);
                    self.counters.accepted();
                    self.counters.connections(self.conns.len());
                    l.owner.do_send(Accepted {
                        listener: l.id,
                        conn: id,
                        peer,
                        local,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if transient(&e) => {}
                Err(e) => {
                    // Logged when it starts, then every 50 tries (about 5 s).
                    if l.failures % 50 == 0 {
                        eprintln!(
                            "impulse-io: accept on listener {}: {e}; retrying every {:?}",
                            l.id, ACCEPT_PAUSE
                        );
                    }
                    l.failures += 1;
                    l.retry_at = Some(Instant::now() + ACCEPT_PAUSE);
                    self.accept_paused += 1;
                    return;
                }
            }
        }
        self.queue_ready(token);
    }

    /// Accept again on listeners whose pause has ended.
    pub(super) fn retry_accepts(&mut self) {
        if self.accept_paused == 0 {
            return;
        }
        let now = Instant::now();
        let due: Vec<Token> = self
            .listeners
            .iter()
            .filter(|(_, l)| l.retry_at.is_some_and(|t| t <= now))
            .map(|(t, _)| *t)
            .collect();
        for token in due {
            if let Some(l) = self.listeners.get_mut(&token) {
                l.retry_at = None;
                self.accept_paused -= 1;
            }
            self.accept_ready(token);
        }
    }

    /// When the earliest accept pause ends.
    pub(super) fn next_accept_retry(&self) -> Option<Instant> {
        if self.accept_paused == 0 {
            return None;
        }
        self.listeners.values().filter_map(|l| l.retry_at).min()
    }
}
