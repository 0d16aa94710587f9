//! # Layout
//!
//! Impulse's actors. Each owns one concern and talks to the others only by messages;
//! the SMTP protocol itself lives in the pure `impulse-smtp` crate, the sockets in the
//! runtime's I/O actor, blocking work on the runtime's pool.
//!
//! - [`root`] — boots everything in order, supervises, runs the graceful shutdown.
//! - [`listener`] — one per listening address; starts an inbound session per connection.
//! - [`inbound`] — the SMTP server session actor.
//! - [`accept`] — accepting a message (SMTP or HTTP): binding, DKIM, split, fsync, `Received:`.
//! - [`spool`] — the durable store: segment files, group-committed fsyncs, recovery.
//! - [`router`] — finds or starts the domain container for a destination domain.
//! - [`domain`] — one container per destination domain: queues, connections, retries.
//! - [`dns`] — the resolver: MX and address lookups on an arbiter of their own.
//! - [`message`] — one actor per live message: its lifecycle and log records.
//! - [`outbound`] — the SMTP client session actor delivering to a next hop.
//! - [`logger`] — the JSON-lines message log.
//! - [`bounce`] — delivery status notifications (RFC 3464) back to the sender.
//! - [`binding`] — egress identities (source address, EHLO name) and queue keys.
//! - [`dkim`] — DKIM signing keys per sending domain, and the signing itself.
//! - [`control`] — the `impulsectl` control-socket server.
//! - [`http`] — the HTTP endpoint: `/metrics`, `/health`, the control API, injection.
//! - [`suspend`] — suspended destinations, kept durably across restarts.
//! - [`memory`] — the memory budget: new transactions wait near it.
//! - [`queued`] — the compact record a message is while no actor works on it.
//! - [`responses`] — the last temporary responses of deferred messages, interned.
//! - [`arbiters`] — the event-loop threads and which actor runs on which.
//! - [`batch`] — group commit, the one batching mechanism (spool and logger).
//! - [`context`], [`stats`], [`ids`] — what is shared: context, counters, message ids.

pub mod accept;
pub mod arbiters;
pub mod batch;
pub mod binding;
pub mod bounce;
pub mod context;
pub mod control;
pub mod dkim;
pub mod dns;
pub mod domain;
pub mod http;
pub mod ids;
pub mod inbound;
pub mod listener;
pub mod logger;
pub mod memory;
pub mod message;
pub mod outbound;
pub mod queued;
pub mod responses;
pub mod root;
pub mod router;
pub mod spool;
pub mod stats;
pub mod suspend;

pub use root::{boot, boot_from, Booted};
