//! # Layout
//!
//! impulse-source — an SMTP load generator: the sending side of Impulse's relay benchmark
//! and of the integration tests. [`run`] opens `sessions` concurrent connections and
//! sends `messages` generated messages ([`make_message`]), each with a unique Message-ID,
//! pipelined when asked and offered, reconnecting every `per_session` messages. The
//! [`SourceReport`] says what was accepted (with the accepted Message-IDs, so a receiver
//! can be checked for loss and duplicates), refused, or failed.
//!
//! - [`message`] — message generation ([`make_message`], [`message_id`]) and the DATA
//!   encoding ([`encode_data`]: dot-stuffing and terminator).
//! - [`client`] — one SMTP client connection ([`Connection`]): EHLO, pipelined or lockstep
//!   transactions, QUIT.
//! - `tls` — [`client_config`]: a rustls client configuration trusting given roots.
//! - `run` — the load run: session threads sharing a message counter, tallies merged
//!   into the report.
//! - this file — [`SourceConfig`], [`SourceReport`], [`run`].
//! - `main.rs` — the `impulse-source` binary (argument parsing and the summary only).

pub mod client;
pub mod message;
mod run;
mod tls;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use client::{Connection, Outcome, Reply};
pub use message::{encode_data, make_message, message_id};
pub use tls::client_config;

/// What to send, where, and how.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The SMTP server to send to.
    pub addr: SocketAddr,
    /// Messages to send in total.
    pub messages: usize,
    /// Body bytes per message (headers come on top).
    pub size: usize,
    /// Concurrent connections.
    pub sessions: usize,
    /// Messages per connection before QUIT and a new connection; 0 = no limit.
    pub per_session: usize,
    /// Pipeline MAIL, RCPT and DATA when the server advertises PIPELINING.
    pub pipelining: bool,
    /// The envelope sender (MAIL FROM) and From header.
    pub sender: String,
    /// Recipients are `user{k}@{recipient_domain}`, numbered across the whole run.
    pub recipient_domain: String,
    /// Recipients per message.
    pub recipients_per_message: usize,
    /// Send over STARTTLS with this client configuration (the server's certificate must
    /// be valid for [`client::TLS_NAME`] under its roots); `None`: plaintext.
    pub starttls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 2525)),
            messages: 1000,
            size: 1024,
            sessions: 10,
            per_session: 100,
            pipelining: true,
            sender: "source@impulse.test".to_string(),
            recipient_domain: "example.com".to_string(),
            recipients_per_message: 1,
            starttls: None,
        }
    }
}

/// What a run achieved.
#[derive(Debug, Clone, Default)]
pub struct SourceReport {
    /// This run's id, as used in its Message-IDs (`<src-{run}-{n}@impulse.test>`).
    pub run: u64,
    /// Messages attempted.
    pub messages: usize,
    /// Messages answered 2xx after DATA.
    pub sent_ok: usize,
    /// Messages refused with a reply (MAIL, all RCPTs, DATA or end of DATA).
    pub rejected: usize,
    /// Messages lost to connection or protocol errors.
    pub errors: usize,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Message-IDs (angle brackets included) of the accepted messages.
    pub accepted_ids: Vec<String>,
    /// The first error seen, for diagnosis.
    pub first_error: Option<String>,
    /// The first refusing reply seen.
    pub first_rejection: Option<String>,
}

impl SourceReport {
    /// Accepted messages per second of run time.
    pub fn accepted_per_sec(&self) -> f64 {
        per_sec(self.sent_ok, self.elapsed)
    }
}

/// `n / d` in events per second (0 for a zero duration).
pub fn per_sec(n: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// Send `cfg.messages` messages over `cfg.sessions` connections and report.
pub fn run(cfg: SourceConfig) -> SourceReport {
    run::run(&cfg)
}
