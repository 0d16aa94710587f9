//! Delivery outcomes end to end: what the domain containers do with the next hop's
//! answers, and what the message log says about it.
//!
//! - 5xx at RCPT → Bounce (code and enhanced code logged), the message leaves the queue.
//! - 4xx once → TransientFailure, then Delivery on the retry (attempts counted).
//! - one good and one bad recipient in a message → one Delivery and one Bounce.
//! - next hop refusing connections → TransientFailure with the connection failure, the
//!   message stays queued (and is delivered after a restart once the hop is reachable).
//! - no route and no name server answering → TransientFailure saying so, the message
//!   stays queued.
//! - recipients at two domains → two queue entries, both delivered.
//! - the log record fields.

mod common;

use std::time::Duration;

use common::delivery::{send, LOG_WAIT, SENDER};
use common::log::{code, enhanced, has, of_type, text};
use common::relay::messages_to;
use common::{config, poll, relay, relay_with, ClosedPort, Daemon};
use impulse_sink::{Rule, Sink, SinkConfig, Stage};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// helpers

/// The `queues` row of `domain`, if the daemon has a container for it.
fn queue_row(d: &Daemon, domain: &str) -> Option<Value> {
    let v = d.ctl_json(&["queues"]);
    v["domains"]
        .as_array()
        .expect("queues --json has a domains array")
        .iter()
        .find(|row| row["domain"] == domain)
        .cloned()
}

/// Wait until `domain`'s container holds nothing (active, delayed, in flight).
fn wait_queue_empty(d: &Daemon, domain: &str) -> Value {
    poll(
        Duration::from_secs(30),
        &format!("{domain} queue to empty"),
        || {
            let row = queue_row(d, domain)?;
            let n = |k: &str| row[k].as_u64().unwrap_or(u64::MAX);
            (n("active") == 0 && n("delayed") == 0 && n("in_flight") == 0).then_some(row)
        },
        || format!("queues: {:#}", d.ctl_json(&["queues"])),
    )
}

/// Every field INTERFACE.md promises, with the right JSON type.
fn assert_record_fields(r: &Value) {
    for key in [
        "type",
        "id",
        "timestamp",
        "sender",
        "recipient",
        "domain",
        "peer",
    ] {
        assert!(r[key].is_string(), "{key} must be a string in {r}");
    }
    for key in ["size", "attempts"] {
        assert!(r[key].is_u64(), "{key} must be a number in {r}");
    }
    assert!(!r["id"].as_str().unwrap().is_empty(), "empty id in {r}");
    let ts = r["timestamp"].as_str().unwrap();
    assert!(
        ts.len() >= 20
            && ts.as_bytes()[4] == b'-'
            && ts.as_bytes()[10] == b'T'
            && ts.ends_with('Z'),
        "timestamp {ts:?} is not RFC 3339 UTC"
    );
    let resp = &r["response"];
    assert!(resp.is_object(), "response must be an object in {r}");
    assert!(resp["code"].is_u64(), "response.code in {r}");
    assert!(
        resp.get("enhanced").is_some(),
        "response.enhanced must be present in {r}"
    );
    assert!(resp["text"].is_string(), "response.text in {r}");
}

// ---------------------------------------------------------------------------------------
// outcomes

#[test]
fn permanent_failure_at_rcpt_is_a_bounce_and_leaves_the_queue() {
    let (_tmp, sink, d) = relay_with(
        SinkConfig {
            rules: vec![Rule::always("bad", Stage::Rcpt, "550 5.1.1 no such user")],
            ..Default::default()
        },
        "",
    );

    send(d.smtp, &["bad@example.com"], "this will bounce\r\n");
    let records = d.wait_for_log(LOG_WAIT, "a Bounce record", |r| {
        has(r, "Bounce", "bad@example.com")
    });
    let bounces = of_type(&records, "Bounce", Some("bad@example.com"));
    assert_eq!(bounces.len(), 1, "exactly one Bounce: {bounces:#?}");
    let b = bounces[0];
    assert_record_fields(b);
    assert_eq!(code(b), 550, "{b}");
    assert_eq!(enhanced(b), "5.1.1", "{b}");
    assert!(text(b).contains("no such user"), "{b}");
    assert_eq!(b["attempts"], 1, "{b}");
    assert_eq!(b["peer"], sink.addr().to_string(), "{b}");
    assert_eq!(b["sender"], SENDER, "{b}");
    assert_eq!(b["domain"], "example.com", "{b}");
    let reception = of_type(&records, "Reception", Some("bad@example.com"));
    assert_eq!(reception.len(), 1);
    assert_eq!(
        reception[0]["id"], b["id"],
        "Bounce names the received message"
    );

    // Gone from the queue: nothing active, delayed or in flight, and counted as finished.
    let row = wait_queue_empty(&d, "example.com");
    assert!(row["finished"].as_u64() >= Some(1), "{row}");
    let records = d.log_records();
    assert!(
        !has(&records, "TransientFailure", "bad@example.com")
            && !has(&records, "Delivery", "bad@example.com"),
        "a bounced recipient is final: {records:#?}"
    );
    assert!(messages_to(&sink, "bad@example.com").is_empty());
}

#[test]
fn transient_failure_is_retried_and_then_delivered() {
    let extra = r#"domains: { "*": (retry_interval: "1s", max_retry_interval: "2s") },"#;
    let (_tmp, sink, d) = relay_with(
        SinkConfig {
            rules: vec![Rule::first(1, "later", Stage::Rcpt, "451 4.3.0 try later")],
            ..Default::default()
        },
        extra,
    );

    send(d.smtp, &["later@example.com"], "deferred once\r\n");
    let records = d.wait_for_log(LOG_WAIT, "a Delivery after the retry", |r| {
        has(r, "Delivery", "later@example.com")
    });
    let tf = of_type(&records, "TransientFailure", Some("later@example.com"));
    assert_eq!(tf.len(), 1, "exactly one TransientFailure: {records:#?}");
    assert_record_fields(tf[0]);
    assert_eq!(code(tf[0]), 451, "{}", tf[0]);
    assert_eq!(enhanced(tf[0]), "4.3.0", "{}", tf[0]);
    assert!(text(tf[0]).contains("try later"), "{}", tf[0]);
    assert_eq!(tf[0]["attempts"], 1, "{}", tf[0]);

    let dl = of_type(&records, "Delivery", Some("later@example.com"));
    assert_eq!(dl.len(), 1, "exactly one Delivery: {records:#?}");
    assert_record_fields(dl[0]);
    assert_eq!(dl[0]["attempts"], 2, "{}", dl[0]);
    assert_eq!(code(dl[0]), 250, "{}", dl[0]);
    assert_eq!(dl[0]["id"], tf[0]["id"], "same message");
    assert!(of_type(&records, "Bounce", None).is_empty());

    assert_eq!(messages_to(&sink, "later@example.com").len(), 1);
    wait_queue_empty(&d, "example.com");
}

#[test]
fn mixed_recipients_give_one_delivery_and_one_bounce() {
    let (_tmp, sink, d) = relay_with(
        SinkConfig {
            rules: vec![Rule::always("bad", Stage::Rcpt, "550 5.1.1 no such user")],
            ..Default::default()
        },
        "",
    );

    let mid = send(
        d.smtp,
        &["good@example.com", "bad@example.com"],
        "one of two\r\n",
    );
    let records = d.wait_for_log(LOG_WAIT, "a Delivery and a Bounce", |r| {
        has(r, "Delivery", "good@example.com") && has(r, "Bounce", "bad@example.com")
    });
    let dl = of_type(&records, "Delivery", Some("good@example.com"));
    let bo = of_type(&records, "Bounce", Some("bad@example.com"));
    assert_eq!(dl.len(), 1, "{records:#?}");
    assert_eq!(bo.len(), 1, "{records:#?}");
    // (The report of the bounce to SENDER is a message of its own: delivery_bounces.)
    let deliveries = of_type(&records, "Delivery", None);
    assert_eq!(
        deliveries
            .iter()
            .filter(|r| r["recipient"] != SENDER)
            .count(),
        1,
        "{records:#?}"
    );
    assert_eq!(dl[0]["id"], bo[0]["id"], "one message, two recipients");
    assert_eq!(code(bo[0]), 550);
    assert_eq!(enhanced(bo[0]), "5.1.1");
    assert_eq!(code(dl[0]), 250);
    assert!(!has(&records, "TransientFailure", "good@example.com"));
    assert!(!has(&records, "TransientFailure", "bad@example.com"));

    let got = messages_to(&sink, "good@example.com");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].recipients, vec!["good@example.com".to_string()]);
    assert_eq!(got[0].message_id.as_deref(), Some(mid.as_str()));
    wait_queue_empty(&d, "example.com");
}

#[test]
fn unreachable_next_hop_defers_and_keeps_the_message() {
    // Held (bound, never listening) for the whole test, so that no other socket can take
    // the port meanwhile and answer.
    let closed = ClosedPort::new();
    let dead = closed.addr;
    let tmp = tempfile::tempdir().unwrap();
    // A short retry interval: the deferral's retry time is kept across the restart below.
    let retry = r#"domains: { "*": (retry_interval: "2s", max_retry_interval: "2s") },"#;
    let mut d = Daemon::start(tmp.path(), &config(tmp.path(), Some(dead), retry));

    let mid = send(d.smtp, &["user@example.com"], "nobody home\r\n");
    let records = d.wait_for_log(LOG_WAIT, "a TransientFailure", |r| {
        has(r, "TransientFailure", "user@example.com")
    });
    let tf = of_type(&records, "TransientFailure", Some("user@example.com"));
    assert_record_fields(tf[0]);
    assert_eq!(code(tf[0]) / 100, 4, "{}", tf[0]);
    assert!(enhanced(tf[0]).starts_with("4."), "{}", tf[0]);
    let t = text(tf[0]).to_ascii_lowercase();
    assert!(
        t.contains("connect") && t.contains(&dead.port().to_string()),
        "the reason names the failed connection to {dead}: {}",
        tf[0]
    );
    assert!(of_type(&records, "Bounce", None).is_empty());
    assert!(of_type(&records, "Delivery", None).is_empty());

    // Still queued: delayed until its retry time.
    poll(
        Duration::from_secs(30),
        "the message in the delayed queue",
        || {
            let row = queue_row(&d, "example.com")?;
            (row["delayed"] == 1).then_some(())
        },
        || format!("queues: {:#}", d.ctl_json(&["queues"])),
    );

    // Not dropped: after a restart with a reachable next hop it is delivered.
    d.kill9();
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let d2 = Daemon::start(tmp.path(), &config(tmp.path(), Some(sink.addr()), retry));
    assert!(
        sink.wait_for(1, Duration::from_secs(60)),
        "the queued message was not delivered after the restart; stderr:\n{}",
        d2.stderr()
    );
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id.as_deref(), Some(mid.as_str()));
    assert_eq!(got[0].recipients, vec!["user@example.com".to_string()]);
    d2.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "user@example.com")
    });
}

#[test]
fn no_route_and_no_dns_defers_with_a_clear_reason_and_keeps_the_message() {
    // No route: the MX lookup goes to the name server the test config names, a closed
    // loopback port, and fails.
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &config(tmp.path(), None, ""));

    send(d.smtp, &["user@nowhere.example"], "no route\r\n");
    let records = d.wait_for_log(LOG_WAIT, "a TransientFailure", |r| {
        has(r, "TransientFailure", "user@nowhere.example")
    });
    let tf = of_type(&records, "TransientFailure", Some("user@nowhere.example"));
    assert_record_fields(tf[0]);
    assert_eq!(code(tf[0]) / 100, 4, "{}", tf[0]);
    assert_eq!(enhanced(tf[0]), "4.4.3", "{}", tf[0]);
    assert!(
        text(tf[0]).contains("DNS MX lookup for nowhere.example failed"),
        "the reason says the lookup failed: {}",
        tf[0]
    );
    assert_eq!(tf[0]["domain"], "nowhere.example");
    assert!(of_type(&records, "Bounce", None).is_empty());
    assert!(of_type(&records, "Delivery", None).is_empty());

    let row = poll(
        Duration::from_secs(30),
        "the message in the queue",
        || {
            let row = queue_row(&d, "nowhere.example")?;
            (row["delayed"] == 1).then_some(row)
        },
        || format!("queues: {:#}", d.ctl_json(&["queues"])),
    );
    assert_eq!(row["active"], 0, "{row}");
    assert_eq!(row["state"], "backoff", "{row}");
}

// ---------------------------------------------------------------------------------------
// routing

#[test]
fn recipients_at_two_domains_become_two_queue_entries_both_delivered() {
    let (_tmp, sink, d) = relay("");

    let mid = send(
        d.smtp,
        &["a@one.example", "b@two.example"],
        "two domains\r\n",
    );
    let records = d.wait_for_log(LOG_WAIT, "two Delivery records", |r| {
        has(r, "Delivery", "a@one.example") && has(r, "Delivery", "b@two.example")
    });
    let ra = of_type(&records, "Reception", Some("a@one.example"));
    let rb = of_type(&records, "Reception", Some("b@two.example"));
    assert_eq!((ra.len(), rb.len()), (1, 1), "{records:#?}");
    assert_ne!(ra[0]["id"], rb[0]["id"], "one spool record per domain");
    assert_eq!(ra[0]["domain"], "one.example");
    assert_eq!(rb[0]["domain"], "two.example");
    let da = of_type(&records, "Delivery", Some("a@one.example"));
    let db = of_type(&records, "Delivery", Some("b@two.example"));
    assert_eq!((da.len(), db.len()), (1, 1), "{records:#?}");
    assert_eq!(da[0]["id"], ra[0]["id"]);
    assert_eq!(db[0]["id"], rb[0]["id"]);
    assert_eq!(da[0]["domain"], "one.example");
    assert_eq!(db[0]["domain"], "two.example");

    assert!(sink.wait_for(2, Duration::from_secs(10)));
    let mut got: Vec<Vec<String>> = sink
        .messages()
        .into_iter()
        .inspect(|m| assert_eq!(m.message_id.as_deref(), Some(mid.as_str())))
        .map(|m| m.recipients)
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            vec!["a@one.example".to_string()],
            vec!["b@two.example".to_string()]
        ]
    );
    // Each domain has its own container.
    wait_queue_empty(&d, "one.example");
    wait_queue_empty(&d, "two.example");
}

// ---------------------------------------------------------------------------------------
// the log

#[test]
fn log_records_carry_every_field() {
    let (_tmp, sink, d) = relay("");

    send(d.smtp, &["fields@example.com"], "fields\r\n.dot line\r\n");
    let records = d.wait_for_log(LOG_WAIT, "Reception and Delivery", |r| {
        has(r, "Reception", "fields@example.com") && has(r, "Delivery", "fields@example.com")
    });
    assert!(sink.wait_for(1, Duration::from_secs(10)));
    let arrived = sink.messages().remove(0);

    let rec = of_type(&records, "Reception", Some("fields@example.com"))[0];
    let del = of_type(&records, "Delivery", Some("fields@example.com"))[0];
    for r in [rec, del] {
        assert_record_fields(r);
        assert_eq!(r["sender"], SENDER, "{r}");
        assert_eq!(r["domain"], "example.com", "{r}");
        assert_eq!(
            r["size"].as_u64(),
            Some(arrived.size as u64),
            "size is the spooled message's size (what the next hop got): {r}"
        );
    }
    assert_eq!(rec["id"], del["id"]);
    assert_eq!(rec["attempts"], 0, "{rec}");
    assert_eq!(code(rec), 250, "{rec}");
    let client_peer = rec["peer"].as_str().unwrap();
    assert!(
        client_peer.starts_with("127.0.0.1"),
        "Reception peer is the client: {rec}"
    );
    assert_eq!(del["attempts"], 1, "{del}");
    assert_eq!(code(del), 250, "{del}");
    assert!(del["response"]["text"].is_string());
    assert_eq!(
        del["peer"],
        sink.addr().to_string(),
        "Delivery peer is the next hop"
    );
}
