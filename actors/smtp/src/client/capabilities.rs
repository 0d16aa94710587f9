//! The service extensions a server advertised in its EHLO reply (RFC 5321 §4.1.1.1).
//!
//! Only the keywords the client acts on are recorded; unknown keywords are ignored. After a
//! HELO fallback the capabilities stay empty (no extensions).

use crate::reply::Reply;

/// Extensions advertised by the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// PIPELINING (RFC 2920): commands may be sent in groups.
    pub pipelining: bool,
    /// SIZE (RFC 1870): `Some(0)` when advertised without a fixed maximum.
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// CHUNKING (RFC 3030).
    pub chunking: bool,
    /// REQUIRETLS (RFC 8689).
    pub requiretls: bool,
    /// DSN (RFC 3461): the server takes RET, ENVID, NOTIFY and ORCPT.
    pub dsn: bool,
}

impl Capabilities {
    /// Reads the keywords from a positive EHLO reply; the first line (the server's name
    /// and greeting) is skipped.
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut caps = Self::default();
        for line in reply.lines().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let is = |name: &str| keyword.eq_ignore_ascii_case(name);
            if is("PIPELINING") {
                caps.pipelining = true;
            } else if is("SIZE") {
                let limit = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                caps.size = Some(limit);
            } else if is("8BITMIME") {
                caps.eight_bit_mime = true;
            } else if is("ENHANCEDSTATUSCODES") {
                caps.enhanced_status_codes = true;
            } else if is("STARTTLS") {
                caps.starttls = true;
            } else if is("SMTPUTF8") {
                caps.smtputf8 = true;
            } else if is("CHUNKING") {
                caps.chunking = true;
            } else if is("REQUIRETLS") {
                caps.requiretls = true;
            } else if is("DSN") {
                caps.dsn = true;
            }
        }
        caps
    }

    /// The server's fixed maximum message size, if it advertised a non-zero one.
    pub fn size_limit(&self) -> Option<u64> {
        self.size.filter(|&n| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keywords_case_insensitively() {
        let reply = Reply::new(
            250,
            None,
            "mx.example Hello\npipelining\nSIZE 1000\n8BITMIME\nENHANCEDSTATUSCODES\n\
             STARTTLS\nSMTPUTF8\nCHUNKING\nX-UNKNOWN 1",
        );
        let caps = Capabilities::from_ehlo(&reply);
        assert!(caps.pipelining && caps.eight_bit_mime && caps.enhanced_status_codes);
        assert!(caps.starttls && caps.smtputf8 && caps.chunking);
        assert_eq!(caps.size_limit(), Some(1000));
    }

    #[test]
    fn greeting_line_is_not_a_keyword_and_size_may_be_bare() {
        let caps = Capabilities::from_ehlo(&Reply::new(250, None, "PIPELINING\nSIZE"));
        assert!(!caps.pipelining);
        assert_eq!(caps.size, Some(0));
        assert_eq!(caps.size_limit(), None);
    }
}
