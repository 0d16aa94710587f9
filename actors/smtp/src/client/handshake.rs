//! Opening of the session: the server's greeting, then EHLO, falling back to HELO when
//! EHLO is refused with 5xx (RFC 5321 §3.2, §4.1.4).
//!
//! A greeting other than 220, a 4xx to EHLO, or a refused HELO make the connection
//! unusable (`Failed`). A successful EHLO records the server's [`Capabilities`].

use super::{Capabilities, ClientSession, Expect};
use crate::reply::Reply;

impl ClientSession {
    pub(super) fn on_greeting(&mut self, reply: Reply) {
        if reply.code != 220 {
            self.fail(Some(reply), "server greeting was not 220");
            return;
        }
        self.send_hello("EHLO ", Expect::Ehlo);
    }

    pub(super) fn on_ehlo(&mut self, reply: Reply) {
        if reply.is_positive_completion() {
            self.caps = Capabilities::from_ehlo(&reply);
            self.after_ehlo();
        } else if reply.is_permanent() {
            self.send_hello("HELO ", Expect::Helo);
        } else {
            self.fail(Some(reply), "EHLO was not accepted");
        }
    }

    pub(super) fn on_helo(&mut self, reply: Reply) {
        if reply.is_positive_completion() {
            self.caps = Capabilities::default();
            // No extensions, so no STARTTLS: `Required` gives up here.
            self.after_ehlo();
        } else {
            self.fail(Some(reply), "EHLO and HELO were both refused");
        }
    }

    pub(super) fn send_hello(&mut self, verb: &str, expect: Expect) {
        self.out.extend_from_slice(verb.as_bytes());
        self.out.extend_from_slice(self.ehlo_name.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self.expects.push_back(expect);
    }
}
