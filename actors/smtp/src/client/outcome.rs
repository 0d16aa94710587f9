//! What goes into the client session (one message to send) and what comes out (the result
//! for every recipient).
//!
//! Every [`OutboundTx`] accepted by `send_message` yields exactly one `Done` carrying a
//! [`TxOutcome`] with one entry per envelope recipient, in envelope order, whatever happens
//! to the connection: this is how the session guarantees nothing is lost.

use std::fmt;

use bytes::Bytes;

use crate::envelope::Envelope;
use crate::reply::{EnhancedCode, Reply};

/// One message to deliver over the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundTx {
    /// Caller's identifier, echoed in `ClientEvent::Done`.
    pub id: u64,
    /// Sender and recipients to replay to the server.
    pub envelope: Envelope,
    /// The message (headers and body) as stored; stuffed and CRLF-normalised on sending.
    pub body: Bytes,
}

/// The result for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    /// The server took responsibility (2xx to end of data).
    Delivered(Reply),
    /// Try again later: 4xx, or the connection failed before a final answer.
    Transient(Reply),
    /// Do not retry: 5xx (bounce).
    Permanent(Reply),
}

impl RcptResult {
    /// The reply that decided this result.
    pub fn reply(&self) -> &Reply {
        match self {
            Self::Delivered(r) | Self::Transient(r) | Self::Permanent(r) => r,
        }
    }

    /// A negative reply as a result: 5xx is permanent, anything else transient.
    pub(crate) fn failure(reply: Reply) -> Self {
        if reply.is_permanent() {
            Self::Permanent(reply)
        } else {
            Self::Transient(reply)
        }
    }
}

/// Per-recipient results of one transaction, in envelope order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxOutcome {
    /// Each envelope recipient with its result.
    pub recipients: Vec<(String, RcptResult)>,
    /// The DSN parameters went on with the message (the server offered DSN): reports
    /// about these recipients are the next hop's to make now (RFC 3461 §6.2.1).
    pub dsn_relayed: bool,
}

impl TxOutcome {
    /// True when every recipient was delivered.
    pub fn all_delivered(&self) -> bool {
        self.recipients
            .iter()
            .all(|(_, r)| matches!(r, RcptResult::Delivered(_)))
    }
}

/// `send_message` was called while the session could not take a message; the message is
/// handed back untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotIdle(pub Box<OutboundTx>);

impl fmt::Display for NotIdle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SMTP client session is not idle (message {})", self.0.id)
    }
}

impl std::error::Error for NotIdle {}

/// Replies the session makes up itself when it refuses to send something.
pub mod local {
    use super::*;

    /// The body exceeds the server's advertised SIZE.
    pub fn too_big(size: usize, limit: u64) -> Reply {
        Reply::new(
            552,
            Some(EnhancedCode::new(5, 3, 4)),
            format!("message size {size} exceeds the limit of {limit} advertised by the server"),
        )
    }

    const NO_SMTPUTF8: &str = "SMTPUTF8 is required, but was not offered by the server";

    /// The message needs SMTPUTF8 and the server does not offer it (RFC 6531 §3.2).
    pub fn no_smtputf8() -> Reply {
        Reply::new(550, Some(EnhancedCode::new(5, 6, 7)), NO_SMTPUTF8)
    }

    /// Whether `r` is [`no_smtputf8`]: refused here, before sending, for want of
    /// SMTPUTF8 (another exchanger may offer it).
    pub fn is_no_smtputf8(r: &Reply) -> bool {
        r.code == 550 && r.enhanced == Some(EnhancedCode::new(5, 6, 7)) && r.text == NO_SMTPUTF8
    }

    /// The message requires TLS (RFC 8689) and this session cannot give it: not
    /// encrypted, or the server does not offer REQUIRETLS.
    pub fn requiretls() -> Reply {
        Reply::new(
            550,
            Some(EnhancedCode::new(5, 7, 30)),
            "REQUIRETLS support required, but the next hop does not offer it over TLS",
        )
    }

    /// The sender address cannot be put on a command line.
    pub fn bad_sender() -> Reply {
        Reply::new(
            553,
            Some(EnhancedCode::new(5, 1, 7)),
            "sender address cannot be sent (control characters or too long)",
        )
    }

    /// A recipient address cannot be put on a command line.
    pub fn bad_recipient() -> Reply {
        Reply::new(
            553,
            Some(EnhancedCode::new(5, 1, 3)),
            "recipient address cannot be sent (control characters or too long)",
        )
    }

    /// The connection failed without a server reply for this recipient.
    pub fn connection_failed(reason: &str) -> Reply {
        Reply::new(
            451,
            Some(EnhancedCode::new(4, 4, 2)),
            format!("connection failed: {reason}"),
        )
    }
}
