//! `impulsectl bounce DOMAIN | --message ID | --sender S [--reason] [--quiet] [--dry-run]`:
//! queued messages fail for good with an AdminBounce record and, unless `--quiet`, a
//! report to the sender; `--dry-run` only lists them.

mod common;

use std::time::Duration;

use common::delivery::{send, LOG_WAIT, SENDER};
use common::log::{has, of_type, text};
use common::relay::relay_with;
use impulse_sink::{Rule, SinkConfig, Stage};

#[test]
fn admin_bounce_dry_run_quiet_and_with_a_report() {
    let sink = SinkConfig {
        rules: vec![Rule::always("stuck", Stage::Rcpt, "451 4.3.0 later")],
        ..Default::default()
    };
    let (_tmp, sink, d) = relay_with(
        sink,
        r#"domains: { "*": (retry_interval: "1h", max_retry_interval: "1h") },"#,
    );
    send(d.smtp, &["stuck1@example.com"], "one\r\n");
    send(d.smtp, &["stuck2@example.com"], "two\r\n");
    let records = d.wait_for_log(LOG_WAIT, "two deferrals", |r| {
        has(r, "TransientFailure", "stuck1@example.com")
            && has(r, "TransientFailure", "stuck2@example.com")
    });
    let id1 = of_type(&records, "TransientFailure", Some("stuck1@example.com"))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let out = d.ctl(&["bounce", "example.com", "--dry-run"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && said.contains("would bounce 2 messages"),
        "{said}"
    );
    assert!(said.contains(&id1), "{said}");
    assert!(!has(&d.log_records(), "AdminBounce", "stuck1@example.com"));

    let out = d.ctl(&["bounce", "--message", &id1, "--quiet"]);
    assert!(out.status.success(), "{out:?}");
    d.wait_for_log(LOG_WAIT, "the quiet AdminBounce", |r| {
        has(r, "AdminBounce", "stuck1@example.com")
    });

    let out = d.ctl(&["bounce", "example.com", "--reason", "cleanup by ops"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bounced 1 messages"),
        "{out:?}"
    );
    let records = d.wait_for_log(LOG_WAIT, "the AdminBounce and its report", |r| {
        has(r, "AdminBounce", "stuck2@example.com") && has(r, "Delivery", SENDER)
    });
    let ab = of_type(&records, "AdminBounce", Some("stuck2@example.com"))[0];
    assert!(text(ab).contains("cleanup by ops"), "{ab}");
    std::thread::sleep(Duration::from_millis(300));
    let reports: Vec<_> = sink
        .messages()
        .into_iter()
        .filter(|m| m.sender.is_empty())
        .collect();
    assert_eq!(reports.len(), 1, "one report: the quiet bounce sent none");
    let body = String::from_utf8_lossy(&reports[0].data);
    assert!(
        body.contains("stuck2@example.com") && !body.contains("stuck1@"),
        "{body}"
    );
    d.wait_spool_empty(LOG_WAIT);

    let out = d.ctl(&["bounce"]);
    assert_eq!(out.status.code(), Some(1), "a selector is needed: {out:?}");
}
