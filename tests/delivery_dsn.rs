//! DSN parameters (RFC 3461) end to end: NOTIFY, ORCPT, RET and ENVID given at RCPT and
//! MAIL are kept durably with the message (across a kill -9), shown by `impulsectl
//! message`, and used by the bounce report: NOTIFY=NEVER gets no report, ENVID and ORCPT
//! are quoted in it, RET=FULL returns the whole message. NOTIFY=SUCCESS: to a next hop
//! without DSN, a success report of ours (`Action: relayed`); to one that offers DSN,
//! the parameters go on with the message and the report is the next hop's to send.
//! NOTIFY=DELAY: one delay report once the message outlives `delay_warning`, never a
//! second, across a kill -9.

mod common;

use common::delivery::LOG_WAIT;
use common::log::has;
use common::relay::relay_with;
use common::{Daemon, RawClient};
use impulse_sink::{ReceivedMessage, Rule, SinkConfig, Stage};
use mail_parser::MimeHeaders;

const SENDER: &str = "alice@sender.test";

fn submit(d: &Daemon, mail: &str, rcpts: &[&str], body: &str) -> String {
    let mut c = RawClient::connect(d.smtp);
    let ehlo = c.ok("EHLO client.test", 250);
    assert!(ehlo.contains("250-DSN"), "{ehlo}");
    c.ok(&format!("MAIL FROM:<{SENDER}> {mail}"), 250);
    for r in rcpts {
        c.ok(&format!("RCPT TO:{r}"), 250);
    }
    c.ok("DATA", 354);
    let text = c.end_data(body.as_bytes());
    let _ = c.cmd("QUIT");
    text.rsplit(' ').next().unwrap().trim().to_string()
}

fn reports(sink: &impulse_sink::Sink) -> Vec<ReceivedMessage> {
    sink.messages()
        .into_iter()
        .filter(|m| m.sender.is_empty() && m.recipients == [SENDER])
        .collect()
}

fn sink() -> SinkConfig {
    SinkConfig {
        rules: vec![
            Rule::always("hard", Stage::Rcpt, "550 5.1.1 no such user"),
            Rule::always("later", Stage::Rcpt, "451 4.3.0 try later"),
        ],
        ..Default::default()
    }
}

#[test]
fn reports_follow_notify_orcpt_ret_and_envid() {
    let (_tmp, sink, d) = relay_with(
        sink(),
        r#"domains: { "*": (retry_interval: "1h", max_retry_interval: "1h") },"#,
    );
    submit(
        &d,
        "RET=FULL ENVID=QQ314159",
        &[
            "<hard1@example.com> NOTIFY=FAILURE ORCPT=rfc822;first@example.org",
            "<hard2@example.com> NOTIFY=NEVER",
        ],
        "Subject: full return\r\n\r\nthe whole body comes back\r\n",
    );
    d.wait_for_log(LOG_WAIT, "both bounces", |r| {
        has(r, "Bounce", "hard1@example.com") && has(r, "Bounce", "hard2@example.com")
    });
    common::wait_until(
        std::time::Duration::from_secs(30),
        "the report",
        || !reports(&sink).is_empty(),
        || format!("{:#?}", d.log_records()),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let all = reports(&sink);
    assert_eq!(all.len(), 1, "one report");
    let text = String::from_utf8_lossy(&all[0].data).to_string();
    assert!(text.contains("Original-Envelope-Id: QQ314159"), "{text}");
    assert!(
        text.contains("Original-Recipient: rfc822;first@example.org"),
        "{text}"
    );
    assert!(
        text.contains("Final-Recipient: rfc822; hard1@example.com"),
        "{text}"
    );
    assert!(
        !text.contains("hard2@example.com"),
        "NOTIFY=NEVER is not reported: {text}"
    );
    assert!(text.contains("Content-Type: message/rfc822"), "{text}");
    assert!(
        text.contains("the whole body comes back"),
        "RET=FULL: {text}"
    );

    // NOTIFY=NEVER alone: no report at all; without RET=FULL only the headers return.
    submit(
        &d,
        "",
        &["<hard3@example.com> NOTIFY=NEVER"],
        "Subject: quiet\r\n\r\nx\r\n",
    );
    submit(
        &d,
        "",
        &["<hard4@example.com>"],
        "Subject: headers only\r\n\r\nsecret body\r\n",
    );
    d.wait_for_log(LOG_WAIT, "the bounces", |r| {
        has(r, "Bounce", "hard3@example.com") && has(r, "Bounce", "hard4@example.com")
    });
    common::wait_until(
        std::time::Duration::from_secs(30),
        "the second report",
        || reports(&sink).len() >= 2,
        || format!("{:#?}", d.log_records()),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let all = reports(&sink);
    assert_eq!(all.len(), 2, "NOTIFY=NEVER sent no report");
    let text = String::from_utf8_lossy(&all[1].data).to_string();
    assert!(
        text.contains("hard4@example.com") && text.contains("text/rfc822-headers"),
        "{text}"
    );
    assert!(!text.contains("secret body"), "{text}");
}

#[test]
fn the_parameters_survive_a_kill_9_and_impulsectl_shows_them() {
    let (tmp, _sink, mut d) = relay_with(
        sink(),
        r#"domains: { "*": (retry_interval: "1h", max_retry_interval: "1h") },"#,
    );
    let id = submit(
        &d,
        "RET=HDRS ENVID=ENV+2B1",
        &["<later@example.com> NOTIFY=DELAY,FAILURE ORCPT=rfc822;orig@example.org"],
        "Subject: kept\r\n\r\nx\r\n",
    );
    d.wait_for_log(LOG_WAIT, "the deferral", |r| {
        has(r, "TransientFailure", "later@example.com")
    });
    let check = |d: &Daemon| {
        let m = d.ctl_json(&["message", &id]);
        assert_eq!(m["ret"], "HDRS", "{m:#}");
        assert_eq!(m["envid"], "ENV+2B1");
        assert_eq!(m["recipients"][0]["notify"], "FAILURE,DELAY");
        assert_eq!(m["recipients"][0]["orcpt"], "rfc822;orig@example.org");
    };
    check(&d);
    d.kill9();
    let text = std::fs::read_to_string(tmp.path().join("impulse.ron")).unwrap();
    let d = Daemon::start(tmp.path(), &text);
    common::wait_until(
        std::time::Duration::from_secs(20),
        "the message to be requeued",
        || d.ctl_json(&["status"])["queued_delayed"] == 1,
        || d.stderr(),
    );
    check(&d);
}

/// The delivery-status fields of a report (every block, in order).
fn status_fields(raw: &[u8]) -> Vec<String> {
    let msg = mail_parser::MessageParser::default().parse(raw).unwrap();
    let part = msg
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "message" && c.subtype() == Some("delivery-status"))
        })
        .expect("a message/delivery-status part");
    String::from_utf8_lossy(part.contents())
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn notify_success_to_a_next_hop_without_dsn_gets_a_relayed_report() {
    let (_tmp, sink, d) = relay_with(sink(), "");
    submit(
        &d,
        "RET=FULL ENVID=OK1",
        &[
            "<ok1@example.com> NOTIFY=SUCCESS ORCPT=rfc822;orig@example.org",
            "<ok2@example.com>",
        ],
        "Subject: success wanted\r\n\r\nthe body stays here\r\n",
    );
    common::wait_until(
        std::time::Duration::from_secs(30),
        "the success report",
        || !reports(&sink).is_empty(),
        || format!("{:#?}", d.log_records()),
    );
    // The next hop was not asked for DSNs (it does not offer them: it would refuse).
    let original = sink
        .messages()
        .into_iter()
        .find(|m| m.recipients.contains(&"ok1@example.com".to_string()))
        .unwrap();
    assert_eq!(original.mail_dsn, "");
    assert!(original.rcpt_dsn.iter().all(String::is_empty));

    let all = reports(&sink);
    assert_eq!(all.len(), 1, "one report");
    let raw = &all[0].data;
    let parsed = mail_parser::MessageParser::default().parse(raw).unwrap();
    assert_eq!(parsed.subject(), Some("Successful Mail Delivery Report"));
    let fields = status_fields(raw);
    for want in [
        "Original-Envelope-Id: OK1",
        "Original-Recipient: rfc822;orig@example.org",
        "Final-Recipient: rfc822; ok1@example.com",
        "Action: relayed",
        "Status: 2.0.0",
    ] {
        assert!(fields.iter().any(|f| f == want), "{want} in {fields:#?}");
    }
    assert!(
        !fields.iter().any(|f| f.contains("ok2@example.com")),
        "no NOTIFY=SUCCESS, no report: {fields:#?}"
    );
    let text = String::from_utf8_lossy(raw);
    assert!(text.contains("Subject: success wanted"), "{text}");
    assert!(
        !text.contains("the body stays here"),
        "RET=FULL returns the body with failures only: {text}"
    );

    // A failure and a success of one attempt: one report about both.
    submit(
        &d,
        "",
        &[
            "<hard5@example.com> NOTIFY=SUCCESS,FAILURE",
            "<ok3@example.com> NOTIFY=SUCCESS",
        ],
        "Subject: mixed\r\n\r\nx\r\n",
    );
    common::wait_until(
        std::time::Duration::from_secs(30),
        "the mixed report",
        || reports(&sink).len() >= 2,
        || format!("{:#?}", d.log_records()),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let all = reports(&sink);
    assert_eq!(all.len(), 2);
    let fields = status_fields(&all[1].data);
    assert!(fields.iter().any(|f| f == "Action: failed"), "{fields:#?}");
    assert!(fields.iter().any(|f| f == "Action: relayed"), "{fields:#?}");
    let parsed = mail_parser::MessageParser::default()
        .parse(&all[1].data)
        .unwrap();
    assert!(parsed.subject().unwrap().contains("Undelivered"));
}

#[test]
fn dsn_parameters_go_on_to_a_next_hop_that_offers_dsn() {
    let (_tmp, sink, d) = relay_with(
        SinkConfig {
            dsn: true,
            ..sink()
        },
        "",
    );
    submit(
        &d,
        "RET=HDRS ENVID=ON+2B1",
        &[
            "<ok1@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;orig@example.org",
            "<ok2@example.com>",
        ],
        "Subject: passed on\r\n\r\nx\r\n",
    );
    let got = common::relay::wait_for_rcpt(&sink, &d, "ok1@example.com");
    assert_eq!(got.mail_dsn, "RET=HDRS ENVID=ON+2B1");
    assert_eq!(
        got.rcpt_dsn,
        vec![
            "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;orig@example.org".to_string(),
            String::new()
        ]
    );
    d.wait_for_log(LOG_WAIT, "the deliveries", |r| {
        has(r, "Delivery", "ok1@example.com") && has(r, "Delivery", "ok2@example.com")
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        reports(&sink).is_empty(),
        "the next hop reports success now, not Impulse"
    );
}

#[test]
fn notify_delay_gets_one_delay_report_across_a_restart() {
    let (tmp, sink, mut d) = relay_with(
        sink(),
        r#"domains: { "*": (retry_interval: "1s", max_retry_interval: "1s", delay_warning: "2s") },"#,
    );
    submit(
        &d,
        "ENVID=D1",
        &[
            "<later1@example.com> NOTIFY=DELAY,FAILURE ORCPT=rfc822;l1@example.org",
            "<later2@example.com>",
        ],
        "Subject: slow\r\n\r\nx\r\n",
    );
    common::wait_until(
        std::time::Duration::from_secs(30),
        "the delay report",
        || !reports(&sink).is_empty(),
        || format!("{:#?}", d.log_records()),
    );
    let all = reports(&sink);
    let parsed = mail_parser::MessageParser::default()
        .parse(&all[0].data)
        .unwrap();
    assert_eq!(parsed.subject(), Some("Delayed Mail (still being retried)"));
    let fields = status_fields(&all[0].data);
    for want in [
        "Original-Envelope-Id: D1",
        "Original-Recipient: rfc822;l1@example.org",
        "Final-Recipient: rfc822; later1@example.com",
        "Action: delayed",
        "Status: 4.3.0",
    ] {
        assert!(fields.iter().any(|f| f == want), "{want} in {fields:#?}");
    }
    assert!(
        fields.iter().any(|f| f.starts_with("Will-Retry-Until: ")),
        "{fields:#?}"
    );
    assert!(
        !fields.iter().any(|f| f.contains("later2")),
        "no NOTIFY=DELAY, no delay report: {fields:#?}"
    );

    // More retries, then a kill -9 and more retries: still the one report.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(reports(&sink).len(), 1);
    let retries = |r: &[serde_json::Value]| {
        r.iter()
            .filter(|x| x["type"] == "TransientFailure" && x["recipient"] == "later1@example.com")
            .count()
    };
    let before = retries(&d.log_records());
    d.kill9();
    let text = std::fs::read_to_string(tmp.path().join("impulse.ron")).unwrap();
    let d = Daemon::start(tmp.path(), &text);
    d.wait_for_log(LOG_WAIT, "two retries after the restart", |r| {
        retries(r) >= before + 2
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(reports(&sink).len(), 1, "one delay report per message");
}
