//! The semantic checks run after parsing: everything the types alone cannot say (at
//! least one listener, no duplicate addresses, `tls_cert` with `tls_key`, routes that are
//! `host:port`, non-zero limits, `retry_interval` ≤ `max_retry_interval`, ...).
//!
//! [`problems`] reports every problem found, each with the path of the offending value,
//! so the loader can find its line and column in the text. A domain entry that only
//! inherits a bad value from `"*"` is not reported again: the `"*"` entry is.

use std::collections::{BTreeMap, BTreeSet};

use crate::{locate::Seg, Config, DomainCfg, HostPort};

/// A semantic problem: where (a path into the config) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub path: Vec<Seg>,
    pub message: String,
}

/// Collects problems, each under a path written like `domains."a.example".tls`.
#[derive(Default)]
struct Report(Vec<Problem>);

impl Report {
    fn add(&mut self, path: Vec<Seg>, what: impl Into<String>) {
        let message = format!("{}: {}", render(&path), what.into());
        self.0.push(Problem { path, message });
    }
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) => {
                let plain =
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !out.is_empty() {
                    out.push('.');
                }
                if plain {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("{k:?}"));
                }
            }
        }
    }
    out
}

/// Every semantic problem in `cfg`.
pub(crate) fn problems(cfg: &Config) -> Vec<Problem> {
    let mut r = Report::default();
    if cfg.data_dir.as_os_str().is_empty() {
        r.add(vec![key("data_dir")], "must not be empty");
    }
    listeners(cfg, &mut r);
    auth(cfg, &mut r);
    for (domain, target) in &cfg.routes {
        if let Err(e) = target.parse::<HostPort>() {
            r.add(vec![key("routes"), key(domain)], e.to_string());
        }
    }
    names(&mut r, "routes", cfg.routes.keys());
    if cfg.delivery.port == 0 {
        r.add(vec![key("delivery"), key("port")], "must not be 0");
    }
    if let Some(b) = &cfg.delivery.default_binding {
        if !cfg.bindings.contains_key(b) {
            r.add(
                vec![key("delivery"), key("default_binding")],
                format!("names no binding: {b:?} is not in bindings"),
            );
        }
    }
    for name in cfg.bindings.keys() {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            r.add(
                vec![key("bindings"), key(name)],
                "a binding name is letters, digits, '-', '_' and '.'",
            );
        }
    }
    if cfg.delivery.ehlo_name.trim().is_empty() {
        r.add(vec![key("delivery"), key("ehlo_name")], "must not be empty");
    }
    domains(&cfg.domains, &mut r);
    for (name, b) in &cfg.bindings {
        if b.ehlo_name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            r.add(
                vec![key("bindings"), key(name), key("ehlo_name")],
                "must not be empty",
            );
        }
    }
    for (domain, d) in &cfg.dkim {
        if d.selector.trim().is_empty() {
            r.add(
                vec![key("dkim"), key(domain), key("selector")],
                "must not be empty",
            );
        }
        if d.key.as_os_str().is_empty() {
            r.add(
                vec![key("dkim"), key(domain), key("key")],
                "must not be empty",
            );
        }
    }
    names(&mut r, "dkim", cfg.dkim.keys());
    if cfg.pools.blocking == 0 {
        r.add(vec![key("pools"), key("blocking")], "must be at least 1");
    }
    if cfg.pools.arbiters > 256 {
        r.add(vec![key("pools"), key("arbiters")], "must be at most 256");
    }
    if cfg.spool.segment_size < 1024 * 1024 {
        r.add(
            vec![key("spool"), key("segment_size")],
            "must be at least 1048576 (1 MiB)",
        );
    }
    if cfg.smtp.max_message_size > u32::MAX as u64 / 2 {
        r.add(
            vec![key("smtp"), key("max_message_size")],
            format!("must be at most {}", u32::MAX / 2),
        );
    }

    if cfg.memory.limit.is_some_and(|l| l.get() < 1 << 20) {
        r.add(vec![key("memory"), key("limit")], "must be at least 1MiB");
    }
    smtp(cfg, &mut r);
    r.0
}

/// Keys that parse but whose feature is not built yet: refused at load time ("is not
/// supported yet"), so nothing accepted is silently ignored. Every key the schema has is
/// built today; keys the schema does not know are refused as unknown fields.
pub(crate) fn unsupported(_cfg: &Config) -> Vec<Problem> {
    Vec::new()
}

fn listeners(cfg: &Config, r: &mut Report) {
    if cfg.listeners.is_empty() {
        r.add(vec![key("listeners")], "at least one listener is needed");
    }
    let mut seen = BTreeMap::new();
    for (i, l) in cfg.listeners.iter().enumerate() {
        let at = |k: &str| vec![key("listeners"), Seg::Index(i), key(k)];
        if l.address.port() != 0 {
            if let Some(first) = seen.insert(l.address, i) {
                r.add(
                    at("address"),
                    format!("{} is already used by listeners[{first}]", l.address),
                );
            }
        }
        match (&l.tls_cert, &l.tls_key) {
            (Some(_), None) => r.add(at("tls_cert"), "is set without tls_key"),
            (None, Some(_)) => r.add(at("tls_key"), "is set without tls_cert"),
            _ => {}
        }
        if l.tls == crate::ListenerTls::Implicit && l.tls_cert.is_none() {
            r.add(at("tls"), "Implicit needs tls_cert and tls_key");
        }
        if l.require_auth && l.tls_cert.is_none() {
            r.add(
                at("require_auth"),
                "needs tls_cert and tls_key: AUTH is only offered over TLS",
            );
        }
        if l.require_auth && cfg.auth.users.is_empty() {
            r.add(
                at("require_auth"),
                "is set but auth.users is empty, so nobody could send",
            );
        }
        if l.hostname.as_deref().is_some_and(|h| h.trim().is_empty()) {
            r.add(at("hostname"), "must not be empty");
        }
    }
    if let Some(http) = &cfg.http {
        if let Some(i) = seen.get(&http.address) {
            r.add(
                vec![key("http"), key("address")],
                format!("{} is already used by listeners[{i}]", http.address),
            );
        }
    }
}

fn auth(cfg: &Config, r: &mut Report) {
    for (user, hash) in &cfg.auth.users {
        let at = vec![key("auth"), key("users"), key(user)];
        if user.is_empty() {
            r.add(at.clone(), "a user name must not be empty");
        }
        if !hash.starts_with('$') {
            r.add(
                at,
                "is not a PHC password hash (make one with `impulsectl hash-password`)",
            );
        }
    }
}

/// Map keys that are domain names: no blanks, and no two differing only in case.
fn names<'a>(r: &mut Report, section: &str, keys: impl Iterator<Item = &'a String>) {
    let mut seen = BTreeSet::new();
    for k in keys {
        let at = vec![key(section), key(k)];
        if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c == ':' || c == '/') {
            r.add(at.clone(), "is not a domain name");
        }
        if !seen.insert(k.to_ascii_lowercase()) {
            r.add(at, "is listed twice (domain names are case-insensitive)");
        }
    }
}

fn domains(domains: &BTreeMap<String, DomainCfg>, r: &mut Report) {
    names(r, "domains", domains.keys());
    let star = domains.get("*").map(domain_problems).unwrap_or_default();
    for (name, d) in domains {
        for (field, what) in domain_problems(d) {
            // A value merely inherited from "*" is reported once, under "*".
            if name != "*" && star.contains(&(field, what.clone())) {
                continue;
            }
            r.add(vec![key("domains"), key(name), key(field)], what);
        }
    }
}

fn domain_problems(d: &DomainCfg) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if d.max_connections == 0 {
        out.push(("max_connections", "must be at least 1".to_owned()));
    }
    if d.max_messages_per_connection == 0 {
        out.push((
            "max_messages_per_connection",
            "must be at least 1".to_owned(),
        ));
    }
    for (field, v) in [
        ("retry_interval", d.retry_interval),
        ("max_retry_interval", d.max_retry_interval),
        ("message_expiration", d.message_expiration),
        ("connect_timeout", d.connect_timeout),
        ("command_timeout", d.command_timeout),
    ] {
        if v.is_zero() {
            out.push((field, "must be longer than 0s".to_owned()));
        }
    }
    if d.retry_interval > d.max_retry_interval {
        out.push((
            "retry_interval",
            format!(
                "{} is longer than max_retry_interval ({})",
                d.retry_interval, d.max_retry_interval
            ),
        ));
    }
    out
}

fn smtp(cfg: &Config, r: &mut Report) {
    let s = &cfg.smtp;
    let at = |k: &str| vec![key("smtp"), key(k)];
    if s.hostname.trim().is_empty() {
        r.add(at("hostname"), "must not be empty");
    }
    if s.max_message_size == 0 {
        r.add(at("max_message_size"), "must be at least 1");
    }
    if s.max_line_length < 1000 {
        r.add(
            at("max_line_length"),
            format!(
                "{} is below the 1000 octets RFC 5321 requires",
                s.max_line_length
            ),
        );
    }
    for (k, v) in [
        ("idle_timeout", s.idle_timeout),
        ("greeting_timeout", s.greeting_timeout),
        ("mail_timeout", s.mail_timeout),
        ("rcpt_timeout", s.rcpt_timeout),
        ("data_init_timeout", s.data_init_timeout),
        ("data_timeout", s.data_timeout),
    ] {
        if v.is_zero() {
            r.add(at(k), "must be longer than 0s");
        }
    }
    for (k, v) in [
        ("max_connections", s.max_connections),
        ("max_connections_per_ip", s.max_connections_per_ip),
        ("max_messages_per_connection", s.max_messages_per_connection),
        ("max_errors", s.max_errors as usize),
    ] {
        if v == 0 {
            r.add(at(k), "must be at least 1");
        }
    }
    // RFC 5321 §4.5.3.1.8 asks servers to take at least 100; the default does (1000), a
    // lower limit is the operator's choice.
    if s.max_recipients == 0 {
        r.add(at("max_recipients"), "must be at least 1");
    }
}
