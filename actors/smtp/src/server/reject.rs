//! Refusals the operator wants to see: every reply that refuses on a limit or a policy
//! (too many recipients, a line or a message too long, relaying denied, AUTH required,
//! too many messages on one connection, too many errors) is also kept as a [`Rejected`]
//! for the connection actor, which logs it as a Rejection record. Protocol slips (a verb
//! out of order, a syntax error) are not: they are the client's to fix and only answered.

use super::Session;

/// One refusal worth a log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub code: u16,
    pub enhanced: &'static str,
    pub text: String,
    /// The transaction's sender, if MAIL was given.
    pub sender: String,
    /// The recipient refused, for a refused RCPT.
    pub recipient: String,
}

impl Session {
    /// Reply and keep the refusal for the log.
    pub(super) fn reject(
        &mut self,
        code: u16,
        enhanced: &'static str,
        text: &str,
        recipient: &str,
    ) {
        self.rejections.push(Rejected {
            code,
            enhanced,
            text: text.to_string(),
            sender: self.envelope.sender.clone(),
            recipient: recipient.to_string(),
        });
        self.reply(code, enhanced, text);
    }

    /// The refusals since the last call, oldest first.
    pub fn take_rejections(&mut self) -> Vec<Rejected> {
        std::mem::take(&mut self.rejections)
    }
}
