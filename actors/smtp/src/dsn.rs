//! DSN parameters (RFC 3461): `RET` and `ENVID` on MAIL, `NOTIFY` and `ORCPT` on RCPT —
//! their syntax, and the one-string form they are kept in with the message (in the spool
//! record and the queued record) so the bounce generator can honour them after any
//! number of restarts. Pure.
//!
//! Stored form (only when some parameter was given): the first line `RET<TAB>ENVID`,
//! then one line per recipient, in the record's order, `NOTIFY<TAB>ORCPT`; empty fields
//! for parameters not given. ENVID and ORCPT stay in their xtext form, as the client
//! sent them and as reports quote them.

/// `RET=`: what a failure report returns of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// `NOTIFY=`: when the sender wants a report for a recipient.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// Whether a failure report is wanted (the default without NOTIFY).
    pub fn wants_failure(n: Option<Notify>) -> bool {
        n.is_none_or(|n| n.failure)
    }

    /// As the parameter's value: `NEVER`, or `SUCCESS,FAILURE,DELAY` (those given).
    pub fn text(&self) -> String {
        if self.never {
            return "NEVER".into();
        }
        let mut v = Vec::new();
        for (on, name) in [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ] {
            if on {
                v.push(name);
            }
        }
        v.join(",")
    }
}

/// Parse a `NOTIFY=` value: `NEVER`, or a comma list of SUCCESS, FAILURE, DELAY.
pub fn parse_notify(value: &str) -> Result<Notify, &'static str> {
    const BAD: &str = "Bad NOTIFY parameter";
    let mut n = Notify::default();
    for word in value.split(',') {
        let seen = match word.to_ascii_uppercase().as_str() {
            "NEVER" => std::mem::replace(&mut n.never, true),
            "SUCCESS" => std::mem::replace(&mut n.success, true),
            "FAILURE" => std::mem::replace(&mut n.failure, true),
            "DELAY" => std::mem::replace(&mut n.delay, true),
            _ => return Err(BAD),
        };
        if seen {
            return Err(BAD);
        }
    }
    if n.never && (n.success || n.failure || n.delay) {
        return Err("NOTIFY=NEVER cannot be combined");
    }
    Ok(n)
}

/// Whether `s` is xtext (RFC 3461 §4): printable ASCII but `+` and `=`, or `+XX` hex.
pub fn is_xtext(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
                if i + 2 >= b.len() || !hex(b[i + 1]) || !hex(b[i + 2]) {
                    return false;
                }
                i += 3;
            }
            b'=' => return false,
            0x21..=0x7e => i += 1,
            _ => return false,
        }
    }
    true
}

/// Check an `ENVID=` value (xtext, at most 100 characters).
pub fn check_envid(value: &str) -> Result<(), &'static str> {
    if value.is_empty() || value.len() > 100 || !is_xtext(value) {
        return Err("Bad ENVID parameter");
    }
    Ok(())
}

/// Check an `ORCPT=` value: `addr-type;xtext` (`rfc822;user@example.com`); a `utf-8`
/// address type may carry UTF-8 (RFC 6533).
pub fn check_orcpt(value: &str) -> Result<(), &'static str> {
    const BAD: &str = "Bad ORCPT parameter";
    let (kind, addr) = value.split_once(';').ok_or(BAD)?;
    let atom = !kind.is_empty() && kind.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    if !atom || addr.is_empty() || addr.len() > 500 {
        return Err(BAD);
    }
    let ok = if kind.eq_ignore_ascii_case("utf-8") {
        !addr.chars().any(|c| c.is_control() || c == ' ')
    } else {
        is_xtext(addr)
    };
    ok.then_some(()).ok_or(BAD)
}

/// One recipient's DSN parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptDsn {
    pub notify: Option<Notify>,
    pub orcpt: Option<String>,
}

/// A message's DSN parameters, for the recipients of one stored record — and, kept the
/// same way though it is no DSN parameter, REQUIRETLS (RFC 8689).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnParams {
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    /// `REQUIRETLS` was given on MAIL: the message travels only over TLS.
    pub requiretls: bool,
    /// Aligned with the record's recipients.
    pub recipients: Vec<RcptDsn>,
}

impl DsnParams {
    /// Whether any parameter was given (otherwise nothing needs keeping).
    pub fn is_empty(&self) -> bool {
        self.ret.is_none()
            && self.envid.is_none()
            && !self.requiretls
            && self
                .recipients
                .iter()
                .all(|r| r.notify.is_none() && r.orcpt.is_none())
    }

    /// The stored form (see the module documentation); empty when [`is_empty`](Self::is_empty).
    pub fn encode(&self) -> String {
        if self.is_empty() {
            return String::new();
        }
        let ret = match self.ret {
            Some(Ret::Full) => "FULL",
            Some(Ret::Hdrs) => "HDRS",
            None => "",
        };
        let mut out = format!("{ret}\t{}", self.envid.as_deref().unwrap_or(""));
        if self.requiretls {
            out.push_str("\tREQUIRETLS");
        }
        for r in &self.recipients {
            out.push('\n');
            out.push_str(&r.notify.map(|n| n.text()).unwrap_or_default());
            out.push('\t');
            out.push_str(r.orcpt.as_deref().unwrap_or(""));
        }
        out
    }

    /// Read the stored form back; an empty string is no parameters.
    pub fn decode(s: &str) -> DsnParams {
        let mut lines = s.split('\n');
        let Some(first) = lines.next().filter(|l| !l.is_empty()) else {
            return DsnParams::default();
        };
        let mut head = first.split('\t');
        let (ret, envid) = (head.next().unwrap_or(""), head.next().unwrap_or(""));
        let requiretls = head.any(|f| f == "REQUIRETLS");
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        DsnParams {
            ret: match ret {
                "FULL" => Some(Ret::Full),
                "HDRS" => Some(Ret::Hdrs),
                _ => None,
            },
            envid: some(envid),
            requiretls,
            recipients: lines
                .map(|l| {
                    let (n, o) = l.split_once('\t').unwrap_or((l, ""));
                    RcptDsn {
                        notify: (!n.is_empty()).then(|| parse_notify(n).ok()).flatten(),
                        orcpt: some(o),
                    }
                })
                .collect(),
        }
    }

    /// The parameters of recipient `i` (none given: the defaults).
    pub fn recipient(&self, i: usize) -> RcptDsn {
        self.recipients.get(i).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_values() {
        assert_eq!(
            parse_notify("success,Failure"),
            Ok(Notify {
                success: true,
                failure: true,
                ..Default::default()
            })
        );
        assert_eq!(
            parse_notify("NEVER"),
            Ok(Notify {
                never: true,
                ..Default::default()
            })
        );
        for bad in ["", "NEVER,FAILURE", "SOMETIMES", "DELAY,DELAY", "FAILURE,"] {
            assert!(parse_notify(bad).is_err(), "{bad:?}");
        }
        assert!(Notify::wants_failure(None));
        assert!(!Notify::wants_failure(Some(Notify {
            never: true,
            ..Default::default()
        })));
        assert!(!Notify::wants_failure(parse_notify("SUCCESS").ok()));
    }

    #[test]
    fn xtext_envid_and_orcpt() {
        assert!(is_xtext("abc+2Bdef"));
        assert!(!is_xtext("a=b"));
        assert!(!is_xtext("a+2"));
        assert!(!is_xtext("a+zz"));
        assert!(!is_xtext("a b"));
        assert!(check_envid("QQ314159").is_ok());
        assert!(check_envid(&"x".repeat(101)).is_err());
        assert!(check_orcpt("rfc822;user@example.com").is_ok());
        assert!(check_orcpt("utf-8;jöran@bücher.example").is_ok());
        assert!(check_orcpt("rfc822").is_err());
        assert!(check_orcpt(";user@x").is_err());
        assert!(check_orcpt("rfc822;a b@x").is_err());
    }

    #[test]
    fn the_stored_form_round_trips() {
        let p = DsnParams {
            ret: Some(Ret::Hdrs),
            envid: Some("QQ314159".into()),
            requiretls: false,
            recipients: vec![
                RcptDsn {
                    notify: parse_notify("SUCCESS,DELAY").ok(),
                    orcpt: Some("rfc822;a@b".into()),
                },
                RcptDsn::default(),
                RcptDsn {
                    notify: parse_notify("NEVER").ok(),
                    orcpt: None,
                },
            ],
        };
        let s = p.encode();
        assert_eq!(s, "HDRS\tQQ314159\nSUCCESS,DELAY\trfc822;a@b\n\t\nNEVER\t");
        assert_eq!(DsnParams::decode(&s), p);
        assert_eq!(DsnParams::default().encode(), "");
        assert_eq!(DsnParams::decode(""), DsnParams::default());
        let none = DsnParams {
            recipients: vec![RcptDsn::default()],
            ..Default::default()
        };
        assert!(none.is_empty());
        assert_eq!(p.recipient(7), RcptDsn::default());
        let tls = DsnParams {
            requiretls: true,
            recipients: vec![RcptDsn::default()],
            ..Default::default()
        };
        assert_eq!(tls.encode(), "\t\tREQUIRETLS\n\t");
        assert_eq!(DsnParams::decode(&tls.encode()), tls);
    }
}
