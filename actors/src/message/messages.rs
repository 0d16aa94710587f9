//! Messages a message actor answers.

use actix::Message;
use impulse_smtp::client::RcptResult;
use impulse_smtp::Envelope;

use crate::ids::MessageId;
use crate::logger::LoggedResponse;
use crate::spool::files::Location;

/// What an outbound connection needs to send the message now.
#[derive(Debug, Clone)]
pub struct TxInfo {
    pub id: MessageId,
    /// Only the recipients still pending.
    pub envelope: Envelope,
    pub loc: Location,
    pub size: u64,
}

/// An outbound connection takes the message for an attempt.
#[derive(Message)]
#[rtype(result = "Option<TxInfo>")]
pub struct Begin;

/// The attempt's per-recipient results.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outcome {
    pub results: Vec<(String, RcptResult)>,
    /// The next hop that answered.
    pub peer: String,
}

/// The attempt could not happen or did not finish (connection failure, no route, read
/// error, shutdown): every pending recipient failed transiently with this response.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Defer {
    pub response: LoggedResponse,
    pub peer: String,
    /// Whether this counts as a delivery attempt.
    pub attempted: bool,
}
