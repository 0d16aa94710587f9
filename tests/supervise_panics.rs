//! Scenario: a panic in any actor class's handler is contained. Each test starts a
//! daemon with the test-only fault hook (`IMPULSE_FAULT=CLASS`, compiled into debug
//! builds only), which makes the first handler of that class to run panic once. In
//! every case the message involved is delivered exactly once, nothing is left in flight,
//! the daemon goes on serving, and `status` counts the one panic.
//!
//! - message: the record goes back to its queue unchanged;
//! - outbound: the connection is retired, its message deferred and retried;
//! - inbound: the client gets `421` and the connection closes; the next client is served;
//! - listener: the connection being accepted is dropped; the listener restarts;
//! - control: that request gets no answer; the control actor restarts;
//! - spool: that store is answered `451` (nothing was acknowledged); the next one works;
//! - logger: the records come back to the caller, which writes them again.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::delivery::send;
use common::log::of_type;
use common::{config, Daemon, RawClient};
use impulse_sink::{Sink, SinkConfig};

const WAIT: Duration = Duration::from_secs(60);

fn start(dir: &Path, class: &str) -> (Daemon, Sink) {
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let extra = "domains: { \"*\": (retry_interval: \"1s\", max_retry_interval: \"1s\") },";
    let daemon = Daemon::start_with_env(
        dir,
        &config(dir, Some(sink.addr()), extra),
        &[("IMPULSE_FAULT", class)],
    );
    (daemon, sink)
}

/// The message to `rcpt` arrived exactly once, the spool is empty, one panic counted.
fn delivered_once(daemon: &Daemon, sink: &Sink, rcpt: &str, class: &str) {
    assert!(sink.wait_for(1, WAIT), "{}", daemon.stderr());
    daemon.wait_spool_empty(WAIT);
    let got: Vec<String> = sink
        .messages()
        .into_iter()
        .flat_map(|m| m.recipients)
        .collect();
    assert_eq!(got, vec![rcpt.to_string()]);
    let status = daemon.ctl_json(&["status"]);
    assert_eq!(status["panics"], 1, "{status}");
    assert_eq!(status["messages_working"], 0, "{status}");
    assert!(
        daemon
            .stderr()
            .contains(&format!("injected fault in {class}")),
        "{}",
        daemon.stderr()
    );
}

#[test]
fn message_panic() {
    let dir = common::tempdir("impulse-panic-message-");
    let (daemon, sink) = start(dir.path(), "message");
    send(daemon.smtp, &["m@panic.test"], "survives\r\n");
    delivered_once(&daemon, &sink, "m@panic.test", "message");
}

#[test]
fn outbound_panic() {
    let dir = common::tempdir("impulse-panic-outbound-");
    let (daemon, sink) = start(dir.path(), "outbound");
    send(daemon.smtp, &["o@panic.test"], "survives\r\n");
    delivered_once(&daemon, &sink, "o@panic.test", "outbound");
}

#[test]
fn inbound_panic() {
    let dir = common::tempdir("impulse-panic-inbound-");
    let (daemon, sink) = start(dir.path(), "inbound");
    let mut c = RawClient::connect(daemon.smtp);
    let (code, text) = c.cmd("EHLO first.test");
    assert_eq!(code, 421, "{text}");
    assert!(c.is_closed());
    send(daemon.smtp, &["i@panic.test"], "next client\r\n");
    delivered_once(&daemon, &sink, "i@panic.test", "inbound");
    common::wait_until(
        WAIT,
        "no inbound connection left",
        || daemon.ctl_json(&["status"])["connections_in"] == 0,
        || daemon.stderr(),
    );
}

#[test]
fn listener_panic() {
    let dir = common::tempdir("impulse-panic-listener-");
    let (daemon, sink) = start(dir.path(), "listener");
    let mut dropped = TcpStream::connect(daemon.smtp).unwrap();
    dropped
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(dropped.read(&mut buf), Ok(0) | Err(_)),
        "the connection being accepted is dropped, not greeted"
    );
    send(daemon.smtp, &["l@panic.test"], "listener restarted\r\n");
    delivered_once(&daemon, &sink, "l@panic.test", "listener");
}

#[test]
fn control_panic() {
    let dir = common::tempdir("impulse-panic-control-");
    let (daemon, sink) = start(dir.path(), "control");
    let first = daemon.ctl(&["status"]);
    assert_eq!(first.status.code(), Some(2), "{first:?}");
    send(daemon.smtp, &["c@panic.test"], "control restarted\r\n");
    delivered_once(&daemon, &sink, "c@panic.test", "control");
}

#[test]
fn spool_panic() {
    let dir = common::tempdir("impulse-panic-spool-");
    let (daemon, sink) = start(dir.path(), "spool");
    let mut c = RawClient::connect(daemon.smtp);
    c.ok("EHLO spool.test", 250);
    c.open_data("s@panic.test", &["s@panic.test"]);
    c.send(b"Subject: first\r\n\r\nrefused\r\n.\r\n");
    let (code, text) = c.reply();
    assert_eq!(code, 451, "{text}");
    c.open_data("s@panic.test", &["s@panic.test"]);
    c.end_data(b"Subject: second\r\n\r\naccepted\r\n");
    c.ok("QUIT", 221);
    delivered_once(&daemon, &sink, "s@panic.test", "spool");
}

#[test]
fn logger_panic() {
    let dir = common::tempdir("impulse-panic-logger-");
    let (daemon, sink) = start(dir.path(), "logger");
    send(daemon.smtp, &["g@panic.test"], "logged anyway\r\n");
    delivered_once(&daemon, &sink, "g@panic.test", "logger");
    let records = daemon.wait_for_log(WAIT, "both records", |r| {
        !of_type(r, "Reception", Some("g@panic.test")).is_empty()
            && !of_type(r, "Delivery", Some("g@panic.test")).is_empty()
    });
    assert_eq!(
        of_type(&records, "Reception", Some("g@panic.test")).len(),
        1
    );
    assert_eq!(of_type(&records, "Delivery", Some("g@panic.test")).len(), 1);
}
