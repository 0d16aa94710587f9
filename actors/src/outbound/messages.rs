//! Messages an outbound connection answers.

use actix::{Addr, Message};
use impulse_config::DomainCfg;

use crate::domain::Domain;
use crate::ids::MessageId;
use crate::message::MessageActor;

/// The domain assigns a message to this (idle) connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Assign {
    pub id: MessageId,
    pub msg: Addr<MessageActor>,
    /// Quit after this message (a connection opened for it alone).
    pub last: bool,
}

/// Finish the current transaction, then quit (graceful shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Another container of the same site takes this idle connection for its message `id`:
/// from now on the connection reports to `domain` and uses its limits. A connection that
/// is not idle any more answers the message with `Requeue`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adopt {
    pub domain: Addr<Domain>,
    /// The adopting container's registry id (the connection's parent from now on).
    pub parent: impulse_runtime::registry::ActorId,
    pub cfg: DomainCfg,
    pub id: MessageId,
    pub msg: Addr<MessageActor>,
}
