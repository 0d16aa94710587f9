//! What a sink is told at start: where to listen, what to advertise, what to keep, and
//! which scripted replies ([`Rule`]) to give instead of accepting.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// How a [`crate::Sink`] behaves. `Default` listens on `127.0.0.1:0`, advertises
/// PIPELINING and SMTPUTF8, records bodies, has no rules and does not offer STARTTLS.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Address to bind; port 0 picks a free port (read it back with [`crate::Sink::addr`]).
    pub addr: SocketAddr,
    /// Advertise PIPELINING in the EHLO reply. Pipelined commands are answered in order
    /// either way.
    pub pipelining: bool,
    /// Keep each message's data. `false` keeps only the envelope, size and Message-ID —
    /// what a benchmark needs to count and de-duplicate.
    pub record_bodies: bool,
    /// Scripted replies, tried in order; the first matching rule with attempts left wins.
    pub rules: Vec<Rule>,
    /// Offer STARTTLS with this server configuration (see [`crate::self_signed_tls`]).
    /// `None`: STARTTLS is not advertised and the command is refused with 502.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Advertise SMTPUTF8 (RFC 6531); without it a MAIL with `SMTPUTF8` gets 555.
    pub smtputf8: bool,
    /// Advertise DSN (RFC 3461) and take its parameters; without it RET, ENVID,
    /// NOTIFY and ORCPT get `555`.
    pub dsn: bool,
    /// Advertise CHUNKING (RFC 3030) and take `BDAT`; without it `BDAT` is an unknown
    /// command (500).
    pub chunking: bool,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            addr: default_addr(),
            pipelining: true,
            record_bodies: true,
            rules: Vec::new(),
            tls: None,
            smtputf8: true,
            dsn: false,
            chunking: false,
        }
    }
}

/// `127.0.0.1:0`: loopback, any free port.
pub fn default_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// Answer `reply` instead of accepting, when a recipient contains `recipient_contains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Substring looked for in the recipient address (ASCII case-insensitive, without the
    /// angle brackets).
    pub recipient_contains: String,
    /// Where the reply is given.
    pub stage: Stage,
    /// The full reply line without CRLF, e.g. `"451 4.3.0 try later"`.
    pub reply: String,
    /// `None`: every matching attempt; `Some(n)`: the first `n` matching attempts, after
    /// which the rule is spent and mail is accepted.
    pub times: Option<u32>,
}

impl Rule {
    /// A rule that always answers `reply` at `stage` for recipients containing `needle`.
    pub fn always(needle: &str, stage: Stage, reply: &str) -> Rule {
        Rule {
            recipient_contains: needle.to_string(),
            stage,
            reply: reply.to_string(),
            times: None,
        }
    }

    /// A rule that answers `reply` for the first `n` matching attempts only.
    pub fn first(n: u32, needle: &str, stage: Stage, reply: &str) -> Rule {
        Rule {
            times: Some(n),
            ..Rule::always(needle, stage, reply)
        }
    }

    /// Does this rule's needle occur in `recipient` (ASCII case-insensitive)?
    pub fn matches(&self, recipient: &str) -> bool {
        contains_ignore_case(recipient.as_bytes(), self.recipient_contains.as_bytes())
    }
}

/// The point in the transaction where a [`Rule`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The reply to `RCPT TO` for the matching recipient; that recipient is not added.
    Rcpt,
    /// The reply to the end of DATA (after the final dot) when any accepted recipient
    /// matches; the message is not recorded.
    Data,
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_matching_is_case_insensitive_substring() {
        let r = Rule::always("Bounce", Stage::Rcpt, "550 5.1.1 no");
        assert!(r.matches("user-bounce@example.com"));
        assert!(r.matches("BOUNCE@x"));
        assert!(!r.matches("boun@x"));
        assert!(Rule::always("", Stage::Data, "451 x").matches("anything"));
        assert_eq!(Rule::first(2, "a", Stage::Data, "451 x").times, Some(2));
    }

    #[test]
    fn default_is_loopback_any_port() {
        let c = SinkConfig::default();
        assert!(c.addr.ip().is_loopback());
        assert_eq!(c.addr.port(), 0);
        assert!(c.pipelining && c.record_bodies && c.rules.is_empty());
        assert!(c.tls.is_none());
    }
}
