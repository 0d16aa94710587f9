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
    /// Keep a refusal for the log (with the transaction's sender, unless `sender` is
    /// given: a MAIL being refused is not the transaction's yet).
    pub(super) fn note_rejection(
        &mut self,
        code: u16,
        enhanced: &'static str,
        text: &str,
        sender: Option<&str>,
        recipient: &str,
    ) {
        let sender = sender.map_or_else(|| self.envelope.sender.clone(), str::to_string);
        self.rejections.push(Rejected {
            code,
            enhanced,
            text: text.to_string(),
            sender,
            recipient: recipient.to_string(),
        });
    }

    /// Reply and keep the refusal for the log.
    pub(super) fn reject(
        &mut self,
        code: u16,
        enhanced: &'static str,
        text: &str,
        recipient: &str,
    ) {
        self.note_rejection(code, enhanced, text, None, recipient);
        self.reply(code, enhanced, text);
    }

    /// The refusals since the last call, oldest first.
    pub fn take_rejections(&mut self) -> Vec<Rejected> {
        std::mem::take(&mut self.rejections)
    }
}
