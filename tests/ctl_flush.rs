//! `impulsectl flush [DOMAIN]`: delayed messages become due now, so a message deferred
//! for an hour is delivered at once; other domains' queues are left alone when a domain
//! is named; an unknown domain is refused (exit 1).

mod common;

use std::time::Duration;

use common::delivery::{send, LOG_WAIT};
use common::log::has;
use common::relay::relay_with;
use impulse_sink::{Rule, SinkConfig, Stage};

#[test]
fn flush_makes_a_deferred_message_due_now() {
    let sink = SinkConfig {
        rules: vec![
            Rule::first(1, "first", Stage::Rcpt, "451 4.3.0 later"),
            Rule::first(1, "other", Stage::Rcpt, "451 4.3.0 later"),
        ],
        ..Default::default()
    };
    let (_tmp, sink, d) = relay_with(
        sink,
        r#"domains: { "*": (retry_interval: "1h", max_retry_interval: "1h") },"#,
    );
    send(d.smtp, &["first@example.com"], "deferred for an hour\r\n");
    send(d.smtp, &["other@other.test"], "deferred too\r\n");
    d.wait_for_log(LOG_WAIT, "both deferrals", |r| {
        has(r, "TransientFailure", "first@example.com")
            && has(r, "TransientFailure", "other@other.test")
    });

    let out = d.ctl(&["flush", "example.com"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 delayed messages due now, in 1 queues"),
        "{text}"
    );
    d.wait_for_log(LOG_WAIT, "the Delivery after the flush", |r| {
        has(r, "Delivery", "first@example.com")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !has(&d.log_records(), "Delivery", "other@other.test"),
        "the other domain was not flushed"
    );
    let q = d.ctl_json(&["queues"]);
    let other = q["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["domain"] == "other.test")
        .unwrap()
        .clone();
    assert_eq!(other["delayed"], 1, "{q:#}");

    // Everything.
    let out = d.ctl(&["flush"]);
    assert!(out.status.success(), "{out:?}");
    d.wait_for_log(LOG_WAIT, "the other Delivery", |r| {
        has(r, "Delivery", "other@other.test")
    });
    assert_eq!(sink.count(), 2);

    let out = d.ctl(&["flush", "nowhere.test"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
