//! Messages an inbound session answers.

/// Close idle sessions (tell the client with 421 first).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Drain;
