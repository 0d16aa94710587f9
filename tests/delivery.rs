//! Delivery end to end: what the domain containers and outbound connections do with the
//! next hop's answers, and what the message log says about it.
//!
//! - 5xx at RCPT → Bounce (code and enhanced code logged), the message leaves the queue.
//! - 4xx once → TransientFailure, then Delivery on the retry (attempts counted).
//! - one good and one bad recipient in a message → one Delivery and one Bounce.
//! - next hop refusing connections → TransientFailure with the connection failure, the
//!   message stays queued (and is delivered after a restart once the hop is reachable).
//! - no route → TransientFailure saying so, the message stays queued.
//! - `max_connections`, connection reuse, `max_messages_per_connection`.
//! - recipients at two domains → two queue entries, both delivered.
//! - PIPELINING used when offered (and not otherwise), dot-stuffed CRLF data on the wire.
//! - the log record fields.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::log::{code, enhanced, has, of_type, text};
use common::relay::{crlf_only, lettre_connect, messages_to};
use common::{config, poll, relay, relay_with, ClosedPort, Daemon};
use impulse_sink::{Rule, Sink, SinkConfig, Stage};
use impulse_source::SourceConfig;
use lettre::address::Envelope;
use serde_json::Value;

const SENDER: &str = "sender@impulse.test";
const LOG_WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// helpers

/// Send one message with `recipients` through lettre; returns its Message-ID.
fn send(addr: SocketAddr, recipients: &[&str], body: &str) -> String {
    let mid = format!(
        "<delivery-{}-{}@impulse.test>",
        std::process::id(),
        common::nanos()
    );
    let data = format!(
        "From: <{SENDER}>\r\nTo: {}\r\nSubject: delivery test\r\nMessage-ID: {mid}\r\n\r\n{body}",
        recipients.join(", ")
    );
    let envelope = Envelope::new(
        Some(SENDER.parse().unwrap()),
        recipients.iter().map(|r| r.parse().unwrap()).collect(),
    )
    .unwrap();
    let mut conn = lettre_connect(addr, "delivery-client.test", Duration::from_secs(30));
    let r = conn
        .send(&envelope, data.as_bytes())
        .expect("impulsed accepts");
    assert!(r.is_positive(), "{r:?}");
    let _ = conn.quit();
    mid
}

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

/// How many messages each of the sink's connections carried.
fn messages_per_connection(sink: &Sink) -> HashMap<usize, usize> {
    let mut per_conn: HashMap<usize, usize> = HashMap::new();
    for m in sink.messages() {
        *per_conn.entry(m.connection).or_default() += 1;
    }
    per_conn
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
    assert_eq!(of_type(&records, "Delivery", None).len(), 1, "{records:#?}");
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
    let mut d = Daemon::start(tmp.path(), &config(tmp.path(), Some(dead), ""));

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

    // Still queued: delayed (the default retry interval is long).
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
    let d2 = Daemon::start(tmp.path(), &config(tmp.path(), Some(sink.addr()), ""));
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
fn no_route_defers_with_a_clear_reason_and_keeps_the_message() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &config(tmp.path(), None, ""));

    send(d.smtp, &["user@nowhere.example"], "no route\r\n");
    let records = d.wait_for_log(LOG_WAIT, "a TransientFailure", |r| {
        has(r, "TransientFailure", "user@nowhere.example")
    });
    let tf = of_type(&records, "TransientFailure", Some("user@nowhere.example"));
    assert_record_fields(tf[0]);
    assert_eq!(code(tf[0]) / 100, 4, "{}", tf[0]);
    assert!(
        text(tf[0]).to_ascii_lowercase().contains("no route"),
        "the reason says there is no route: {}",
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
    assert_eq!(row["state"], "no-route", "{row}");
}

// ---------------------------------------------------------------------------------------
// connections

/// Send `n` generated messages over `sessions` client connections; all must be accepted.
fn load(d: &Daemon, n: usize, sessions: usize, domain: &str) -> Vec<String> {
    let report = impulse_source::run(SourceConfig {
        addr: d.smtp,
        messages: n,
        size: 512,
        sessions,
        per_session: n.div_ceil(sessions),
        recipient_domain: domain.to_string(),
        ..Default::default()
    });
    assert_eq!(report.sent_ok, n, "source: {report:?}");
    report.accepted_ids
}

/// Wait until the sink has `n` messages and the log `n` deliveries; check each Message-ID
/// arrived exactly once.
fn all_delivered(d: &Daemon, sink: &Sink, ids: &[String]) {
    let n = ids.len();
    assert!(
        sink.wait_for(n, Duration::from_secs(120)),
        "sink has {} of {n}",
        sink.count()
    );
    d.wait_for_log(Duration::from_secs(60), "all Delivery records", |r| {
        of_type(r, "Delivery", None).len() >= n
    });
    let got: Vec<String> = sink.message_ids().into_iter().flatten().collect();
    assert_eq!(got.len(), n, "exactly {n} messages at the sink");
    let got: HashSet<String> = got.into_iter().collect();
    let want: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(got, want, "each message exactly once");
}

#[test]
fn max_connections_is_respected() {
    let extra = r#"domains: { "*": (max_connections: 2) },"#;
    let (_tmp, sink, d) = relay(extra);

    let ids = load(&d, 200, 10, "example.com");
    all_delivered(&d, &sink, &ids);
    eprintln!(
        "connections_total {}, max concurrent {}",
        sink.connections_total(),
        sink.max_concurrent_connections()
    );
    assert!(
        sink.max_concurrent_connections() <= 2,
        "{} concurrent connections with max_connections 2",
        sink.max_concurrent_connections()
    );
}

#[test]
fn connections_are_reused() {
    let extra = r#"domains: { "*": (max_connections: 4) },"#;
    let (_tmp, sink, d) = relay(extra);

    let ids = load(&d, 100, 10, "example.com");
    all_delivered(&d, &sink, &ids);
    let total = sink.connections_total();
    eprintln!(
        "connections_total {total}, max concurrent {}",
        sink.max_concurrent_connections()
    );
    assert!(
        total <= 8,
        "{total} connections for 100 messages with max_connections 4: not reused"
    );
    // And the connections did carry several messages each.
    let per_conn = messages_per_connection(&sink);
    assert!(per_conn.values().any(|&k| k > 1), "{per_conn:?}");
}

#[test]
fn max_messages_per_connection_is_respected() {
    let extra = r#"domains: { "*": (max_messages_per_connection: 5) },"#;
    let (_tmp, sink, d) = relay(extra);

    let ids = load(&d, 50, 5, "example.com");
    all_delivered(&d, &sink, &ids);
    assert!(
        sink.connections_total() >= 10,
        "{} connections for 50 messages at 5 per connection",
        sink.connections_total()
    );
    let per_conn = messages_per_connection(&sink);
    assert!(
        per_conn.values().all(|&k| k <= 5),
        "a connection carried more than 5 messages: {per_conn:?}"
    );
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

// ---------------------------------------------------------------------------------------
// the wire: pipelining, dot-stuffing, CRLF

/// What a scripted next hop saw.
struct Seen {
    /// Lines received after EHLO and before the server answered anything.
    first_group: Vec<String>,
    /// Bytes that arrived after MAIL before MAIL was answered (non-pipelining server).
    early_bytes: usize,
    /// The raw DATA bytes up to and including the terminator.
    wire_data: Vec<u8>,
}

/// A one-connection SMTP server that offers PIPELINING or not and records the first
/// command group and the raw DATA.
fn scripted_hop(pipelining: bool) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        let read_line = |r: &mut BufReader<TcpStream>, line: &mut String| {
            line.clear();
            r.read_line(line).expect("read a command");
            line.clone()
        };
        w.write_all(b"220 hop.test ESMTP\r\n").unwrap();
        let ehlo = read_line(&mut r, &mut line);
        assert!(ehlo.to_ascii_uppercase().starts_with("EHLO"), "{ehlo}");
        if pipelining {
            w.write_all(b"250-hop.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n")
                .unwrap();
        } else {
            w.write_all(b"250-hop.test\r\n250 ENHANCEDSTATUSCODES\r\n")
                .unwrap();
        }
        let mut first_group = Vec::new();
        let mut early_bytes = 0;
        if pipelining {
            // A pipelining client sends MAIL, RCPT and DATA before any answer.
            for _ in 0..3 {
                first_group.push(read_line(&mut r, &mut line).trim_end().to_string());
            }
            w.write_all(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n")
                .unwrap();
        } else {
            first_group.push(read_line(&mut r, &mut line).trim_end().to_string());
            // A lockstep client waits for this answer: nothing else may arrive.
            early_bytes = r.buffer().len();
            r.get_ref()
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            if let Ok(buf) = r.fill_buf() {
                early_bytes += buf.len();
            }
            r.get_ref()
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            w.write_all(b"250 2.1.0 ok\r\n").unwrap();
            read_line(&mut r, &mut line);
            w.write_all(b"250 2.1.5 ok\r\n").unwrap();
            read_line(&mut r, &mut line);
            w.write_all(b"354 go ahead\r\n").unwrap();
        }
        let mut wire_data = Vec::new();
        loop {
            let mut l = Vec::new();
            if r.read_until(b'\n', &mut l).unwrap_or(0) == 0 {
                break;
            }
            wire_data.extend_from_slice(&l);
            if l == b".\r\n" {
                break;
            }
        }
        w.write_all(b"250 2.0.0 queued\r\n").unwrap();
        let _ = tx.send(Seen {
            first_group,
            early_bytes,
            wire_data,
        });
        // QUIT (whenever the client gets to it), then close.
        let mut rest = String::new();
        if r.read_line(&mut rest).is_ok() {
            let _ = w.write_all(b"221 2.0.0 bye\r\n");
        }
        let mut sink = Vec::new();
        let _ = r.read_to_end(&mut sink);
    });
    (addr, rx)
}

const DOTTY_BODY: &str = "first\r\n.\r\n.one dot\r\n..two dots\r\n\r\nlast\r\n";

fn check_wire(seen: &Seen) {
    let data = &seen.wire_data;
    assert!(data.ends_with(b"\r\n.\r\n"), "terminated by CRLF . CRLF");
    let body = String::from_utf8_lossy(data);
    for stuffed in ["\r\n..\r\n", "\r\n..one dot\r\n", "\r\n...two dots\r\n"] {
        assert!(
            body.contains(stuffed),
            "{stuffed:?} not dot-stuffed on the wire:\n{body}"
        );
    }
    // Only the terminator is a lone dot line.
    assert_eq!(body.matches("\r\n.\r\n").count(), 1, "{body}");
    assert!(crlf_only(data), "bare CR or LF on the wire:\n{body:?}");
}

#[test]
fn pipelines_when_offered_and_stuffs_dots() {
    let (hop, seen) = scripted_hop(true);
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &config(tmp.path(), Some(hop), ""));

    send(d.smtp, &["pipe@example.com"], DOTTY_BODY);
    let seen = seen
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
                "the next hop never got MAIL+RCPT+DATA in one group; stderr:\n{}",
                d.stderr()
            )
        });
    let upper: Vec<String> = seen
        .first_group
        .iter()
        .map(|l| l.to_ascii_uppercase())
        .collect();
    assert!(
        upper[0].starts_with("MAIL FROM:<SENDER@IMPULSE.TEST>"),
        "{upper:?}"
    );
    assert!(
        upper[1].starts_with("RCPT TO:<PIPE@EXAMPLE.COM>"),
        "{upper:?}"
    );
    assert_eq!(upper[2], "DATA", "{upper:?}");
    check_wire(&seen);
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "pipe@example.com")
    });
}

#[test]
fn does_not_pipeline_when_not_offered() {
    let (hop, seen) = scripted_hop(false);
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &config(tmp.path(), Some(hop), ""));

    send(d.smtp, &["lockstep@example.com"], DOTTY_BODY);
    let seen = seen
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the transaction did not complete; stderr:\n{}", d.stderr()));
    assert!(
        seen.first_group[0]
            .to_ascii_uppercase()
            .starts_with("MAIL FROM:"),
        "{:?}",
        seen.first_group
    );
    assert_eq!(
        seen.early_bytes, 0,
        "the client sent more before MAIL was answered, to a server without PIPELINING"
    );
    check_wire(&seen);
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "lockstep@example.com")
    });
}
