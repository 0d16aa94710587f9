//! REQUIRETLS (RFC 8689) end to end: offered and taken only inside TLS (`530 5.7.10` in
//! plaintext), kept with the message, and honoured on the way out: to a next hop that
//! offers STARTTLS and REQUIRETLS the message goes encrypted with the parameter; to one
//! that offers neither it is bounced with `5.7.30` instead of being sent in the clear.

mod common;

use common::delivery::LOG_WAIT;
use common::log::{enhanced, has, of_type};
use common::tls::{TestCert, TlsClient};
use common::{config, wait_for_rcpt, Daemon};
use impulse_sink::{self_signed_tls, Sink, SinkConfig};

fn start(sink: &Sink) -> (tempfile::TempDir, Daemon, TestCert) {
    let tmp = common::tempdir("requiretls");
    let cert = TestCert::new(tmp.path());
    let (c, k) = (cert.cert.display(), cert.key.display());
    let text = config(tmp.path(), Some(sink.addr()), "").replace(
        r#"listeners: [(address: "127.0.0.1:0")]"#,
        &format!(r#"listeners: [(address: "127.0.0.1:0", tls_cert: "{c}", tls_key: "{k}")]"#),
    );
    let d = Daemon::start(tmp.path(), &text);
    (tmp, d, cert)
}

fn submit_over_tls(d: &Daemon, cert: &TestCert, rcpt: &str) {
    let (mut c, tcp) = TlsClient::plain(d.smtp);
    assert_eq!(c.reply().0, 220);
    let (_, ehlo) = c.cmd("EHLO client.test");
    assert!(!ehlo.contains("REQUIRETLS"), "offered in plaintext: {ehlo}");
    let (code, text) = c.cmd("MAIL FROM:<s@client.test> REQUIRETLS");
    assert_eq!(
        (code, text.as_str()),
        (530, "530 5.7.10 REQUIRETLS needs a TLS session")
    );
    assert_eq!(c.cmd("STARTTLS").0, 220);
    let mut t = cert.wrap(tcp);
    let (_, ehlo) = t.cmd("EHLO client.test");
    assert!(ehlo.contains("250-REQUIRETLS"), "{ehlo}");
    assert_eq!(t.cmd("MAIL FROM:<s@client.test> REQUIRETLS").0, 250);
    assert_eq!(t.cmd(&format!("RCPT TO:<{rcpt}>")).0, 250);
    assert_eq!(t.cmd("DATA").0, 354);
    t.send(b"Subject: only over TLS\r\n\r\nsecret\r\n.\r\n");
    assert_eq!(t.reply().0, 250);
    let _ = t.cmd("QUIT");
}

#[test]
fn a_requiretls_message_goes_only_over_tls() {
    let sink = Sink::start(SinkConfig {
        tls: Some(self_signed_tls(&["localhost", "127.0.0.1"])),
        ..Default::default()
    })
    .unwrap();
    let (_tmp, d, cert) = start(&sink);
    submit_over_tls(&d, &cert, "tls@example.com");
    let m = wait_for_rcpt(&sink, &d, "tls@example.com");
    assert!(m.tls.is_some(), "delivered over TLS");
    assert!(m.requiretls, "MAIL carried REQUIRETLS");
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "tls@example.com")
    });
}

#[test]
fn a_next_hop_without_tls_gets_no_requiretls_mail() {
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let (_tmp, d, cert) = start(&sink);
    submit_over_tls(&d, &cert, "plain@example.com");
    let records = d.wait_for_log(LOG_WAIT, "the Bounce", |r| {
        has(r, "Bounce", "plain@example.com")
    });
    let b = of_type(&records, "Bounce", Some("plain@example.com"))[0].clone();
    assert_eq!(enhanced(&b), "5.7.30", "{b:#}");
    assert!(sink
        .messages()
        .iter()
        .all(|m| !m.recipients.iter().any(|r| r == "plain@example.com")));
}
