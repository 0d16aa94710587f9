//! Scenario: a panic in a message actor's handler is contained. With the test-only
//! fault hook (`IMPULSE_FAULT=message`, compiled into debug builds only) the first
//! message handler to run panics; the message goes back to its queue unchanged, is
//! delivered exactly once, and `status` counts the panic.

mod common;

use std::time::Duration;

use common::delivery::send;
use common::Daemon;
use impulse_sink::{Sink, SinkConfig};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_panicking_message_handler_loses_nothing() {
    // Inherited by the daemon this test starts (the only test in this binary).
    std::env::set_var("IMPULSE_FAULT", "message");
    let dir = common::tempdir("impulse-panic-");
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let daemon = Daemon::start(
        dir.path(),
        &common::config(dir.path(), Some(sink.addr()), ""),
    );
    send(daemon.smtp, &["once@panic.test"], "survives\r\n");
    assert!(sink.wait_for(1, WAIT), "{}", daemon.stderr());
    daemon.wait_spool_empty(WAIT);
    assert_eq!(sink.count(), 1);
    let status = daemon.ctl_json(&["status"]);
    assert_eq!(status["panics"], 1, "{status}");
    assert_eq!(status["messages_working"], 0, "{status}");
    assert!(daemon.stderr().contains("injected fault in message"));
}
