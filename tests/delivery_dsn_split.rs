//! One report per message, not per destination domain: a message whose recipients span
//! several domains is queued as one part per domain, but the failures of its first
//! delivery pass reach the sender as a single RFC 3464 report, as from Postfix. A part
//! that is only deferred does not hold the report back; the grouping survives a kill -9
//! (the parts of a reception are named in the spool); parts that expire together, or
//! that an operator bounces together, make one report too.

mod common;

use common::delivery::LOG_WAIT;
use common::log::has;
use common::relay::ClosedPort;
use common::{config, Daemon, RawClient};
use impulse_sink::{ReceivedMessage, Rule, Sink, SinkConfig, Stage};

const SENDER: &str = "alice@sender.test";

fn submit(d: &Daemon, rcpts: &[&str]) {
    let mut c = RawClient::connect(d.smtp);
    c.ok("EHLO client.test", 250);
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250);
    for r in rcpts {
        c.ok(&format!("RCPT TO:<{r}>"), 250);
    }
    c.ok("DATA", 354);
    c.end_data(b"Subject: to many domains\r\n\r\nx\r\n");
    let _ = c.cmd("QUIT");
}

fn reports(sink: &Sink) -> Vec<ReceivedMessage> {
    sink.messages()
        .into_iter()
        .filter(|m| m.sender.is_empty() && m.recipients == [SENDER])
        .collect()
}

fn sink() -> Sink {
    Sink::start(SinkConfig {
        rules: vec![
            Rule::always("hard", Stage::Rcpt, "550 5.1.1 no such user"),
            Rule::always("later", Stage::Rcpt, "451 4.3.0 try later"),
        ],
        ..Default::default()
    })
    .unwrap()
}

/// The Final-Recipient fields of a report, in order.
fn final_recipients(report: &ReceivedMessage) -> Vec<String> {
    String::from_utf8_lossy(&report.data)
        .lines()
        .filter_map(|l| l.strip_prefix("Final-Recipient: rfc822; "))
        .map(str::to_string)
        .collect()
}

/// Wait for the first report, then longer than a report lingers for its siblings' (5 s)
/// for a second one that should not come.
fn the_one_report(sink: &Sink, d: &Daemon) -> ReceivedMessage {
    common::wait_until(
        std::time::Duration::from_secs(30),
        "the report",
        || !reports(sink).is_empty(),
        || format!("{:#?}\n{}", d.log_records(), d.stderr()),
    );
    std::thread::sleep(std::time::Duration::from_secs(6));
    let all = reports(sink);
    assert_eq!(all.len(), 1, "one report for the message: {all:#?}");
    all.into_iter().next().unwrap()
}

/// A daemon routing everything to a fresh scripted sink, with `domains: { "*": D }`.
/// Bind all three (`let (_dir, sink, d) = …`); the daemon drops first.
fn to_sink(domains: &str) -> (tempfile::TempDir, Sink, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink();
    let extra = format!(r#"domains: {{ "*": {domains} }},"#);
    let d = Daemon::start(dir.path(), &config(dir.path(), Some(sink.addr()), &extra));
    (dir, sink, d)
}

#[test]
fn failures_in_several_domains_make_one_report() {
    let (_dir, sink, d) = to_sink(r#"(retry_interval: "1h", max_retry_interval: "1h")"#);
    submit(
        &d,
        &[
            "hard1@one.test",
            "ok@two.test",
            "later@three.test",
            "hard2@four.test",
            "hard3@four.test",
        ],
    );
    d.wait_for_log(LOG_WAIT, "the bounces", |r| {
        ["hard1@one.test", "hard2@four.test", "hard3@four.test"]
            .iter()
            .all(|a| has(r, "Bounce", a))
            && has(r, "Delivery", "ok@two.test")
            && has(r, "TransientFailure", "later@three.test")
    });
    let report = the_one_report(&sink, &d);
    let mut got = final_recipients(&report);
    got.sort();
    assert_eq!(
        got,
        ["hard1@one.test", "hard2@four.test", "hard3@four.test"],
        "every failed recipient, nothing delivered or deferred"
    );
    let text = String::from_utf8_lossy(&report.data);
    assert!(text.contains("Subject: to many domains"), "{text}");
    assert_eq!(
        text.matches("Reporting-MTA:").count(),
        1,
        "one per-message block: {text}"
    );
}

#[test]
fn the_parts_still_report_together_after_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let closed = ClosedPort::new();
    let retry = r#"domains: { "*": (retry_interval: "1s", max_retry_interval: "1s") },"#;
    let mut d = Daemon::start(dir.path(), &config(dir.path(), Some(closed.addr), retry));
    submit(&d, &["hard1@one.test", "hard2@two.test"]);
    d.wait_for_log(LOG_WAIT, "both parts deferred", |r| {
        has(r, "TransientFailure", "hard1@one.test") && has(r, "TransientFailure", "hard2@two.test")
    });
    d.kill9();
    // Both parts are due again when the daemon comes back, now with a next hop.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let sink = sink();
    let d = Daemon::start(dir.path(), &config(dir.path(), Some(sink.addr()), retry));
    d.wait_for_log(LOG_WAIT, "the bounces", |r| {
        has(r, "Bounce", "hard1@one.test") && has(r, "Bounce", "hard2@two.test")
    });
    let report = the_one_report(&sink, &d);
    assert_eq!(
        final_recipients(&report),
        ["hard1@one.test", "hard2@two.test"]
    );
}

#[test]
fn a_null_sender_message_to_several_domains_is_never_reported() {
    let (_dir, sink, d) = to_sink("()");
    let mut c = RawClient::connect(d.smtp);
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<>", 250);
    c.ok("RCPT TO:<hard1@one.test>", 250);
    c.ok("RCPT TO:<hard2@two.test>", 250);
    c.ok("DATA", 354);
    c.end_data(b"Subject: a report\r\n\r\nx\r\n");
    d.wait_for_log(LOG_WAIT, "the bounces", |r| {
        has(r, "Bounce", "hard1@one.test") && has(r, "Bounce", "hard2@two.test")
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(sink.messages().is_empty(), "{:#?}", sink.messages());
}

/// A daemon sending everything to a next hop that refuses connections, but reports (to
/// the sender's domain) and mail for `to_sink` to the sink; `domains` is its config.
/// (Fields drop in order: the daemon first.)
struct DeadHop {
    d: Daemon,
    sink: Sink,
    _closed: ClosedPort,
    _dir: tempfile::TempDir,
}

fn dead_hop(to_sink: &[&str], domains: &str) -> DeadHop {
    let dir = tempfile::tempdir().unwrap();
    let (closed, sink) = (ClosedPort::new(), sink());
    let routes: String = ["sender.test"]
        .iter()
        .chain(to_sink)
        .map(|d| format!(r#""{d}": "{}", "#, sink.addr()))
        .collect();
    let extra = format!(
        r#"routes: {{ "*": "{}", {routes} }}, domains: {{ "*": {domains} }},"#,
        closed.addr
    );
    let d = Daemon::start(dir.path(), &config(dir.path(), None, &extra));
    DeadHop {
        d,
        sink,
        _closed: closed,
        _dir: dir,
    }
}

#[test]
fn parts_that_expire_together_make_one_report() {
    let h = dead_hop(
        &[],
        r#"(retry_interval: "1s", max_retry_interval: "10s", message_expiration: "3s")"#,
    );
    submit(&h.d, &["a@one.test", "b@two.test", "c@two.test"]);
    h.d.wait_for_log(LOG_WAIT, "the expiries", |r| {
        ["a@one.test", "b@two.test", "c@two.test"]
            .iter()
            .all(|a| has(r, "Expiration", a))
    });
    let report = the_one_report(&h.sink, &h.d);
    assert_eq!(
        final_recipients(&report),
        ["a@one.test", "b@two.test", "c@two.test"]
    );
    let text = String::from_utf8_lossy(&report.data);
    assert_eq!(text.matches("Action: failed").count(), 3, "{text}");
}

#[test]
fn an_operator_bounce_of_a_whole_message_makes_one_report() {
    let h = dead_hop(&[], r#"(retry_interval: "1h", max_retry_interval: "1h")"#);
    submit(&h.d, &["a@one.test", "b@two.test"]);
    h.d.wait_for_log(LOG_WAIT, "both parts deferred", |r| {
        has(r, "TransientFailure", "a@one.test") && has(r, "TransientFailure", "b@two.test")
    });
    let out =
        h.d.ctl(&["bounce", "--sender", SENDER, "--reason", "cleaning up"]);
    assert!(out.status.success(), "{out:?}");
    h.d.wait_for_log(LOG_WAIT, "the operator's bounces", |r| {
        has(r, "AdminBounce", "a@one.test") && has(r, "AdminBounce", "b@two.test")
    });
    let report = the_one_report(&h.sink, &h.d);
    assert_eq!(final_recipients(&report), ["a@one.test", "b@two.test"]);
}

#[test]
fn a_part_deferred_by_a_dead_next_hop_does_not_hold_the_report() {
    let h = dead_hop(
        &["two.test"],
        r#"(retry_interval: "1h", max_retry_interval: "1h")"#,
    );
    submit(&h.d, &["a@one.test", "hard@two.test"]);
    // Well before the first pass's one-minute bound: the dead hop's part settled at once.
    let report = the_one_report(&h.sink, &h.d);
    assert_eq!(final_recipients(&report), ["hard@two.test"]);
    assert!(has(&h.d.log_records(), "TransientFailure", "a@one.test"));
}

#[test]
fn parts_delayed_together_send_one_delay_report() {
    let (_dir, sink, d) =
        to_sink(r#"(retry_interval: "1s", max_retry_interval: "10s", delay_warning: "3s")"#);
    let mut c = RawClient::connect(d.smtp);
    c.ok("EHLO client.test", 250);
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250);
    c.ok("RCPT TO:<later1@one.test> NOTIFY=DELAY,FAILURE", 250);
    c.ok("RCPT TO:<later2@two.test> NOTIFY=DELAY,FAILURE", 250);
    c.ok("DATA", 354);
    c.end_data(b"Subject: slow everywhere\r\n\r\nx\r\n");
    let report = the_one_report(&sink, &d);
    let text = String::from_utf8_lossy(&report.data);
    assert!(text.contains("Action: delayed"), "{text}");
    assert_eq!(
        final_recipients(&report),
        ["later1@one.test", "later2@two.test"]
    );
}
