//! Messages the spool actor answers.

use actix::Message;
use bytes::Bytes;

use super::files::Location;
use super::record::{MessageMeta, RetryState};
use crate::ids::MessageId;

/// Why the spool could not do what was asked.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SpoolError {
    /// A write, fsync or read failed; the text says which and why.
    #[error("spool I/O error: {0}")]
    Io(String),
    /// The spool actor is gone or shutting down.
    #[error("spool unavailable")]
    Unavailable,
    /// The record asked for is not in an open segment.
    #[error("no such spool record")]
    NotFound,
}

/// A message about to be spooled: its metadata and its full data (headers and body).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub meta: MessageMeta,
    pub data: Bytes,
}

/// A message that is durably in the spool and handed to its domain container.
#[derive(Debug, Clone)]
pub struct Spooled {
    pub meta: MessageMeta,
    pub loc: Location,
    /// Bytes of message data.
    pub size: u64,
    /// Attempts made and next retry time, for a message deferred before a restart.
    pub retry: Option<RetryState>,
}

/// A message was deferred: remember its attempts and retry time in the spool (no fsync:
/// losing the note costs only the retry timing after a crash).
#[derive(Message)]
#[rtype(result = "()")]
pub struct NoteRetry {
    pub id: MessageId,
    pub loc: Location,
    pub state: RetryState,
}

/// Write messages durably (one fsync for the whole batch and its neighbours); answers
/// once they are on disk and handed to their domain containers.
#[derive(Message)]
#[rtype(result = "Result<Vec<MessageId>, SpoolError>")]
pub struct Store {
    pub messages: Vec<NewMessage>,
}

/// The message's final outcome is logged: mark it done so it is not recovered again.
/// Answers once the mark is durable.
#[derive(Message)]
#[rtype(result = "Result<(), SpoolError>")]
pub struct Remove {
    pub id: MessageId,
    pub loc: Location,
}

/// Read a message's data back for delivery.
#[derive(Message)]
#[rtype(result = "Result<Bytes, SpoolError>")]
pub struct ReadData {
    pub loc: Location,
}

/// Answers when no write or done-mark is pending or in flight (graceful shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;
