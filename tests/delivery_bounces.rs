//! Bounces end to end: a permanent failure or an expiry sends an RFC 3464 report from
//! the null sender to the original sender, through the same queues (here: the
//! sender's domain by MX lookup on a loopback DNS server, to a sink of its own).
//!
//! - 550 at RCPT → one report at the sender's MX, parsed with mail-parser, every field
//!   checked (and only the headers of the original returned).
//! - a message from the null sender that bounces → no report.
//! - an expiry (`message_expiration`) → Expiration record and a report saying so.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::delivery::LOG_WAIT;
use common::log::{has, of_type};
use common::{config, Daemon};
use impulse_dns::{DnsServer, Zone};
use impulse_sink::{ReceivedMessage, Rule, Sink, SinkConfig, Stage};
use mail_parser::{MessageParser, MimeHeaders};

const SENDER: &str = "alice@sender.test";

fn sink_at(last: u8, port: u16, rules: Vec<Rule>) -> Sink {
    Sink::start(SinkConfig {
        addr: SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), port)),
        rules,
        ..SinkConfig::default()
    })
    .expect("a sink on 127.0.0.x")
}

/// dest.test's MX is `dest`; sender.test's MX is `home` (same port).
fn setup(dest_rules: Vec<Rule>, extra: &str) -> (tempfile::TempDir, Sink, Sink, DnsServer, Daemon) {
    let dest = sink_at(10, 0, dest_rules);
    let port = dest.addr().port();
    let home = sink_at(11, port, vec![]);
    let zone = Zone::new()
        .mx("dest.test", 10, "mx.dest.test")
        .a("mx.dest.test", Ipv4Addr::new(127, 0, 0, 10))
        .mx("sender.test", 10, "mx.sender.test")
        .a("mx.sender.test", Ipv4Addr::new(127, 0, 0, 11));
    let dns = DnsServer::start(zone).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let extra = format!(
        "dns: (servers: [\"{}\"]),\n    delivery: (port: {port}, ehlo_name: \"mta.impulse.test\"),\n    {extra}",
        dns.addr()
    );
    let d = Daemon::start(tmp.path(), &config(tmp.path(), None, &extra));
    (tmp, dest, home, dns, d)
}

/// Submit one message over raw SMTP (the null sender needs `MAIL FROM:<>`).
fn submit(d: &Daemon, sender: &str, rcpt: &str, subject: &str) {
    use std::io::{BufRead, BufReader, Write};
    let s = std::net::TcpStream::connect(d.smtp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut reply = || loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return line;
        }
    };
    assert!(reply().starts_with("220"));
    for (cmd, want) in [
        ("EHLO client.test".to_string(), "250"),
        (format!("MAIL FROM:<{sender}>"), "250"),
        (format!("RCPT TO:<{rcpt}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        write!(w, "{cmd}\r\n").unwrap();
        let got = reply();
        assert!(got.starts_with(want), "{cmd}: {got}");
    }
    write!(
        w,
        "From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@sender.test>\r\n\r\nsecret body\r\n.\r\n"
    )
    .unwrap();
    assert!(reply().starts_with("250"));
    write!(w, "QUIT\r\n").unwrap();
}

fn report_fields(report: &ReceivedMessage) -> (String, Vec<Vec<(String, String)>>, String) {
    let msg = MessageParser::default()
        .parse(&report.data)
        .expect("the report parses");
    let ct = msg.content_type().expect("a content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let part = |t: &str, s: &str| {
        msg.parts
            .iter()
            .find(|p| {
                p.content_type()
                    .is_some_and(|c| c.ctype() == t && c.subtype() == Some(s))
            })
            .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
            .unwrap_or_else(|| panic!("no {t}/{s} part"))
    };
    let status = part("message", "delivery-status");
    let blocks = status
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            b.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
        .collect();
    let subject = msg.subject().unwrap_or("").to_string();
    let headers = part("text", "rfc822-headers");
    assert!(headers.contains("Subject:"), "{headers}");
    (subject, blocks, headers)
}

fn field<'a>(block: &'a [(String, String)], name: &str) -> &'a str {
    block
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {block:?}"))
}

#[test]
fn a_550_sends_one_report_to_the_sender() {
    let rules = vec![Rule::always(
        "nobody",
        Stage::Rcpt,
        "550 5.1.1 no such user",
    )];
    let (_tmp, dest, home, _dns, d) = setup(rules, "");
    submit(&d, SENDER, "nobody@dest.test", "bounce-me");

    assert!(
        home.wait_for(1, LOG_WAIT),
        "the report reaches the sender's MX"
    );
    let records = d.wait_for_log(LOG_WAIT, "the report's Delivery", |r| {
        has(r, "Bounce", "nobody@dest.test") && has(r, "Delivery", SENDER)
    });
    let reports = home.messages();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report.sender, "", "from the null sender");
    assert_eq!(report.recipients, vec![SENDER]);
    let (subject, blocks, headers) = report_fields(report);
    assert!(subject.contains("Undelivered"), "{subject}");
    assert_eq!(field(&blocks[0], "Reporting-MTA"), "dns; mta.impulse.test");
    assert!(!field(&blocks[0], "Arrival-Date").is_empty());
    assert_eq!(
        field(&blocks[1], "Final-Recipient"),
        "rfc822; nobody@dest.test"
    );
    assert_eq!(field(&blocks[1], "Action"), "failed");
    assert_eq!(field(&blocks[1], "Status"), "5.1.1");
    assert!(field(&blocks[1], "Remote-MTA").starts_with("dns; 127.0.0.10"));
    assert_eq!(
        field(&blocks[1], "Diagnostic-Code"),
        "smtp; 550 5.1.1 no such user"
    );
    assert!(
        headers.contains("Message-ID: <bounce-me@sender.test>"),
        "{headers}"
    );
    let text = String::from_utf8_lossy(&report.data);
    assert!(!text.contains("secret body"), "only the headers come back");

    // The report's own records: received from "bounce", delivered; never bounced.
    let reception = of_type(&records, "Reception", Some(SENDER));
    assert_eq!(reception.len(), 1, "{records:#?}");
    assert_eq!(reception[0]["sender"], "");
    assert_eq!(dest.count(), 0);
}

#[test]
fn a_message_from_the_null_sender_is_never_bounced() {
    let rules = vec![Rule::always(
        "nobody",
        Stage::Rcpt,
        "550 5.1.1 no such user",
    )];
    let (_tmp, _dest, home, _dns, d) = setup(rules, "");
    submit(&d, "", "nobody@dest.test", "null-sender");
    d.wait_for_log(LOG_WAIT, "the Bounce", |r| {
        has(r, "Bounce", "nobody@dest.test")
    });
    d.wait_spool_empty(LOG_WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(home.count(), 0, "no report for a message without a sender");
    let records = d.log_records();
    assert_eq!(
        of_type(&records, "Reception", None).len(),
        1,
        "{records:#?}"
    );
}

#[test]
fn an_expired_message_is_reported_as_expired() {
    let rules = vec![Rule::always("later", Stage::Rcpt, "451 4.2.2 mailbox full")];
    let extra = "domains: { \"dest.test\": (retry_interval: \"1s\", max_retry_interval: \"1s\", message_expiration: \"3s\") },";
    let (_tmp, _dest, home, _dns, d) = setup(rules, extra);
    submit(&d, SENDER, "later@dest.test", "expire-me");
    let records = d.wait_for_log(LOG_WAIT, "the Expiration", |r| {
        has(r, "Expiration", "later@dest.test")
    });
    assert!(has(&records, "TransientFailure", "later@dest.test"));
    assert!(home.wait_for(1, LOG_WAIT), "the report reaches the sender");
    let (subject, blocks, _) = report_fields(&home.messages()[0]);
    assert!(subject.contains("expired"), "{subject}");
    assert_eq!(
        field(&blocks[1], "Final-Recipient"),
        "rfc822; later@dest.test"
    );
    assert_eq!(field(&blocks[1], "Action"), "failed");
    assert_eq!(
        field(&blocks[1], "Status"),
        "4.2.2",
        "the last temporary status"
    );
    assert!(field(&blocks[1], "Diagnostic-Code").contains("mailbox full"));
}
