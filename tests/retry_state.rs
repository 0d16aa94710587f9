//! A deferred message keeps its attempt count and retry time across a crash: after
//! kill -9 and a restart it waits for the retry time noted before the crash (no retry
//! storm of everything deferred at restart), and its Delivery record counts the attempt
//! made before the crash.

mod common;

use std::time::{Duration, SystemTime};

use common::delivery::{send, LOG_WAIT};
use common::log::{has, of_type};
use common::{config, ClosedPort, Daemon};
use impulse_sink::{Sink, SinkConfig};
use serde_json::Value;

const RETRY: &str = r#"domains: { "*": (retry_interval: "3s", max_retry_interval: "3s") },"#;

fn timestamp(r: &Value) -> SystemTime {
    let t = r["timestamp"].as_str().expect("timestamp is a string");
    humantime::parse_rfc3339(t).expect("RFC 3339 timestamp")
}

#[test]
fn a_deferred_message_keeps_its_retry_time_and_attempts_across_kill9() {
    let closed = ClosedPort::new();
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(tmp.path(), &config(tmp.path(), Some(closed.addr), RETRY));
    send(d.smtp, &["user@example.com"], "retry me\r\n");
    let records = d.wait_for_log(LOG_WAIT, "the TransientFailure", |r| {
        has(r, "TransientFailure", "user@example.com")
    });
    let failure = of_type(&records, "TransientFailure", Some("user@example.com"))[0].clone();
    assert_eq!(failure["attempts"], 1, "{failure}");
    d.kill9();

    let sink = Sink::start(SinkConfig::default()).unwrap();
    let d2 = Daemon::start(tmp.path(), &config(tmp.path(), Some(sink.addr()), RETRY));
    let records = d2.wait_for_log(LOG_WAIT, "the Delivery after the restart", |r| {
        has(r, "Delivery", "user@example.com")
    });
    let delivery = of_type(&records, "Delivery", Some("user@example.com"))[0].clone();
    assert_eq!(delivery["id"], failure["id"]);
    assert_eq!(
        delivery["attempts"], 2,
        "the attempt before the crash is counted: {delivery}"
    );
    // The retry time noted at the failure held across the restart. (A lower bound on
    // when the delivery happened, not a speed assertion: 3 s less the 10 % jitter; the
    // log's timestamps have millisecond precision.)
    let earliest = timestamp(&failure) + Duration::from_millis(2700 - 2);
    assert!(
        timestamp(&delivery) >= earliest,
        "delivered at {} before the retry time {} + 3 s - 10 %",
        delivery["timestamp"],
        failure["timestamp"]
    );
    assert_eq!(sink.count(), 1);
}
