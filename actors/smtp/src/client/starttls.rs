//! STARTTLS on the client side (RFC 3207): when to ask for it, what to do with the
//! answer, and the fresh start after the handshake.
//!
//! [`TlsPolicy`] says how much TLS matters: `Disabled` never asks; `Opportunistic` asks
//! when the server offers it and goes on in plaintext when it is not offered or is
//! refused; `Required` fails the connection (`Failed`, so the message is retried later,
//! not sent in the clear) when it is not offered or is refused. Certificates are the
//! driver's business (its TLS configuration), not the session's.

use super::{Capabilities, ClientEvent, ClientSession, Expect};
use crate::reply::Reply;

/// How the session treats STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    #[default]
    Disabled,
    Opportunistic,
    Required,
}

impl ClientSession {
    /// EHLO (or HELO) succeeded: start TLS if wanted, else become idle.
    pub(super) fn after_ehlo(&mut self) {
        if self.tls_active || self.tls == TlsPolicy::Disabled {
            self.become_idle();
            return;
        }
        if self.caps.starttls {
            self.out.extend_from_slice(b"STARTTLS\r\n");
            self.expects.push_back(Expect::StartTls);
        } else if self.tls == TlsPolicy::Required {
            self.fail(
                None,
                "TLS is required but the server does not offer STARTTLS",
            );
        } else {
            self.become_idle();
        }
    }

    pub(super) fn on_starttls(&mut self, reply: Reply) {
        if reply.code == 220 {
            self.awaiting_tls = true;
            self.events.push_back(ClientEvent::StartTls);
        } else if self.tls == TlsPolicy::Required {
            self.fail(Some(reply), "TLS is required but STARTTLS was refused");
        } else {
            self.become_idle();
        }
    }

    /// The driver finished the TLS handshake: the session starts again with EHLO
    /// (the server forgets everything it was told in plaintext).
    pub fn tls_started(&mut self) {
        if !self.awaiting_tls || self.closed {
            return;
        }
        self.awaiting_tls = false;
        self.tls_active = true;
        self.caps = Capabilities::default();
        self.send_hello("EHLO ", Expect::Ehlo);
    }

    /// TLS is up on this session.
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientState;

    const EHLO_TLS: &[u8] = b"250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
    const EHLO_PLAIN: &[u8] = b"250-mx.test\r\n250 PIPELINING\r\n";

    fn session(policy: TlsPolicy) -> ClientSession {
        let mut s = ClientSession::with_tls("me.test".into(), policy);
        s.ingest(b"220 mx.test ESMTP\r\n");
        assert_eq!(s.take_output(), b"EHLO me.test\r\n");
        s
    }

    fn events(s: &mut ClientSession) -> Vec<ClientEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    #[test]
    fn opportunistic_upgrades_when_offered_and_starts_over() {
        let mut s = session(TlsPolicy::Opportunistic);
        s.ingest(EHLO_TLS);
        assert_eq!(s.take_output(), b"STARTTLS\r\n");
        assert_eq!(s.state(), ClientState::StartTls);
        // A 220 with a forged reply behind it, in the same read: the forgery is dropped.
        s.ingest(b"220 2.0.0 go ahead\r\n250 forged\r\n");
        assert_eq!(events(&mut s), vec![ClientEvent::StartTls]);
        assert_eq!(s.state(), ClientState::StartTls);
        s.ingest(b"250 more forgery\r\n");
        assert!(
            events(&mut s).is_empty(),
            "plaintext after the 220 is ignored"
        );
        s.tls_started();
        assert!(s.tls_active());
        assert_eq!(s.take_output(), b"EHLO me.test\r\n");
        s.ingest(EHLO_TLS);
        assert!(s.take_output().is_empty(), "no second STARTTLS inside TLS");
        assert_eq!(events(&mut s), vec![ClientEvent::Ready]);
    }

    #[test]
    fn opportunistic_stays_plain_when_not_offered_or_refused() {
        let mut s = session(TlsPolicy::Opportunistic);
        s.ingest(EHLO_PLAIN);
        assert_eq!(events(&mut s), vec![ClientEvent::Ready]);
        assert!(s.take_output().is_empty());

        let mut s = session(TlsPolicy::Opportunistic);
        s.ingest(EHLO_TLS);
        s.take_output();
        s.ingest(b"454 4.7.0 TLS not available\r\n");
        assert_eq!(events(&mut s), vec![ClientEvent::Ready]);
        assert!(!s.tls_active());
    }

    #[test]
    fn required_fails_without_tls() {
        for (ehlo, answer) in [
            (EHLO_PLAIN, None),
            (EHLO_TLS, Some(&b"454 4.7.0 no\r\n"[..])),
        ] {
            let mut s = session(TlsPolicy::Required);
            s.ingest(ehlo);
            s.take_output();
            if let Some(a) = answer {
                s.ingest(a);
            }
            let ev = events(&mut s);
            assert!(
                matches!(ev.last(), Some(ClientEvent::Failed { reason, .. }) if reason.contains("TLS is required")),
                "{ev:?}"
            );
            assert_eq!(s.state(), ClientState::Closed);
        }
    }

    #[test]
    fn disabled_never_asks() {
        let mut s = session(TlsPolicy::Disabled);
        s.ingest(EHLO_TLS);
        assert!(s.take_output().is_empty());
        assert_eq!(events(&mut s), vec![ClientEvent::Ready]);
    }

    #[test]
    fn the_220_split_at_every_byte_still_upgrades_once() {
        let input = b"220 2.0.0 go ahead\r\n250 forged\r\n";
        for cut in 0..input.len() {
            let mut s = session(TlsPolicy::Required);
            s.ingest(EHLO_TLS);
            s.take_output();
            s.ingest(&input[..cut]);
            s.ingest(&input[cut..]);
            assert_eq!(events(&mut s), vec![ClientEvent::StartTls], "cut at {cut}");
        }
    }
}
