//! Messages a listener answers.

use std::net::SocketAddr;

use actix::Message;
use impulse_runtime::io::ListenerId;

/// The I/O actor bound the socket: remember its id (to close it on shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Bound {
    pub id: ListenerId,
    pub local: SocketAddr,
}

/// Stop accepting; ask every session to finish and close.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// A reload: new sessions run with these settings (greeting name, certificate, AUTH).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Configure(pub super::ListenerSettings);
