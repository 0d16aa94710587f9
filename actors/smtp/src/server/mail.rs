//! MAIL FROM: opening a transaction.
//!
//! Allowed only after EHLO/HELO and outside a transaction (`503 5.5.1` otherwise).
//! On a listener that requires AUTH, MAIL before it gets `530 5.7.0`; past the policy's
//! messages per connection, `421 4.7.0` and a close. `SMTPUTF8` (RFC 6531) opens a
//! transaction that may use UTF-8 addresses; a UTF-8 sender without it gets `553 5.6.7`.
//! `REQUIRETLS` (RFC 8689) is taken only inside TLS (`530 5.7.10` otherwise).
//! While the actor has set a refusal (its spool cannot take mail), MAIL gets
//! `452 4.3.1`. Parameters other than `SIZE` and `BODY` are refused with `555 5.5.4`; a declared
//! `SIZE` above the policy maximum gets `552 5.3.4` (RFC 1870). On success the envelope
//! is started and the session moves to [`State::Mail`].

use super::{Session, State};
use crate::command::{Body, MailParams};
use crate::envelope::Envelope;

impl Session {
    pub(super) fn mail(&mut self, from: String, params: MailParams) {
        match self.state {
            State::Greeted => return self.reply(503, "5.5.1", "Send EHLO or HELO first"),
            State::Mail | State::Rcpt => return self.reply(503, "5.5.1", "Nested MAIL command"),
            _ => {}
        }
        if self.policy.require_auth && self.auth_user.is_none() {
            return self.reject_sender(&from, 530, "5.7.0", "Authentication required");
        }
        if self.accepted >= self.policy.max_messages {
            let text = "Too many messages on one connection, reconnect";
            self.note_rejection(421, "4.7.0", text, Some(&from), "");
            return self.close(421, "4.7.0", text);
        }
        if let Some((code, reason)) = &self.mail_refusal {
            let (code, text) = (*code, reason.clone());
            return self.reject_sender(&from, code, "4.3.1", &text);
        }
        if !params.extra.is_empty() {
            return self.reply(555, "5.5.4", "Unsupported MAIL parameter");
        }
        if params
            .size
            .is_some_and(|size| size > self.policy.max_message_size)
        {
            self.envelope.sender = from;
            self.reject(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
                "",
            );
            self.envelope.sender.clear();
            return;
        }
        if params.requiretls && !self.tls {
            return self.reply(530, "5.7.10", "REQUIRETLS needs a TLS session");
        }
        if !params.smtputf8 && !from.is_ascii() {
            return self.reply(553, "5.6.7", "SMTPUTF8 is required for a non-ASCII address");
        }
        self.envelope = Envelope {
            sender: from,
            recipients: Vec::new(),
            body_8bit: params.body == Some(Body::EightBitMime),
            declared_size: params.size,
            smtputf8: params.smtputf8,
            dsn: crate::dsn::DsnParams {
                ret: params.ret,
                envid: params.envid,
                requiretls: params.requiretls,
                recipients: Vec::new(),
            },
        };
        self.state = State::Mail;
        self.reply(250, "2.1.0", "Ok");
    }

    /// Refuse MAIL from `from` (not yet the transaction's sender), logging it with it.
    fn reject_sender(&mut self, from: &str, code: u16, enhanced: &'static str, text: &str) {
        self.note_rejection(code, enhanced, text, Some(from), "");
        self.reply(code, enhanced, text);
    }
}
