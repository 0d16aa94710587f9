//! Messages an outbound connection answers.

use actix::{Addr, Message};

use crate::ids::MessageId;
use crate::message::MessageActor;

/// The domain assigns a message to this (idle) connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Assign {
    pub id: MessageId,
    pub msg: Addr<MessageActor>,
}

/// Finish the current transaction, then quit (graceful shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;
