//! RCPT TO: adding a recipient to the open transaction.
//!
//! Allowed only after MAIL (`503 5.5.1` otherwise). `NOTIFY` and `ORCPT` (DSN, RFC
//! 3461) are kept with the recipient; any other parameter gets `555 5.5.4`. A client without relay permission gets
//! A UTF-8 address in a transaction opened without SMTPUTF8 gets `553 5.6.7`.
//! `550 5.7.1 Relaying denied` for every recipient (an authenticated client may relay); past `max_recipients` the client gets
//! `452 4.5.3` (RFC 5321 §4.5.3.1.10: it should send the rest in another transaction).

use super::{Session, State};
use crate::command::RcptParams;
use crate::dsn::RcptDsn;

impl Session {
    pub(super) fn rcpt(&mut self, to: String, params: RcptParams) {
        if !matches!(self.state, State::Mail | State::Rcpt) {
            return self.reply(503, "5.5.1", "Need MAIL command");
        }
        if !params.extra.is_empty() {
            return self.reply(555, "5.5.4", "Unsupported RCPT parameter");
        }
        if !self.envelope.smtputf8 && !to.is_ascii() {
            return self.reply(553, "5.6.7", "SMTPUTF8 is required for a non-ASCII address");
        }
        if !self.policy.relay_allowed && self.auth_user.is_none() {
            return self.reject(550, "5.7.1", "Relaying denied", &to);
        }
        if self.envelope.recipients.len() >= self.policy.max_recipients {
            return self.reject(452, "4.5.3", "Too many recipients", &to);
        }
        self.envelope.recipients.push(to);
        self.envelope.dsn.recipients.push(RcptDsn {
            notify: params.notify,
            orcpt: params.orcpt,
        });
        self.state = State::Rcpt;
        self.reply(250, "2.1.5", "Ok");
    }
}
