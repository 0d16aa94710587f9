//! STARTTLS (RFC 3207) and implicit TLS, on the session's side: the connection actor
//! does the handshake (in the I/O actor); the session decides when and forgets
//! everything said in plaintext once it is done.
//!
//! STARTTLS is offered in the EHLO reply while the policy allows it and the session is
//! not encrypted yet. It is accepted only outside a transaction, after EHLO/HELO: `220
//! 2.0.0` is queued, [`Event::StartTls`] tells the actor to start the handshake, and the
//! session enters [`State::TlsPending`], where every byte is discarded — whatever the
//! client pipelined behind STARTTLS was sent in plaintext and must never be read as a
//! command of the encrypted session (CVE-2011-0411). [`Session::tls_started`] then resets
//! the session to [`State::Greeted`] with no EHLO name, no transaction and no AUTH (the
//! client must say EHLO again); STARTTLS is not offered again. Inside TLS, STARTTLS gets
//! `503 5.5.1`; where it is not offered, `502 5.5.1`.

use super::{Event, Session, State};

impl Session {
    pub(super) fn starttls(&mut self) {
        if self.tls {
            return self.reply(503, "5.5.1", "TLS already active");
        }
        if !self.policy.starttls {
            return self.not_implemented();
        }
        match self.state {
            State::Greeted => return self.reply(503, "5.5.1", "Send EHLO first"),
            State::Mail | State::Rcpt => {
                return self.reply(503, "5.5.1", "STARTTLS not allowed in a transaction")
            }
            _ => {}
        }
        self.reply(220, "2.0.0", "Ready to start TLS");
        self.state = State::TlsPending;
        self.input.clear();
        self.events.push_back(Event::StartTls);
    }

    /// The TLS handshake asked for with [`Event::StartTls`] completed: start over as a
    /// new, encrypted session (no greeting is sent; the client says EHLO). Ignored unless
    /// the session is in [`State::TlsPending`].
    pub fn tls_started(&mut self) {
        if self.state != State::TlsPending {
            return;
        }
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.auth_user = None;
        self.sasl = None;
        self.input.clear();
        self.discarding = false;
        self.errors = 0;
        self.reset_transaction();
    }

    /// The connection is encrypted from its first byte (implicit TLS, RFC 8314): call
    /// before the greeting. STARTTLS is then never offered.
    pub fn set_implicit_tls(&mut self) {
        self.tls = true;
    }

    /// Whether the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}
