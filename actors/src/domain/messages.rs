//! Messages a domain container answers.

use actix::{Addr, Message};
use impulse_runtime::control::QueueRow;
use impulse_runtime::registry::ActorId;

use crate::ids::MessageId;
use crate::logger::LoggedResponse;
use crate::outbound::Outbound;
use crate::queued::QueuedMessage;

/// A message is durably spooled for this domain: queue it (as a record, no actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub QueuedMessage);

/// Many messages for this domain at once (spool recovery).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EnqueueMany(pub Vec<QueuedMessage>);

/// An outbound connection is idle and can take a message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ready {
    pub conn: ActorId,
    pub addr: Addr<Outbound>,
    /// What its hop did since it last said (the transaction just ended, the connect).
    pub hop: Option<super::hops::HopEvent>,
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

/// A message actor is done: its record comes back for the delayed queue (or, with
/// `requeue`, for the front of the active queue), or `None` when the message is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finished {
    pub id: MessageId,
    pub msg: Option<QueuedMessage>,
    pub requeue: bool,
    /// Send it through these hops, not the domain's own (the exchangers after one
    /// that lacked SMTPUTF8).
    pub hops: Option<std::sync::Arc<[crate::dns::Hop]>>,
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

/// `impulsectl bounce`: fail the queued (not in-flight) messages that match, for good;
/// answers their ids. With `dry_run` nothing changes.
#[derive(Message, Clone)]
#[rtype(result = "Vec<MessageId>")]
pub struct AdminBounce {
    /// Only these messages (the parts of one, as its 250 named them), if given.
    pub message: Option<Vec<MessageId>>,
    pub sender: Option<String>,
    pub reason: String,
    pub quiet: bool,
    pub dry_run: bool,
}

/// Look at the queue again now (a suspension was added or lifted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// `impulsectl domain NAME`: this container in detail.
#[derive(Message)]
#[rtype(result = "impulse_runtime::control::DomainDetail")]
pub struct DomainInfo;

/// `impulsectl flush`: every delayed message is due now; answers how many there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct FlushDelayed;

/// A connection of this container was adopted by another container of its site.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandedOver {
    pub conn: ActorId,
}
