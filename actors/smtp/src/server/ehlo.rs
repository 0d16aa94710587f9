//! EHLO and HELO: the client introduces itself; the server lists its extensions.
//!
//! Either verb may be repeated at any time outside DATA; it drops any open transaction
//! (RFC 5321 §4.1.4) and leaves the session [`State::Ready`]. The EHLO reply offers
//! PIPELINING, SIZE (the policy's maximum), 8BITMIME, SMTPUTF8 and ENHANCEDSTATUSCODES; STARTTLS
//! while the policy allows it and the session is not encrypted; `AUTH PLAIN LOGIN` over
//! TLS when the policy has users; REQUIRETLS (RFC 8689) over TLS; SMTPUTF8 (RFC 6531), CHUNKING (RFC 3030) and DSN (RFC 3461). Neither reply carries an enhanced status
//! code (RFC 2034 §3).

use super::reply::line;
use super::{Session, State};

impl Session {
    pub(super) fn ehlo(&mut self, domain: String) {
        self.greeted(domain, true);
        let size = self.policy.max_message_size.to_string();
        let out = &mut self.output;
        line(out, 250, b'-', None, &self.policy.hostname);
        line(out, 250, b'-', None, "PIPELINING");
        line(out, 250, b'-', None, &format!("SIZE {size}"));
        line(out, 250, b'-', None, "8BITMIME");
        line(out, 250, b'-', None, "SMTPUTF8");
        line(out, 250, b'-', None, "CHUNKING");
        line(out, 250, b'-', None, "DSN");
        if self.policy.starttls && !self.tls {
            line(out, 250, b'-', None, "STARTTLS");
        }
        if self.policy.auth && self.tls {
            line(out, 250, b'-', None, "AUTH PLAIN LOGIN");
        }
        if self.tls {
            line(out, 250, b'-', None, "REQUIRETLS");
        }
        line(out, 250, b' ', None, "ENHANCEDSTATUSCODES");
        self.errors = 0;
    }

    pub(super) fn helo(&mut self, domain: String) {
        self.greeted(domain, false);
        line(&mut self.output, 250, b' ', None, &self.policy.hostname);
        self.errors = 0;
    }

    fn greeted(&mut self, domain: String, esmtp: bool) {
        self.helo = Some(domain);
        self.esmtp = esmtp;
        self.reset_transaction();
        debug_assert_eq!(self.state, State::Ready);
    }
}
