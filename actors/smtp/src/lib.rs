//! # Layout
//!
//! Pure SMTP protocol code for Impulse: no sockets, no runtime, no actors. Everything here
//! is fed bytes and returns bytes or events, so it can be tested in memory, split at every
//! byte boundary and fuzzed (`actors/smtp/fuzz`).
//!
//! - [`envelope`] — the message envelope (sender, recipients) shared by both sides.
//! - [`command`] — parsing of one client command line (RFC 5321 §4.1).
//! - [`data`] — the DATA phase reader: dot-unstuffing, the CRLF.CRLF terminator, bare
//!   CR / bare LF detection (SMTP smuggling), size limits.
//! - [`server`] — the server session state machine (`ingest(&[u8])`), one file per verb.
//! - [`reply`] — reply codes and enhanced status codes; parsing of (multi-line) replies.
//! - [`stuff`] — dot-stuffing of a message body for transmission.
//! - [`client`] — the client session state machine used for outbound delivery.

pub mod client;
pub mod command;
pub mod data;
pub mod dsn;
pub mod envelope;
pub mod reply;
pub mod server;
pub mod stuff;

pub use envelope::{domain_of, Envelope};
