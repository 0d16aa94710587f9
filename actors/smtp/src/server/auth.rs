//! AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms, on the session's
//! side: the SASL exchange and the replies. Checking the password is the actor's (on
//! its pool): the session hands the credentials out as [`Event::Auth`] and waits, paused
//! like for a store, until [`Session::auth_done`].
//!
//! AUTH is offered in the EHLO reply only over TLS and when the policy has users. Without
//! TLS it gets `538 5.7.11` (encryption required); where it is not offered at all, `502
//! 5.5.1`; a second AUTH after success, or one inside a transaction, `503 5.5.1`; an
//! unknown mechanism `504 5.5.4`. A response of `*` cancels (`501 5.0.0`); one that is
//! not base64, or a PLAIN response without its two NULs, `501 5.5.2`. Success is `235
//! 2.7.0`, failure `535 5.7.8`. A PLAIN authorization identity other than the
//! authentication identity is refused (no proxy authorization).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::reply::single;
use super::{Event, Session, State};

/// Longest SASL response line accepted (RFC 4954 §4: at least 12 288 octets).
pub const MAX_SASL_LINE: usize = 12_288;

/// Where a SASL exchange stands: waiting for the client's next response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sasl {
    /// PLAIN without an initial response: `334 ` was sent.
    Plain,
    /// LOGIN: `334 Username:` was sent.
    LoginUser,
    /// LOGIN: `334 Password:` was sent for `user`.
    LoginPassword { user: String },
}

/// A PLAIN response: authorization identity NUL authentication identity NUL password.
fn plain(decoded: &[u8]) -> Option<(String, String)> {
    let mut parts = decoded.split(|&b| b == 0);
    let (authz, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || user.is_empty() {
        return None;
    }
    if !authz.is_empty() && authz != user {
        return None;
    }
    Some((
        String::from_utf8(user.to_vec()).ok()?,
        String::from_utf8(password.to_vec()).ok()?,
    ))
}

impl Session {
    pub(super) fn auth(&mut self, mechanism: String, initial: Option<String>) {
        if !self.policy.auth {
            return self.not_implemented();
        }
        if !self.tls {
            return self.reply(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            );
        }
        if self.auth_user.is_some() {
            return self.reply(503, "5.5.1", "Already authenticated");
        }
        match self.state {
            State::Greeted => return self.reply(503, "5.5.1", "Send EHLO first"),
            State::Mail | State::Rcpt => {
                return self.reply(503, "5.5.1", "AUTH not allowed in a transaction")
            }
            _ => {}
        }
        match (mechanism.as_str(), initial) {
            ("PLAIN", None) => self.challenge(Sasl::Plain, ""),
            ("PLAIN", Some(ir)) => self.sasl_response(Sasl::Plain, ir.as_bytes()),
            ("LOGIN", None) => self.challenge(Sasl::LoginUser, "VXNlcm5hbWU6"),
            ("LOGIN", Some(ir)) => self.sasl_response(Sasl::LoginUser, ir.as_bytes()),
            _ => self.reply(504, "5.5.4", "Unrecognized authentication type"),
        }
    }

    fn challenge(&mut self, next: Sasl, text: &str) {
        single(&mut self.output, 334, None, text);
        self.sasl = Some(next);
    }

    /// A line while a SASL exchange waits for the client.
    pub(super) fn sasl_line(&mut self, line: &[u8]) {
        let Some(step) = self.sasl.take() else {
            return;
        };
        self.sasl_response(step, line);
    }

    fn sasl_response(&mut self, step: Sasl, response: &[u8]) {
        if response == b"*" {
            return self.reply(501, "5.0.0", "Authentication cancelled");
        }
        // "=" is an empty initial response (RFC 4954 §4).
        let decoded = if response == b"=" {
            Ok(Vec::new())
        } else {
            STANDARD.decode(response)
        };
        let Ok(decoded) = decoded else {
            return self.reply(501, "5.5.2", "Cannot decode response");
        };
        match step {
            Sasl::Plain => match plain(&decoded) {
                Some((user, password)) => self.check(user, password),
                None => self.reply(501, "5.5.2", "Bad PLAIN response"),
            },
            Sasl::LoginUser => match String::from_utf8(decoded) {
                Ok(user) if !user.is_empty() => {
                    self.challenge(Sasl::LoginPassword { user }, "UGFzc3dvcmQ6")
                }
                _ => self.reply(501, "5.5.2", "Bad user name"),
            },
            Sasl::LoginPassword { user } => match String::from_utf8(decoded) {
                Ok(password) => self.check(user, password),
                Err(_) => self.reply(501, "5.5.2", "Bad password encoding"),
            },
        }
    }

    fn check(&mut self, user: String, password: String) {
        self.events.push_back(Event::Auth { user, password });
        self.state = State::AuthWaiting;
    }

    /// Answer the credentials handed out as [`Event::Auth`]: `user` when they were
    /// right, none when not. Resumes processing input. Ignored unless the session waits
    /// in [`State::AuthWaiting`].
    pub fn auth_done(&mut self, user: Option<String>) {
        if self.state != State::AuthWaiting {
            return;
        }
        self.state = State::Ready;
        match user {
            Some(u) => {
                self.auth_user = Some(u);
                self.reply(235, "2.7.0", "Authentication successful");
            }
            None => self.reply(535, "5.7.8", "Authentication credentials invalid"),
        }
        self.process_buffered();
    }

    /// The user the client authenticated as, if it did.
    pub fn auth_user(&self) -> Option<&str> {
        self.auth_user.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn plain_responses() {
        assert_eq!(
            plain(b"\0alice\0secret"),
            Some(("alice".into(), "secret".into()))
        );
        assert_eq!(
            plain(b"alice\0alice\0pw"),
            Some(("alice".into(), "pw".into()))
        );
        assert_eq!(plain(b"bob\0alice\0pw"), None, "no proxy authorization");
        assert_eq!(plain(b"\0\0pw"), None);
        assert_eq!(plain(b"alice\0pw"), None);
        assert_eq!(plain(b"\0a\0b\0c"), None);
        assert_eq!(plain(b"\0a\0\xff"), None);
        assert_eq!(plain(b"\0a\0"), Some(("a".into(), String::new())));
    }
}
