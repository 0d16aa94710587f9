//! The envelope of one message: what MAIL FROM and RCPT TO said.
//!
//! Shared by the server session (which builds it), the actors (which spool and route it)
//! and the client session (which replays it to the next hop). Addresses are kept as the
//! bare path between the angle brackets; the null reverse-path `<>` is the empty string.

/// The SMTP envelope of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Reverse-path without angle brackets; empty for the null sender `<>`.
    pub sender: String,
    /// Forward-paths without angle brackets, in the order the client gave them.
    pub recipients: Vec<String>,
    /// `BODY=8BITMIME` was given on MAIL FROM.
    pub body_8bit: bool,
    /// `SIZE=` declared on MAIL FROM, if any.
    pub declared_size: Option<u64>,
    /// `SMTPUTF8` was given on MAIL FROM (RFC 6531).
    pub smtputf8: bool,
    /// DSN parameters (RFC 3461), their recipients aligned with `recipients`.
    pub dsn: crate::dsn::DsnParams,
}

impl Envelope {
    /// Whether delivering it needs SMTPUTF8 of the next hop: a UTF-8 address, or the
    /// client asked for it.
    pub fn needs_smtputf8(&self) -> bool {
        self.smtputf8 || !self.sender.is_ascii() || self.recipients.iter().any(|r| !r.is_ascii())
    }
}

/// The domain part of an address (after the last `@`), lower-cased; empty if none.
pub fn domain_of(address: &str) -> String {
    match address.rfind('@') {
        Some(at) => address[at + 1..].to_ascii_lowercase(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_lowercased_part_after_last_at() {
        assert_eq!(domain_of("a@Example.COM"), "example.com");
        assert_eq!(domain_of("\"x@y\"@b.org"), "b.org");
        assert_eq!(domain_of("postmaster"), "");
    }
}
