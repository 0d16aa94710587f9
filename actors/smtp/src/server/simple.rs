//! The verbs that touch no transaction data: RSET, VRFY, QUIT and the verbs this server
//! recognizes but does not implement (EXPN, HELP, BDAT, TURN/ETRN/ATRN, and STARTTLS
//! where it is not offered), which all get `502 5.5.1`. (NOOP is answered inline by the dispatcher.)
//!
//! VRFY never reveals whether an address exists: `252 2.1.5` (RFC 5321 §3.5.3).

use super::{Event, Session};

impl Session {
    pub(super) fn rset(&mut self) {
        self.reset_transaction();
        self.reply(250, "2.0.0", "Ok");
    }

    pub(super) fn vrfy(&mut self) {
        self.reply(
            252,
            "2.1.5",
            "Cannot VRFY user, but will accept message and attempt delivery",
        );
    }

    pub(super) fn quit(&mut self) {
        self.reply(221, "2.0.0", "Bye");
        self.enter_closed(Event::Quit);
    }

    pub(super) fn not_implemented(&mut self) {
        self.reply(502, "5.5.1", "Command not implemented");
    }
}
