//! Messages a domain container answers.

use std::time::Instant;

use actix::{Addr, Message};
use impulse_runtime::control::QueueRow;
use impulse_runtime::registry::ActorId;

use crate::ids::MessageId;
use crate::logger::LoggedResponse;
use crate::outbound::Outbound;
use crate::spool::Spooled;

/// A message is durably spooled for this domain: start its actor and queue it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub Spooled);

/// An outbound connection is idle and can take a message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ready {
    pub conn: ActorId,
    pub addr: Addr<Outbound>,
}

/// An outbound connection could not start an assigned message: queue it again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    pub id: MessageId,
}

/// An idle outbound connection is quitting: assign it nothing more.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leaving {
    pub conn: ActorId,
}

/// An outbound connection is gone. `failure` is set when it failed before delivering
/// anything (connect refused, bad greeting, timeout): the next hop is unusable for now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConnectionClosed {
    pub conn: ActorId,
    pub failure: Option<LoggedResponse>,
    pub peer: String,
}

/// A message's attempt is settled: `retry_at` for the delayed queue, `None` when the
/// message is finished and gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finished {
    pub id: MessageId,
    pub retry_at: Option<Instant>,
}

/// The container's row for `impulsectl queues`.
#[derive(Message)]
#[rtype(result = "QueueRow")]
pub struct QueueInfo;

/// Shutting down: stop opening connections and assigning messages; ask every
/// connection to finish its transaction and quit.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;
