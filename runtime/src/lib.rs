//! # Layout
//!
//! The runtime Impulse's actors stand on. Nothing here knows SMTP.
//!
//! - [`class`] — actor classes, shared by the registry and the allocator.
//! - [`alloc`] — the counting global allocator over mimalloc: live bytes, allocations and
//!   peak per actor class (a 16-byte header per allocation, per-thread counter slots).
//! - [`registry`] — every live actor (id, class, parent, state, mailbox) in a DashMap;
//!   what `impulsectl tree` prints.
//! - [`pool`] — the named sync-arbiter pools (actix `SyncArbiter`) that run every blocking
//!   call, with panic containment and observable queue depth.
//! - [`io`] — the epoll-driven I/O actor: one `mio::Poll` thread owning every socket,
//!   commanded through a channel plus `mio::Waker`, with per-connection read credit.
//! - [`control`] — the typed request/response protocol spoken over the control socket.
//! - [`supervise`] — `guard`: a panic in a handler becomes a supervised restart.

pub mod alloc;
pub mod class;
pub mod control;
pub mod io;
pub mod pool;
pub mod registry;
pub mod supervise;

pub use class::ActorClass;
