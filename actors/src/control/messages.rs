//! Messages the control actor sends and answers besides the socket's events.

use actix::Message;

/// Ask the root for a graceful stop.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub reason: String,
}
