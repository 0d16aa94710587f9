//! `impulsectl memory` attributes memory to what it belongs to, not to whichever
//! handler allocated it: with thousands of messages queued for a dead next hop, the
//! bytes held for them (queue records, envelopes, registry and spool-index entries —
//! allocated by the inbound session, the domain, the spool and recovery) are counted
//! under class `message`, which then holds most of the live bytes, before and after a
//! restart that rebuilds them from the spool.

mod common;

use std::time::Duration;

use common::{config, ClosedPort, Daemon};
use impulse_source::SourceConfig;
use serde_json::Value;

const MESSAGES: usize = 3000;
const WAIT: Duration = Duration::from_secs(120);

fn live(m: &Value, class: &str) -> i64 {
    m["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == class)
        .map(|c| c["live_bytes"].as_i64().unwrap())
        .unwrap()
}

fn check(daemon: &Daemon, when: &str) {
    common::wait_until(
        WAIT,
        "every message queued",
        || {
            let s = daemon.ctl_json(&["status"]);
            s["messages_live"] == MESSAGES && s["queued_delayed"] == MESSAGES
        },
        || daemon.stderr(),
    );
    let m = daemon.ctl_json(&["memory"]);
    let total = m["total_live_bytes"].as_i64().unwrap();
    let message = live(&m, "message");
    assert!(
        message * 2 > total,
        "{when}: message holds {message} of {total} bytes: {m}"
    );
    for other in ["domain", "inbound", "listener", "spool", "io", "other"] {
        assert!(
            live(&m, other) < message,
            "{when}: {other} holds more than message: {m}"
        );
    }
}

#[test]
fn queued_messages_are_counted_as_class_message() {
    let dir = common::tempdir("impulse-attribution-");
    let closed = ClosedPort::new();
    let extra = "domains: { \"*\": (retry_interval: \"1h\", max_retry_interval: \"1h\") },";
    let cfg = config(dir.path(), Some(closed.addr), extra);
    let mut daemon = Daemon::start(dir.path(), &cfg);
    let report = impulse_source::run(SourceConfig {
        addr: daemon.smtp,
        messages: MESSAGES,
        size: 512,
        sessions: 8,
        per_session: 100,
        ..Default::default()
    });
    assert_eq!(report.sent_ok, MESSAGES, "{:?}", report.first_error);
    check(&daemon, "after reception");
    daemon.kill9();
    let daemon = Daemon::start(dir.path(), &cfg);
    check(&daemon, "after recovery");
}
