//! Bindings (egress identities, KumoMTA's "egress sources", Momentum's "bindings"): a
//! source address and an EHLO name that outbound connections use.
//!
//! A message picks its binding at reception: the `X-Impulse-Binding: NAME` header (taken
//! out of the message before it is stored, so it never leaves Impulse), else
//! `delivery.default_binding`, else none (the system's own address and
//! `delivery.ehlo_name`). A header naming no configured binding refuses the message
//! (`554 5.3.0`): sending from the wrong address would spend the wrong reputation.
//!
//! Each binding × destination domain is a queue of its own — its own domain container,
//! connections, limits and retries. Its key, as the router and the spool know it, is
//! `BINDING/DOMAIN` (`DOMAIN` alone without a binding; a binding name has no `/`).
//! Plain functions.

use std::net::IpAddr;

use impulse_config::Config;

/// The header that names a binding.
pub const HEADER: &str = "X-Impulse-Binding";

/// The queue key of `domain` for `binding`.
pub fn queue_key(domain: &str, binding: Option<&str>) -> String {
    match binding {
        Some(b) => format!("{b}/{domain}"),
        None => domain.to_string(),
    }
}

/// `(binding, domain)` of a queue key.
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((b, d)) => (Some(b), d),
        None => (None, key),
    }
}

/// What a connection of a binding uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    /// The binding's name; none for the system's own identity.
    pub name: Option<String>,
    pub source: Option<IpAddr>,
    pub ehlo_name: String,
}

impl Egress {
    /// The identity of binding `name` in `cfg` (the system's own without a name, or
    /// when the binding is gone from the config — the caller may say so).
    pub fn of(cfg: &Config, name: Option<&str>) -> Egress {
        let found = name.and_then(|n| cfg.bindings.get(n).map(|b| (n, b)));
        match found {
            Some((n, b)) => Egress {
                name: Some(n.to_string()),
                source: Some(b.source),
                ehlo_name: b
                    .ehlo_name
                    .clone()
                    .unwrap_or_else(|| cfg.delivery.ehlo_name.clone()),
            },
            None => Egress {
                name: None,
                source: None,
                ehlo_name: cfg.delivery.ehlo_name.clone(),
            },
        }
    }
}

/// The binding a message asks for (`header`, the value of [`HEADER`] if present): the
/// named one, else the default; `Err` for a name the config does not have.
pub fn choose(cfg: &Config, header: Option<&str>) -> Result<Option<String>, String> {
    match header {
        Some(name) if cfg.bindings.contains_key(name) => Ok(Some(name.to_string())),
        Some(name) => Err(format!("unknown binding {name:?} in {HEADER}")),
        None => Ok(cfg.delivery.default_binding.clone()),
    }
}

/// Take the [`HEADER`] out of `message`'s header block: its (trimmed, unfolded) value,
/// and the message without it (`None` when the header is absent: nothing changes).
pub fn take_header(message: &[u8]) -> (Option<String>, Option<Vec<u8>>) {
    let mut pos = 0;
    let mut found: Option<(usize, usize, String)> = None;
    while pos < message.len() {
        let end = memchr::memchr(b'\n', &message[pos..]).map_or(message.len(), |i| pos + i + 1);
        let line = &message[pos..end];
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            break; // end of the header block
        }
        let folded = bare[0] == b' ' || bare[0] == b'\t';
        match &mut found {
            Some((_, stop, value)) if folded && *stop == pos => {
                value.push(' ');
                value.push_str(String::from_utf8_lossy(bare).trim());
                *stop = end;
            }
            None if !folded => {
                let name = HEADER.as_bytes();
                if bare.len() > name.len()
                    && bare[..name.len()].eq_ignore_ascii_case(name)
                    && bare[name.len()] == b':'
                {
                    let value = String::from_utf8_lossy(&bare[name.len() + 1..])
                        .trim()
                        .to_string();
                    found = Some((pos, end, value));
                }
            }
            _ => {}
        }
        pos = end;
    }
    match found {
        None => (None, None),
        Some((start, stop, value)) => {
            let mut out = Vec::with_capacity(message.len() - (stop - start));
            out.extend_from_slice(&message[..start]);
            out.extend_from_slice(&message[stop..]);
            (Some(value.trim().to_string()), Some(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(queue_key("example.com", None), "example.com");
        assert_eq!(queue_key("example.com", Some("b1")), "b1/example.com");
        assert_eq!(split_key("b1/example.com"), (Some("b1"), "example.com"));
        assert_eq!(split_key("example.com"), (None, "example.com"));
    }

    #[test]
    fn take_header_table() {
        for (input, value, rest) in [
            (
                &b"X-Impulse-Binding: b2\r\nSubject: s\r\n\r\nbody"[..],
                Some("b2"),
                Some(&b"Subject: s\r\n\r\nbody"[..]),
            ),
            (
                b"Subject: s\r\nx-impulse-binding:  b3  \r\nTo: t\r\n\r\nbody",
                Some("b3"),
                Some(&b"Subject: s\r\nTo: t\r\n\r\nbody"[..]),
            ),
            (
                b"X-Impulse-Binding:\r\n b4\r\nTo: t\r\n\r\n",
                Some("b4"),
                Some(&b"To: t\r\n\r\n"[..]),
            ),
            // In the body it is not a header.
            (b"Subject: s\r\n\r\nX-Impulse-Binding: b5\r\n", None, None),
            // A longer header name is another header.
            (b"X-Impulse-Bindings: b6\r\n\r\n", None, None),
            (b"Subject: s\r\n\r\n", None, None),
        ] {
            let (v, r) = take_header(input);
            assert_eq!(v.as_deref(), value, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(r.as_deref(), rest, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn choose_the_named_the_default_or_refuse() {
        let cfg: Config = Config::from_ron(
            "(bindings: { \"b1\": (source: \"127.0.0.2\"), \"b2\": (source: \"127.0.0.3\", ehlo_name: \"b2.test\") }, delivery: (default_binding: \"b1\", ehlo_name: \"mta.test\"))",
            "t.ron",
        )
        .unwrap();
        assert_eq!(choose(&cfg, Some("b2")), Ok(Some("b2".into())));
        assert_eq!(choose(&cfg, None), Ok(Some("b1".into())));
        assert!(choose(&cfg, Some("nope")).unwrap_err().contains("nope"));
        let b1 = Egress::of(&cfg, Some("b1"));
        assert_eq!(b1.source, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(b1.ehlo_name, "mta.test", "no ehlo_name: delivery.ehlo_name");
        assert_eq!(Egress::of(&cfg, Some("b2")).ehlo_name, "b2.test");
        assert_eq!(Egress::of(&cfg, None).source, None);
    }
}
