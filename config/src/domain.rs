//! Per-destination-domain limits: [`DomainCfg`], [`TlsMode`], and how a partial entry in
//! the file inherits from the `"*"` entry.
//!
//! In the file, `domains` is read as a map of [`PartialDomainCfg`] (every key optional).
//! The `"*"` entry is resolved first against the built-in defaults; every other entry is
//! resolved against the resolved `"*"`. The loaded [`crate::Config`] therefore holds
//! complete `DomainCfg`s, and writing it back out loses nothing.

use std::{collections::BTreeMap, time};

use serde::{Deserialize, Deserializer, Serialize};

use crate::{defaults, Duration, Rate};

/// STARTTLS policy towards a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TlsMode {
    /// Never use TLS.
    Disabled,
    /// Use STARTTLS when offered; deliver in clear text otherwise or when it fails.
    Opportunistic,
    /// Defer rather than deliver without TLS.
    Required,
    /// Like `Required`, and the certificate must verify against the system roots plus
    /// `delivery.tls_ca`, for the MX host's name.
    Verified,
}

impl Default for TlsMode {
    fn default() -> Self {
        defaults::tls_mode()
    }
}

/// Limits for one destination domain, complete after resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainCfg {
    /// Most simultaneous connections to the domain's hosts.
    pub max_connections: usize,
    /// Messages sent over one connection before it is closed.
    pub max_messages_per_connection: usize,
    /// Most messages per period (`"1000/s"`); none = unlimited.
    pub throttle: Option<Rate>,
    /// Most new connections per period (`"10/s"`); none = unlimited.
    pub connection_throttle: Option<Rate>,
    /// Delay before the first retry; doubles per attempt up to `max_retry_interval`.
    pub retry_interval: Duration,
    /// Longest delay between two attempts.
    pub max_retry_interval: Duration,
    /// Age after which an undelivered message bounces.
    pub message_expiration: Duration,
    /// Age after which a message still deferred gets one delay report (`Action:
    /// delayed`) for the recipients that asked for it with `NOTIFY=DELAY`; 0 = never.
    pub delay_warning: Duration,
    /// STARTTLS policy.
    pub tls: TlsMode,
    /// Time allowed to open a connection (TCP and greeting).
    pub connect_timeout: Duration,
    /// Time allowed for each SMTP command's reply.
    pub command_timeout: Duration,
    /// Time allowed for the server's greeting after the connection is made.
    pub banner_timeout: Duration,
    /// Time allowed for sending the message data and for the reply to its final dot.
    pub data_timeout: Duration,
}

impl Default for DomainCfg {
    fn default() -> Self {
        DomainCfg {
            max_connections: defaults::max_connections(),
            max_messages_per_connection: defaults::max_messages_per_connection(),
            throttle: None,
            connection_throttle: None,
            retry_interval: defaults::retry_interval(),
            max_retry_interval: defaults::max_retry_interval(),
            message_expiration: defaults::message_expiration(),
            delay_warning: defaults::delay_warning(),
            tls: defaults::tls_mode(),
            connect_timeout: defaults::connect_timeout(),
            command_timeout: defaults::command_timeout(),
            banner_timeout: defaults::banner_timeout(),
            data_timeout: defaults::data_timeout(),
        }
    }
}

impl DomainCfg {
    /// The delay before retry number `attempt` (1 = the first retry): `retry_interval`
    /// doubled per earlier attempt, capped at `max_retry_interval`.
    pub fn retry_delay(&self, attempt: u32) -> time::Duration {
        let base = self.retry_interval.get();
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        base.checked_mul(factor)
            .unwrap_or(time::Duration::MAX)
            .min(self.max_retry_interval.get())
    }
}

/// A `domains` entry as written: every key optional, filled in by [`Self::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename = "DomainCfg")]
pub struct PartialDomainCfg {
    /// See [`DomainCfg::max_connections`].
    pub max_connections: Option<usize>,
    /// See [`DomainCfg::max_messages_per_connection`].
    pub max_messages_per_connection: Option<usize>,
    /// See [`DomainCfg::throttle`]; `Some(None)` is an explicit `throttle: None`, which
    /// removes a throttle inherited from `"*"`.
    #[serde(deserialize_with = "present")]
    pub throttle: Option<Option<Rate>>,
    /// See [`DomainCfg::connection_throttle`]; `Some(None)` removes an inherited one.
    #[serde(deserialize_with = "present")]
    pub connection_throttle: Option<Option<Rate>>,
    /// See [`DomainCfg::retry_interval`].
    pub retry_interval: Option<Duration>,
    /// See [`DomainCfg::max_retry_interval`].
    pub max_retry_interval: Option<Duration>,
    /// See [`DomainCfg::message_expiration`].
    pub message_expiration: Option<Duration>,
    /// See [`DomainCfg::delay_warning`].
    pub delay_warning: Option<Duration>,
    /// See [`DomainCfg::tls`].
    pub tls: Option<TlsMode>,
    /// See [`DomainCfg::connect_timeout`].
    pub connect_timeout: Option<Duration>,
    /// See [`DomainCfg::command_timeout`].
    pub command_timeout: Option<Duration>,
    /// See [`DomainCfg::banner_timeout`].
    pub banner_timeout: Option<Duration>,
    /// See [`DomainCfg::data_timeout`].
    pub data_timeout: Option<Duration>,
}

impl PartialDomainCfg {
    /// The keys given here, the rest from `base`.
    pub fn resolve(&self, base: &DomainCfg) -> DomainCfg {
        DomainCfg {
            max_connections: self.max_connections.unwrap_or(base.max_connections),
            max_messages_per_connection: self
                .max_messages_per_connection
                .unwrap_or(base.max_messages_per_connection),
            throttle: self.throttle.unwrap_or(base.throttle),
            connection_throttle: self.connection_throttle.unwrap_or(base.connection_throttle),
            retry_interval: self.retry_interval.unwrap_or(base.retry_interval),
            max_retry_interval: self.max_retry_interval.unwrap_or(base.max_retry_interval),
            message_expiration: self.message_expiration.unwrap_or(base.message_expiration),
            delay_warning: self.delay_warning.unwrap_or(base.delay_warning),
            tls: self.tls.unwrap_or(base.tls),
            connect_timeout: self.connect_timeout.unwrap_or(base.connect_timeout),
            command_timeout: self.command_timeout.unwrap_or(base.command_timeout),
            banner_timeout: self.banner_timeout.unwrap_or(base.banner_timeout),
            data_timeout: self.data_timeout.unwrap_or(base.data_timeout),
        }
    }
}

/// Marks a field as present (`Some`) whatever its value, so an explicit `None` can be
/// told from an absent key.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Resolves a map of partial entries: `"*"` against the built-in defaults, the others
/// against the resolved `"*"`.
pub fn resolve_domains(
    partial: &BTreeMap<String, PartialDomainCfg>,
) -> BTreeMap<String, DomainCfg> {
    let star = partial
        .get("*")
        .map_or_else(DomainCfg::default, |p| p.resolve(&DomainCfg::default()));
    partial
        .iter()
        .map(|(name, p)| {
            let cfg = if name == "*" {
                star.clone()
            } else {
                p.resolve(&star)
            };
            (name.clone(), cfg)
        })
        .collect()
}

/// `deserialize_with` for `Config::domains`: reads partial entries and resolves them.
pub(crate) fn deserialize_domains<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, DomainCfg>, D::Error> {
    BTreeMap::<String, PartialDomainCfg>::deserialize(d).map(|m| resolve_domains(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let d = DomainCfg::default();
        let mins = |n: u64| time::Duration::from_secs(n * 60);
        assert_eq!(d.retry_delay(0), mins(20));
        assert_eq!(d.retry_delay(1), mins(20));
        assert_eq!(d.retry_delay(2), mins(40));
        assert_eq!(d.retry_delay(3), mins(80));
        assert_eq!(d.retry_delay(4), mins(160));
        assert_eq!(d.retry_delay(5), mins(240));
        assert_eq!(d.retry_delay(500), mins(240));
    }

    #[test]
    fn resolve_takes_star_then_builtin() {
        let mut m = BTreeMap::new();
        m.insert(
            "*".to_owned(),
            PartialDomainCfg {
                max_connections: Some(5),
                throttle: Some(Some("10/s".parse().unwrap())),
                ..Default::default()
            },
        );
        m.insert(
            "a.example".to_owned(),
            PartialDomainCfg {
                tls: Some(TlsMode::Required),
                throttle: Some(None),
                ..Default::default()
            },
        );
        let r = resolve_domains(&m);
        assert_eq!(r["*"].max_connections, 5);
        assert_eq!(r["a.example"].max_connections, 5);
        assert_eq!(r["a.example"].tls, TlsMode::Required);
        assert_eq!(r["a.example"].throttle, None);
        assert_eq!(r["*"].throttle.unwrap().count, 10);
        assert_eq!(r["a.example"].retry_interval, defaults::retry_interval());
    }
}
