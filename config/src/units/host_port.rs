//! [`HostPort`]: a next hop written `"host:port"` — a DNS name, an IPv4 address, or a
//! bracketed IPv6 address (`"[::1]:2526"`), always with an explicit non-zero port.

use std::{fmt, net::Ipv6Addr, str::FromStr};

use crate::ConfigError;

/// A host and port, e.g. a `routes` value `"127.0.0.1:2526"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    /// The host: a name or an IP address, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (non-zero).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for HostPort {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::Value(format!("{s:?} is not host:port: {why}"));
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| bad("expected \"[v6-address]:port\""))?;
            h.parse::<Ipv6Addr>()
                .map_err(|_| bad("the bracketed host is not an IPv6 address"))?;
            (h, p)
        } else {
            let (h, p) = s
                .rsplit_once(':')
                .ok_or_else(|| bad("the port is missing"))?;
            if h.contains(':') {
                return Err(bad("write an IPv6 host in brackets, like \"[::1]:25\""));
            }
            let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
            if h.is_empty() || !h.chars().all(valid) {
                return Err(bad("the host must be a domain name or an IP address"));
            }
            (h, p)
        };
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port must be a number from 1 to 65535"))?;
        if port == 0 {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

super::string_serde!(HostPort, "a \"host:port\" string");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for (text, host, port) in [
            ("127.0.0.1:2526", "127.0.0.1", 2526),
            ("mx.example.com:25", "mx.example.com", 25),
            ("[::1]:2526", "::1", 2526),
            ("localhost:587", "localhost", 587),
        ] {
            let hp: HostPort = text.parse().unwrap();
            assert_eq!((hp.host(), hp.port()), (host, port));
            assert_eq!(hp.to_string(), text);
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "example.com",
            "example.com:",
            ":25",
            "example.com:0",
            "example.com:65536",
            "::1:25",
            "[::1]25",
            "[nothost]:25",
            "ex ample.com:25",
            "example.com:x",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad:?}");
        }
    }
}
