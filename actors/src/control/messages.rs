//! Messages the control actor sends and answers besides the socket's events.

use actix::Message;
use impulse_runtime::control::{Request, Response};

/// Ask the root for a graceful stop.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub reason: String,
}

/// A control request from another actor (the HTTP endpoint): answered like one from the
/// control socket, typed, through `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ask {
    pub request: Request,
    pub reply: tokio::sync::oneshot::Sender<Response>,
}
