//! Scenario: the next hop refuses connections, then comes back. The message deferred
//! while it was down is retried at its retry time in the same daemon (no restart, no
//! new mail to wake the domain up) and delivered exactly once.

mod common;

use std::time::Duration;

use common::delivery::send;
use common::log::of_type;
use common::{config, ClosedPort, Daemon};
use impulse_sink::{Sink, SinkConfig};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_message_deferred_while_the_hop_was_down_is_retried_when_due() {
    let dir = common::tempdir("impulse-hop-back-");
    let closed = ClosedPort::new();
    let addr = closed.addr;
    let extra = "domains: { \"*\": (retry_interval: \"1s\", max_retry_interval: \"1s\") },";
    let daemon = Daemon::start(dir.path(), &config(dir.path(), Some(addr), extra));
    send(daemon.smtp, &["back@hop.test"], "wait for me\r\n");
    daemon.wait_for_log(WAIT, "a deferral while the hop is down", |r| {
        !of_type(r, "TransientFailure", Some("back@hop.test")).is_empty()
    });
    drop(closed);
    let sink = Sink::start(SinkConfig {
        addr,
        ..SinkConfig::default()
    })
    .unwrap();
    assert!(
        sink.wait_for(1, WAIT),
        "not retried; stderr:\n{}",
        daemon.stderr()
    );
    daemon.wait_spool_empty(WAIT);
    assert_eq!(sink.count(), 1);
}
