//! The epoll-driven I/O actor: one `mio::Poll` loop on its own thread that owns every
//! socket Impulse has — TCP listeners, accepted and outbound TCP connections, and the
//! Unix-domain listener and streams of the control socket.
//!
//! The loop moves bytes and nothing else: it never parses a protocol and never blocks.
//! Actors command it through a cloneable [`IoHandle`] (a channel plus a `mio::Waker`);
//! it answers them with [`Accepted`] and [`ConnEvent`] messages sent by
//! `Recipient::do_send`. Those sends are bounded by a per-connection [`Credit`]: a
//! connection whose actor has more than `read_window` bytes delivered but not yet
//! `consumed` is not read, so the kernel buffer fills and TCP flow control pushes back
//! on the peer.
//!
//! One shortcut: a write to a plaintext connection whose output queue is empty is made
//! with one non-blocking `send` on the writer's own thread, through a gate the loop opens
//! and closes (`direct`), so the common reply costs no command and no wake-up of the
//! loop; what the socket does not take at once is queued behind, in order.
//!
//! Contract, per connection: an accepted connection is not read until it is
//! [`IoHandle::attach`]ed; an outbound one gets `Connected` or `ConnectFailed` first;
//! from then on `Data` arrives in order, `ReadClosed` at most once after the last
//! `Data` (the peer shut its sending side; the connection stays writable until the
//! owner closes or aborts it), and `Closed` comes exactly once, last.
//! Connection and listener ids are unique for the life of the process and carry the
//! index of their loop in the top 8 bits ([`loop_index_of`]), so several loops
//! (one per core, `SO_REUSEPORT`) can coexist later without changing this interface.
//!
//! Files: `handle` (the handle and the command channel), `direct` (writes from the
//! writer's thread), `credit` (read credit),
//! `event_loop` (the poll loop and command dispatch), `conn` (one connection: reads,
//! writes, close), `tls` (rustls on the socket), `outbound` (connecting), `listener` (accepting), `sock` (raw socket
//! setup through libc), `stats` (the counters behind [`IoHandle::stats`]).

mod conn;
mod credit;
mod direct;
mod event_loop;
mod handle;
mod listener;
mod outbound;
mod sock;
mod stats;
mod tls;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use credit::Credit;
pub use handle::IoHandle;
pub use tls::{TlsInfo, TlsStart};

/// Identifies one connection for the life of the process (never reused).
pub type ConnId = u64;
/// Identifies one listener for the life of the process (never reused).
pub type ListenerId = u64;

/// Bits of an id below the loop index.
const LOOP_SHIFT: u32 = 56;

/// The index of the I/O loop that owns a connection or listener id.
pub fn loop_index_of(id: u64) -> u8 {
    (id >> LOOP_SHIFT) as u8
}

/// The far end (or the near end) of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    /// A TCP endpoint.
    Tcp(SocketAddr),
    /// A Unix-domain endpoint (the control socket); its peers are unnamed.
    Unix,
}

/// A listener accepted a connection. The connection is registered but not read until
/// its new owner calls [`IoHandle::attach`] (or it is dropped with [`IoHandle::abort`]).
#[derive(actix::Message, Debug)]
#[rtype(result = "()")]
pub struct Accepted {
    pub listener: ListenerId,
    pub conn: ConnId,
    pub peer: PeerAddr,
    pub local: PeerAddr,
}

/// What happens on a connection, delivered to its owner in order.
#[derive(actix::Message, Debug)]
#[rtype(result = "()")]
pub enum ConnEvent {
    /// Bytes read from the peer. They count against the connection's [`Credit`] until
    /// the owner calls [`Credit::consumed`].
    Data { conn: ConnId, bytes: bytes::Bytes },
    /// An outbound connection is established.
    Connected { conn: ConnId, local: SocketAddr },
    /// An outbound connection could not be established; `Closed` follows.
    ConnectFailed { conn: ConnId, error: String },
    /// The peer shut its sending side (read returned 0, e.g. a half-close with
    /// `shutdown(SHUT_WR)`): no more `Data` will come, but the connection stays open for
    /// writing. The owner MUST call [`IoHandle::close`] (or [`IoHandle::abort`]) once it
    /// has written what it wants to; the loop does not close it on its own (unless a
    /// write fails: `Closed { reason: Error }`). The final `Closed` then says
    /// `PeerClosed`.
    ReadClosed { conn: ConnId },
    /// The TLS handshake asked for with [`IoHandle::start_tls`] is complete: `Data` is
    /// decrypted from now on.
    TlsReady { conn: ConnId, info: TlsInfo },
    /// The connection is gone. Sent exactly once per attached or connected connection,
    /// and always the last event for it.
    Closed { conn: ConnId, reason: CloseReason },
}

impl ConnEvent {
    /// The connection the event is about.
    pub fn conn(&self) -> ConnId {
        match self {
            ConnEvent::Data { conn, .. }
            | ConnEvent::Connected { conn, .. }
            | ConnEvent::ConnectFailed { conn, .. }
            | ConnEvent::ReadClosed { conn }
            | ConnEvent::TlsReady { conn, .. }
            | ConnEvent::Closed { conn, .. } => *conn,
        }
    }
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer shut its side first (`ReadClosed` was delivered), and the owner then
    /// closed or aborted the connection.
    PeerClosed,
    /// A socket error, a refused connect, or a write buffer overflow.
    Error(String),
    /// The owner asked for it ([`IoHandle::close`], [`IoHandle::abort`]) while the peer
    /// was still sending, or the loop shut down.
    Local,
}

/// Sizes the loop works with.
#[derive(Debug, Clone)]
pub struct IoConfig {
    /// Largest single read, and so the largest `Data` chunk (default 64 KiB).
    pub read_chunk: usize,
    /// Most bytes delivered to a connection's owner but not yet consumed; above it the
    /// connection is not read (default 256 KiB).
    pub read_window: usize,
    /// Most bytes queued for writing on one connection; a write beyond it closes the
    /// connection with `CloseReason::Error` (default 64 MiB).
    pub max_write_buffer: usize,
}

impl IoConfig {
    /// Default `read_chunk`: 64 KiB.
    pub const fn default_read_chunk() -> usize {
        64 * 1024
    }
    /// Default `read_window`: 256 KiB.
    pub const fn default_read_window() -> usize {
        256 * 1024
    }
    /// Default `max_write_buffer`: 64 MiB.
    pub const fn default_max_write_buffer() -> usize {
        64 * 1024 * 1024
    }
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            read_chunk: Self::default_read_chunk(),
            read_window: Self::default_read_window(),
            max_write_buffer: Self::default_max_write_buffer(),
        }
    }
}

/// Counters of one I/O loop, read without a round trip to it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Open listeners.
    pub listeners: u64,
    /// Open connections (accepted, attached, connecting or outbound).
    pub connections: u64,
    /// Connections accepted since start.
    pub accepted_total: u64,
    /// Bytes read from sockets since start.
    pub bytes_in: u64,
    /// Bytes written to sockets since start.
    pub bytes_out: u64,
    /// Connections not being read because their owner is behind (credit exhausted).
    pub paused: u64,
}

/// Start an I/O loop (index 0) on a new thread named `impulse-io`.
pub fn spawn(config: IoConfig) -> std::io::Result<IoHandle> {
    spawn_indexed(config, 0)
}

/// Start the I/O loop with the given index on a new thread (`impulse-io` for 0,
/// `impulse-io-N` otherwise). Its ids carry the index in their top 8 bits.
pub fn spawn_indexed(config: IoConfig, index: u8) -> std::io::Result<IoHandle> {
    event_loop::spawn(config, index)
}
