//! The typed config: [`Config`] and one struct per section, as read from RON.
//!
//! Every struct denies unknown fields (so a misspelt key is an error with its position)
//! and takes its defaults from [`crate::defaults`], so `()` — or an empty file — is a
//! valid config. Per-domain limits live in [`crate::domain`]; the questions the daemon
//! asks of a loaded config (`route`, `domain`, `relay_allowed`) in `lookup`.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

use crate::{defaults, domain, Cidr, DomainCfg, Duration};

/// The whole daemon configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory holding `spool/`, `logs/` and `control.sock`; a relative path is taken
    /// from the daemon's working directory.
    pub data_dir: PathBuf,
    /// SMTP listeners, at least one.
    pub listeners: Vec<ListenerCfg>,
    /// Which clients may relay without authenticating.
    pub relay: RelayCfg,
    /// Users for SMTP AUTH.
    pub auth: AuthCfg,
    /// Static next hops bypassing the MX lookup: destination domain (or `"*"` for every
    /// domain not listed) → `"host:port"`. Domains match case-insensitively.
    pub routes: BTreeMap<String, String>,
    /// DNS resolution for MX lookups.
    pub dns: DnsCfg,
    /// Outbound delivery settings.
    pub delivery: DeliveryCfg,
    /// Limits per destination domain; `"*"` is the default entry, and a listed domain
    /// takes the `"*"` values for the keys it leaves out (see [`Config::domain`]).
    #[serde(deserialize_with = "domain::deserialize_domains")]
    pub domains: BTreeMap<String, DomainCfg>,
    /// Egress identities (virtual MTAs) by name.
    pub bindings: BTreeMap<String, BindingCfg>,
    /// DKIM signing keys by sending domain.
    pub dkim: BTreeMap<String, DkimCfg>,
    /// The HTTP endpoint for `/metrics` and the API; none = disabled.
    pub http: Option<HttpCfg>,
    /// The process's memory budget (new transactions wait near it).
    pub memory: MemoryCfg,
    /// Sizes of the worker pools.
    pub pools: PoolsCfg,
    /// The durable message store.
    pub spool: SpoolCfg,
    /// Inbound SMTP session limits.
    pub smtp: SmtpCfg,
    /// How long a graceful stop may take before in-flight work is abandoned (and deferred).
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: defaults::data_dir(),
            listeners: defaults::listeners(),
            relay: RelayCfg::default(),
            auth: AuthCfg::default(),
            routes: BTreeMap::new(),
            dns: DnsCfg::default(),
            delivery: DeliveryCfg::default(),
            domains: BTreeMap::new(),
            bindings: BTreeMap::new(),
            dkim: BTreeMap::new(),
            http: None,
            memory: MemoryCfg::default(),
            pools: PoolsCfg::default(),
            spool: SpoolCfg::default(),
            smtp: SmtpCfg::default(),
            shutdown_grace: defaults::shutdown_grace(),
        }
    }
}

/// One SMTP listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerCfg {
    /// Address to bind, e.g. `"127.0.0.1:2525"`; port 0 picks a free port.
    pub address: SocketAddr,
    /// PEM certificate chain; with `tls_key`, STARTTLS is offered (or TLS is spoken from
    /// the first byte, with `tls: Implicit`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Refuse mail until the client has authenticated (needs TLS and `auth.users`).
    #[serde(default)]
    pub require_auth: bool,
    /// Name in the greeting and EHLO reply; none = `smtp.hostname`.
    #[serde(default)]
    pub hostname: Option<String>,
    /// How TLS starts on this listener (with `tls_cert`/`tls_key`).
    #[serde(default)]
    pub tls: ListenerTls,
}

/// How TLS starts on a listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerTls {
    /// Plaintext first; STARTTLS offered (RFC 3207).
    #[default]
    Starttls,
    /// TLS from the first byte (RFC 8314, port 465 style submission).
    Implicit,
}

impl ListenerCfg {
    /// A plain listener on `address`, without TLS or required AUTH.
    pub fn new(address: SocketAddr) -> Self {
        ListenerCfg {
            address,
            tls_cert: None,
            tls_key: None,
            require_auth: false,
            hostname: None,
            tls: ListenerTls::Starttls,
        }
    }
}

/// Relay permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayCfg {
    /// Networks whose clients may relay without AUTH.
    pub allow: Vec<Cidr>,
}

impl Default for RelayCfg {
    fn default() -> Self {
        RelayCfg {
            allow: defaults::relay_allow(),
        }
    }
}

/// SMTP AUTH users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthCfg {
    /// User name → PHC password hash (`impulsectl hash-password`); AUTH PLAIN/LOGIN is
    /// offered only over TLS.
    pub users: BTreeMap<String, String>,
}

/// DNS resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsCfg {
    /// Name servers to ask (`"IP:PORT"`, `"[IPv6]:PORT"`, or an address alone for port
    /// 53); empty = the system resolver configuration.
    #[serde(deserialize_with = "name_servers")]
    pub servers: Vec<SocketAddr>,
}

/// `dns.servers`: each an address with a port, or an address alone (port 53).
fn name_servers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<SocketAddr>()
                .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{s:?} is not a name server address (\"IP\" or \"IP:PORT\")"
                    ))
                })
        })
        .collect()
}

/// Outbound delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryCfg {
    /// Port used when delivering to MX hosts.
    pub port: u16,
    /// Name sent in EHLO when no binding gives one; default: this machine's host name.
    pub ehlo_name: String,
    /// The binding of messages without an `X-Impulse-Binding:` header; none = the
    /// system's own source address and `ehlo_name`.
    pub default_binding: Option<String>,
    /// Extra CA certificates (PEM) trusted for `tls: Verified`, beside the system's.
    pub tls_ca: Option<PathBuf>,
}

impl Default for DeliveryCfg {
    fn default() -> Self {
        DeliveryCfg {
            port: defaults::delivery_port(),
            ehlo_name: defaults::hostname(),
            default_binding: None,
            tls_ca: None,
        }
    }
}

/// An egress identity (virtual MTA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingCfg {
    /// Local address outbound connections are made from.
    pub source: IpAddr,
    /// Name sent in EHLO from this binding; none = `delivery.ehlo_name`.
    #[serde(default)]
    pub ehlo_name: Option<String>,
}

/// A DKIM signing key for one sending domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimCfg {
    /// Selector published in DNS (`SELECTOR._domainkey.DOMAIN`).
    pub selector: String,
    /// PEM private key file (RSA or Ed25519).
    pub key: PathBuf,
}

/// The memory budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryCfg {
    /// Near this (90 %) new transactions get `451 4.3.1` until memory falls; none = 80 %
    /// of the cgroup limit or of the machine's RAM.
    pub limit: Option<crate::ByteSize>,
}

/// The HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpCfg {
    /// Address to bind, e.g. `"127.0.0.1:8025"`; port 0 picks a free port.
    pub address: SocketAddr,
}

impl Default for HttpCfg {
    fn default() -> Self {
        HttpCfg {
            address: defaults::http_address(),
        }
    }
}

/// Worker pool sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolsCfg {
    /// Threads of the sync arbiter running blocking work (spool I/O, DNS, hashing).
    pub blocking: usize,
    /// Actix arbiters (event-loop threads) running the actors; 0 = one per core.
    pub arbiters: usize,
}

impl Default for PoolsCfg {
    fn default() -> Self {
        PoolsCfg {
            blocking: defaults::pool_blocking(),
            arbiters: defaults::pool_arbiters(),
        }
    }
}

/// The durable message store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolCfg {
    /// Below this many free bytes on the spool's file system, new transactions get
    /// `452 4.3.1` at MAIL FROM (delivery and logging go on).
    pub min_free: u64,
    /// A segment file is closed for writing once it grows past this many bytes.
    pub segment_size: u64,
}

impl Default for SpoolCfg {
    fn default() -> Self {
        SpoolCfg {
            min_free: defaults::spool_min_free(),
            segment_size: defaults::spool_segment_size(),
        }
    }
}

/// Inbound SMTP session limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpCfg {
    /// Name in the greeting and EHLO reply; default: this machine's host name.
    pub hostname: String,
    /// Largest message accepted, in octets (advertised with EHLO SIZE).
    pub max_message_size: u64,
    /// Most recipients accepted per message.
    pub max_recipients: usize,
    /// Longest command or text line accepted, in octets including CRLF (≥ 1000, RFC 5321).
    pub max_line_length: usize,
    /// A session waiting this long for a command is closed (`421 4.4.2`). It also bounds
    /// every phase timeout below.
    pub idle_timeout: Duration,
    /// After the greeting, how long the client has for its first command.
    pub greeting_timeout: Duration,
    /// After MAIL is accepted, how long the client has for RCPT.
    pub mail_timeout: Duration,
    /// After a RCPT is accepted, how long the client has for the next RCPT or DATA.
    pub rcpt_timeout: Duration,
    /// After the `354`, how long the client has for the first byte of data.
    pub data_init_timeout: Duration,
    /// During DATA (or a BDAT chunk), this long without a byte closes the session
    /// (`421 4.4.2`).
    pub data_timeout: Duration,
    /// During DATA, fewer bytes per second than this (averaged from the 30th second on)
    /// close the session (`421 4.4.2`): a drip-feeding client cannot hold a slot. 0 = off.
    pub min_data_rate: u64,
    /// Inbound sessions at once, over every listener; more get `421 4.7.0` and a close.
    pub max_connections: usize,
    /// Inbound sessions at once from one client address.
    pub max_connections_per_ip: usize,
    /// Messages accepted on one connection; the next MAIL gets `421 4.7.0`.
    pub max_messages_per_connection: usize,
    /// Consecutive refused commands after which the session is closed (`421 4.7.0`).
    pub max_errors: u32,
}

impl Default for SmtpCfg {
    fn default() -> Self {
        SmtpCfg {
            hostname: defaults::hostname(),
            max_message_size: defaults::max_message_size(),
            max_recipients: defaults::max_recipients(),
            max_line_length: defaults::max_line_length(),
            idle_timeout: defaults::idle_timeout(),
            greeting_timeout: defaults::command_timeout(),
            mail_timeout: defaults::command_timeout(),
            rcpt_timeout: defaults::command_timeout(),
            data_init_timeout: defaults::smtp_data_init_timeout(),
            data_timeout: defaults::smtp_data_timeout(),
            min_data_rate: 256,
            max_connections: 1000,
            max_connections_per_ip: 200,
            max_messages_per_connection: 1000,
            max_errors: 10,
        }
    }
}
