//! SMTPUTF8 (RFC 6531) end to end: UTF-8 addresses accepted with the SMTPUTF8 parameter
//! (refused without it), relayed to a next hop that offers SMTPUTF8 with the parameter
//! on its MAIL; to a next hop that does not, the message is bounced with `5.6.7` instead
//! of being sent in a form it cannot take, while ASCII mail through it still flows —
//! unless another MX host of the domain offers SMTPUTF8: the message goes there first.

mod common;

use common::delivery::LOG_WAIT;
use common::log::{enhanced, has, of_type};
use common::relay::relay_with;
use common::{wait_for_rcpt, RawClient};
use impulse_sink::SinkConfig;

const SENDER: &str = "jöran@bücher.example";
const RCPT: &str = "ünïcode@example.com";

fn submit(d: &common::Daemon, rcpt: &str, utf8: bool) {
    let mut c = RawClient::connect(d.smtp);
    let ehlo = c.ok("EHLO client.test", 250);
    assert!(ehlo.contains("SMTPUTF8"), "{ehlo}");
    let param = if utf8 { " SMTPUTF8" } else { "" };
    let from = if utf8 { SENDER } else { "plain@client.test" };
    c.ok(&format!("MAIL FROM:<{from}>{param}"), 250);
    c.ok(&format!("RCPT TO:<{rcpt}>"), 250);
    c.ok("DATA", 354);
    c.end_data("From: Jöran <jöran@bücher.example>\r\nSubject: Grüße\r\n\r\nhej då\r\n".as_bytes());
    let _ = c.cmd("QUIT");
}

#[test]
fn utf8_addresses_travel_with_smtputf8() {
    let (_tmp, sink, d) = relay_with(SinkConfig::default(), "");
    // Without the parameter a UTF-8 address is refused.
    let mut c = RawClient::connect(d.smtp);
    c.ok("EHLO client.test", 250);
    assert_eq!(c.cmd(&format!("MAIL FROM:<{SENDER}>")).0, 553);
    c.ok("MAIL FROM:<plain@client.test>", 250);
    let (code, text) = c.cmd(&format!("RCPT TO:<{RCPT}>"));
    assert_eq!(code, 553, "{text}");
    assert!(text.contains("5.6.7"), "{text}");
    drop(c);

    submit(&d, RCPT, true);
    let m = wait_for_rcpt(&sink, &d, RCPT);
    assert_eq!(m.sender, SENDER);
    assert!(m.smtputf8, "MAIL to the next hop carried SMTPUTF8");
    assert!(String::from_utf8(m.data)
        .unwrap()
        .contains("Subject: Grüße"));
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| has(r, "Delivery", RCPT));
}

#[test]
fn a_next_hop_without_smtputf8_gets_no_utf8_mail_and_the_sender_a_5_6_7() {
    let sink = SinkConfig {
        smtputf8: false,
        ..Default::default()
    };
    let (_tmp, sink, d) = relay_with(sink, "");
    submit(&d, RCPT, true);
    let records = d.wait_for_log(LOG_WAIT, "the Bounce", |r| has(r, "Bounce", RCPT));
    let b = of_type(&records, "Bounce", Some(RCPT))[0].clone();
    assert_eq!(enhanced(&b), "5.6.7", "{b:#}");
    // ASCII mail through the same next hop still goes.
    submit(&d, "ascii@example.com", false);
    let m = wait_for_rcpt(&sink, &d, "ascii@example.com");
    assert!(!m.smtputf8);
    assert!(sink
        .messages()
        .iter()
        .all(|m| !m.recipients.iter().any(|r| r == RCPT)));
}

#[test]
fn a_utf8_message_tries_the_other_mx_hosts_before_it_bounces() {
    use std::net::{Ipv4Addr, SocketAddr};
    let at = |last: u8, port: u16, smtputf8: bool| {
        impulse_sink::Sink::start(SinkConfig {
            addr: SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), port)),
            smtputf8,
            ..Default::default()
        })
        .expect("a sink on 127.0.0.x")
    };
    let plain1 = at(5, 0, false);
    let port = plain1.addr().port();
    let utf8 = at(6, port, true);
    let plain2 = at(7, port, false);
    let zone = impulse_dns::Zone::new()
        .mx("mixed.test", 10, "mx1.mixed.test")
        .mx("mixed.test", 20, "mx2.mixed.test")
        .a("mx1.mixed.test", Ipv4Addr::new(127, 0, 0, 5))
        .a("mx2.mixed.test", Ipv4Addr::new(127, 0, 0, 6))
        .mx("plain.test", 10, "mx1.plain.test")
        .mx("plain.test", 20, "mx2.plain.test")
        .a("mx1.plain.test", Ipv4Addr::new(127, 0, 0, 5))
        .a("mx2.plain.test", Ipv4Addr::new(127, 0, 0, 7));
    let dns = impulse_dns::DnsServer::start(zone).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let extra = format!(
        "dns: (servers: [\"{}\"]),\n    delivery: (port: {port}),",
        dns.addr()
    );
    let d = common::Daemon::start(tmp.path(), &common::config(tmp.path(), None, &extra));

    // mx1 lacks SMTPUTF8, mx2 has it: delivered through mx2, in the same attempt.
    submit(&d, "ünï@mixed.test", true);
    let m = wait_for_rcpt(&utf8, &d, "ünï@mixed.test");
    assert!(m.smtputf8);
    let records = d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "ünï@mixed.test")
    });
    let delivery = of_type(&records, "Delivery", Some("ünï@mixed.test"))[0].clone();
    assert_eq!(
        delivery["attempts"], 1,
        "the other MX is the same attempt: {delivery:#}"
    );
    // ASCII mail still goes to the preferred exchanger.
    submit(&d, "ascii@mixed.test", false);
    wait_for_rcpt(&plain1, &d, "ascii@mixed.test");

    // Neither exchanger has it: a 5.6.7 bounce once both were tried.
    submit(&d, "ünï@plain.test", true);
    let records = d.wait_for_log(LOG_WAIT, "the Bounce", |r| {
        has(r, "Bounce", "ünï@plain.test")
    });
    let b = of_type(&records, "Bounce", Some("ünï@plain.test"))[0].clone();
    assert_eq!(enhanced(&b), "5.6.7", "{b:#}");
    assert!(
        b["peer"].as_str().unwrap_or("").starts_with("127.0.0.7:"),
        "refused at the last exchanger: {b:#}"
    );
    let records = d.log_records();
    assert!(
        of_type(&records, "Bounce", Some("ünï@mixed.test")).is_empty(),
        "{records:#?}"
    );
    assert!(
        of_type(&records, "TransientFailure", None).is_empty(),
        "trying the other MX is not a deferral: {records:#?}"
    );
    for s in [&plain1, &plain2] {
        assert!(
            s.messages().iter().all(|m| !m.smtputf8),
            "no UTF-8 mail at a hop without SMTPUTF8"
        );
    }
    assert_eq!(utf8.messages().len(), 1);
}
