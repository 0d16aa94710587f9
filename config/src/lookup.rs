//! The questions the daemon asks of a loaded [`Config`]: the static route and the limits
//! for a destination domain, whether a client may relay, the greeting name of a
//! listener, and the paths under `data_dir`. Domain names match case-insensitively and
//! a trailing dot is ignored; `"*"` is the fallback entry of each map.

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf};

use crate::{Config, DomainCfg, ListenerCfg};

/// The entry for `domain` in a map keyed by domain: exact name, then a case-insensitive
/// match, then `"*"`.
fn by_domain<'a, V>(map: &'a BTreeMap<String, V>, domain: &str) -> Option<&'a V> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    map.get(domain)
        .or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(domain))
                .map(|(_, v)| v)
        })
        .or_else(|| map.get("*"))
}

impl Config {
    /// The static next hop (`"host:port"`) for mail to `domain`, if `routes` names it or
    /// has a `"*"` entry; `None` means deliver by MX lookup.
    pub fn route(&self, domain: &str) -> Option<&str> {
        by_domain(&self.routes, domain).map(String::as_str)
    }

    /// The limits for mail to `domain`: its own entry, else `"*"`, else the built-in
    /// defaults.
    pub fn domain(&self, domain: &str) -> DomainCfg {
        by_domain(&self.domains, domain)
            .cloned()
            .unwrap_or_default()
    }

    /// True when a client at `ip` may relay without AUTH (IPv4-mapped IPv6 addresses
    /// match IPv4 networks).
    pub fn relay_allowed(&self, ip: IpAddr) -> bool {
        self.relay.allow.iter().any(|c| c.contains(ip))
    }

    /// The name a listener gives in its greeting and EHLO reply.
    pub fn greeting_name<'a>(&'a self, listener: &'a ListenerCfg) -> &'a str {
        listener.hostname.as_deref().unwrap_or(&self.smtp.hostname)
    }

    /// `DATA_DIR/spool`.
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }

    /// `DATA_DIR/logs`.
    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    /// `DATA_DIR/control.sock`.
    pub fn control_socket(&self) -> PathBuf {
        self.data_dir.join("control.sock")
    }
}
