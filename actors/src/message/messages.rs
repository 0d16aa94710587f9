//! Messages a message actor answers, and what it tells its domain container.

use actix::Message;
use impulse_smtp::client::RcptResult;
use impulse_smtp::Envelope;

use super::settle::Settlement;
use crate::ids::MessageId;
use crate::logger::LoggedResponse;

/// What an outbound connection needs to send the message now.
#[derive(Debug, Clone)]
pub struct TxInfo {
    pub id: MessageId,
    /// Only the recipients still pending, in envelope order.
    pub envelope: Envelope,
    pub size: u64,
}

/// An outbound connection takes the message for an attempt.
#[derive(Message)]
#[rtype(result = "Option<TxInfo>")]
pub struct Begin;

/// The attempt's per-recipient results, in the order of [`TxInfo::envelope`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outcome {
    pub results: Vec<(String, RcptResult)>,
    /// The next hop that answered.
    pub peer: String,
    /// The session's TLS, if it was encrypted (goes in the Delivery records).
    pub tls: Option<impulse_runtime::io::TlsInfo>,
    /// The next hop took the DSN parameters: success reports are its to send.
    pub dsn_relayed: bool,
    /// The next hop lacks SMTPUTF8, which the message needs, and other exchangers
    /// follow it: these hops. The recipients it refused for that stay pending and the
    /// message goes back to its container to be sent through them (RFC 6531 §3.2 asks
    /// for the other MX hosts before a bounce).
    pub utf8_hops: Option<std::sync::Arc<[crate::dns::Hop]>>,
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

/// The connection it was assigned to could not take it: back to the queue, unchanged.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Requeue;

/// Carry out a settlement the domain container already made (a message deferred
/// without a connection whose deferral finished it: expiry).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Apply(pub Settlement);

/// The message in detail, for `impulsectl message` and `find` (none once handed back).
#[derive(Message)]
#[rtype(result = "Option<impulse_runtime::control::MessageDetail>")]
pub struct DescribeMsg;
