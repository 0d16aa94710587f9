//! A stand-in for impulsed, used only to test this harness end to end while (or when)
//! the real daemon is unavailable: it reads the config the bench writes, listens on a
//! free loopback port, prints `listening on ADDR` and `ready` on stderr, and relays every
//! message synchronously to the `"*"` route before answering 250. Not an MTA: no spool,
//! no retries. Reached as the hidden `impulse-bench stand-in --config FILE`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use impulse_sink::{ReceivedMessage, Sink, SinkConfig};
use impulse_source::{Connection, Outcome};

/// The address of the `"*"` route in the config text.
pub fn wildcard_route(config: &str) -> Option<SocketAddr> {
    let after = &config[config.find("\"*\"")? + 3..];
    let after = after.trim_start().strip_prefix(':')?.trim_start();
    let quoted = after.strip_prefix('"')?;
    quoted[..quoted.find('"')?].parse().ok()
}

/// Run until killed.
pub fn run(config: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let next_hop =
        wildcard_route(&text).ok_or_else(|| anyhow!("no \"*\" route in {}", config.display()))?;
    thread_local! {
        static OUT: RefCell<Option<Connection>> = const { RefCell::new(None) };
    }
    let forward = move |m: &ReceivedMessage| {
        OUT.with(|out| {
            let mut out = out.borrow_mut();
            for _attempt in 0..2 {
                if out.is_none() {
                    *out = Connection::open(next_hop, true).ok();
                }
                if let Some(c) = out.as_mut() {
                    match c.send(&m.sender, &m.recipients, &m.data) {
                        Ok(Outcome::Accepted) => return,
                        Ok(Outcome::Rejected(r)) => panic!("next hop refused: {r}"),
                        Err(_) => *out = None,
                    }
                }
            }
            // Dropping the inbound session makes the client see an error, not a 250.
            panic!("next hop {next_hop} unreachable");
        })
    };
    let sink = Sink::start_with_observer(
        SinkConfig {
            record_bodies: false,
            ..SinkConfig::default()
        },
        Arc::new(forward),
    )?;
    eprintln!("listening on {}", sink.addr());
    eprintln!("ready");
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_wildcard_route() {
        let cfg = crate::config::render(Path::new("/d"), "127.0.0.1:4444".parse().unwrap());
        assert_eq!(
            wildcard_route(&cfg),
            Some("127.0.0.1:4444".parse().unwrap())
        );
        assert_eq!(wildcard_route("routes: {}"), None);
    }
}
