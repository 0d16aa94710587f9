//! SMTPUTF8 (RFC 6531) end to end: UTF-8 addresses accepted with the SMTPUTF8 parameter
//! (refused without it), relayed to a next hop that offers SMTPUTF8 with the parameter
//! on its MAIL; to a next hop that does not, the message is bounced with `5.6.7` instead
//! of being sent in a form it cannot take, while ASCII mail through it still flows.

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
