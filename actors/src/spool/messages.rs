//! The spool's public face: the messages it answers and the errors it gives.
//!
//! The spool stores and answers; it never decides what happens to a message next.
//! Whoever asked (the inbound session after `Store`, the root after `Recover`) hands
//! the message on to the router.

use actix::Message;
use bytes::Bytes;

use super::journal::RetryState;
use super::record::MessageMeta;
use super::recover::Recovered;
use crate::ids::MessageId;

/// Why the spool could not do what was asked.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SpoolError {
    /// A file operation failed; `kind` says how (e.g. `StorageFull` for ENOSPC).
    #[error("spool {op} failed: {message}")]
    Io {
        op: &'static str,
        kind: std::io::ErrorKind,
        message: String,
    },
    /// The spool actor is gone or shutting down.
    #[error("spool unavailable")]
    Unavailable,
    /// No live message has that id.
    #[error("no such message in the spool")]
    NotFound,
    /// The record on disk does not verify any more.
    #[error("spool record damaged: {0}")]
    Corrupt(String),
}

impl SpoolError {
    pub fn io(op: &'static str, e: &std::io::Error) -> SpoolError {
        SpoolError::Io {
            op,
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// A message about to be spooled: its metadata and its full data (headers and body).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub meta: MessageMeta,
    pub data: Bytes,
}

/// Write messages durably (one fsync for the whole batch and its neighbours); answers
/// with their ids once they are on disk. Nothing is left behind when it fails.
#[derive(Message)]
#[rtype(result = "Result<Vec<MessageId>, SpoolError>")]
pub struct Store {
    pub messages: Vec<NewMessage>,
}

/// Read a message's data back for delivery.
#[derive(Message)]
#[rtype(result = "Result<Bytes, SpoolError>")]
pub struct ReadData {
    pub id: MessageId,
}

/// These recipients' final outcomes are logged: never attempt them again. Made durable
/// in the next group commit, retried until it is; answers once durable.
#[derive(Message)]
#[rtype(result = "Result<(), SpoolError>")]
pub struct MarkRecipients {
    pub id: MessageId,
    /// Indices into the message's recipient list.
    pub indices: Vec<u16>,
}

/// The message's final outcome is logged: it leaves the spool. Answers once the mark is
/// durable (retried until it is).
#[derive(Message)]
#[rtype(result = "Result<(), SpoolError>")]
pub struct Remove {
    pub id: MessageId,
}

/// A message was deferred: remember its attempts and retry time (no fsync of its own:
/// losing the note costs only the retry timing after a crash).
#[derive(Message)]
#[rtype(result = "()")]
pub struct NoteRetry {
    pub id: MessageId,
    pub state: RetryState,
}

/// Scan the spool (once, at start): every live message, by destination domain.
#[derive(Message)]
#[rtype(result = "Result<Vec<(String, Vec<Recovered>)>, SpoolError>")]
pub struct Recover;

/// Answers when no write or mark is pending or in flight (graceful shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;
