//! The built-in default of every option, one named function each. The `impl Default`
//! of every config struct calls these, so the defaults live in exactly one place (and
//! `default.ron`, the embedded default file, is tested against them).

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
};

use crate::{Cidr, Duration, ListenerCfg, TlsMode};

/// `data_dir`: `"impulse-data"`, relative to the working directory.
pub fn data_dir() -> PathBuf {
    PathBuf::from("impulse-data")
}

/// `listeners`: one plain listener on `127.0.0.1:2525`.
pub fn listeners() -> Vec<ListenerCfg> {
    vec![ListenerCfg::new(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        2525,
    )))]
}

/// `relay.allow`: loopback only, `127.0.0.0/8` and `::1/128`.
pub fn relay_allow() -> Vec<Cidr> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// `delivery.port`: 25.
pub fn delivery_port() -> u16 {
    25
}

/// `delivery.ehlo_name` and `smtp.hostname`: this machine's host name, read from
/// `/proc/sys/kernel/hostname` or `/etc/hostname`, else `"localhost"`.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `http.address`: `127.0.0.1:8025`.
pub fn http_address() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 8025))
}

/// `pools.blocking`: 4 sync-arbiter threads.
pub fn pool_blocking() -> usize {
    4
}

/// `pools.arbiters`: 0, one actix arbiter per core.
pub fn pool_arbiters() -> usize {
    0
}

/// `spool.min_free`: 64 MiB.
pub fn spool_min_free() -> u64 {
    64 * 1024 * 1024
}

/// `spool.segment_size`: 64 MiB.
pub fn spool_segment_size() -> u64 {
    64 * 1024 * 1024
}

/// `smtp.max_message_size`: 25 MiB.
pub fn max_message_size() -> u64 {
    25 * 1024 * 1024
}

/// `smtp.max_recipients`: 1000 per message.
pub fn max_recipients() -> usize {
    1000
}

/// `smtp.max_line_length`: 1000 octets including CRLF, the RFC 5321 minimum.
pub fn max_line_length() -> usize {
    1000
}

/// `smtp.idle_timeout`: 5 minutes.
pub fn idle_timeout() -> Duration {
    Duration::from_secs(5 * 60)
}

/// `smtp.data_init_timeout`: 2 minutes (RFC 5321 §4.5.3.2.4, DATA initiation).
pub fn smtp_data_init_timeout() -> Duration {
    Duration::from_secs(2 * 60)
}

/// `smtp.data_timeout`: 3 minutes (RFC 5321 §4.5.3.2.5's data block time).
pub fn smtp_data_timeout() -> Duration {
    Duration::from_secs(3 * 60)
}

/// `shutdown_grace`: 30 seconds.
pub fn shutdown_grace() -> Duration {
    Duration::from_secs(30)
}

/// `domains.*.max_connections`: 32.
pub fn max_connections() -> usize {
    32
}

/// `domains.*.max_messages_per_connection`: 1000.
pub fn max_messages_per_connection() -> usize {
    1000
}

/// `domains.*.retry_interval`: 20 minutes.
pub fn retry_interval() -> Duration {
    Duration::from_secs(20 * 60)
}

/// `domains.*.max_retry_interval`: 4 hours.
pub fn max_retry_interval() -> Duration {
    Duration::from_secs(4 * 3600)
}

/// `domains.*.delay_warning`: 4 hours (sendmail's `Timeout.queuewarn`).
pub fn delay_warning() -> Duration {
    Duration::from_secs(4 * 3600)
}

/// `domains.*.message_expiration`: 3 days.
pub fn message_expiration() -> Duration {
    Duration::from_secs(3 * 86_400)
}

/// `domains.*.tls`: opportunistic STARTTLS.
pub fn tls_mode() -> TlsMode {
    TlsMode::Opportunistic
}

/// `domains.*.connect_timeout`: 60 seconds.
pub fn connect_timeout() -> Duration {
    Duration::from_secs(60)
}

/// `domains.*.banner_timeout`: 5 minutes (RFC 5321 §4.5.3.2.1, the initial 220).
pub fn banner_timeout() -> Duration {
    Duration::from_secs(5 * 60)
}

/// `domains.*.data_timeout`: 10 minutes (RFC 5321 §4.5.3.2.6, the reply to the final
/// dot; the data blocks before it, §4.5.3.2.5, get the same bound).
pub fn data_timeout() -> Duration {
    Duration::from_secs(10 * 60)
}

/// `domains.*.command_timeout`: 5 minutes.
pub fn command_timeout() -> Duration {
    Duration::from_secs(5 * 60)
}
