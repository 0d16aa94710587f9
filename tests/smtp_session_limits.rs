//! The inbound limits against the real daemon, each hit once with its reply checked, its
//! Rejection record in the log, and the daemon still serving the next client: sessions
//! per client address and in total (`421 4.7.0` before the greeting), messages per
//! connection, refused commands in a row, recipients per message, an over-long command
//! line, the timeout of each phase (after the greeting, MAIL, RCPT and the 354, and
//! between data bytes).

mod common;

use std::time::Duration;

use common::abuse::{assert_serves, expect, Client};
use common::delivery::LOG_WAIT;
use common::log::of_type;
use common::relay;

/// The Rejection records whose response code is `code`.
fn rejections(d: &common::Daemon, code: u64) -> Vec<serde_json::Value> {
    d.log_records()
        .into_iter()
        .filter(|r| r["type"] == "Rejection" && r["response"]["code"] == code)
        .collect()
}

fn wait_rejection(d: &common::Daemon, code: u64, text: &str) -> serde_json::Value {
    let records = d.wait_for_log(LOG_WAIT, &format!("a Rejection {code} {text}"), |r| {
        of_type(r, "Rejection", None).iter().any(|x| {
            x["response"]["code"] == code
                && x["response"]["text"].as_str().unwrap_or("").contains(text)
        })
    });
    of_type(&records, "Rejection", None)
        .into_iter()
        .find(|x| x["response"]["code"] == code)
        .unwrap()
        .clone()
}

#[test]
fn sessions_per_address_and_in_total() {
    let (_dir, sink, d) = relay("smtp: (max_connections_per_ip: 2, max_connections: 3),");
    let a = Client::connect(d.smtp);
    let b = Client::connect(d.smtp);
    let refused = |what: &str| {
        let mut s = std::net::TcpStream::connect(d.smtp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut all = String::new();
        std::io::Read::read_to_string(&mut s, &mut all).unwrap();
        assert!(
            all.starts_with("421 4.7.0 ") && all.contains(what),
            "{all:?}"
        );
        assert_eq!(all.lines().count(), 1, "one line, then the close: {all:?}");
    };
    refused("from your address");
    let rec = wait_rejection(&d, 421, "from your address");
    assert!(
        rec["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{rec:#}"
    );
    drop(a);
    // A slot frees when a session ends.
    common::wait_until(
        Duration::from_secs(10),
        "the first session to end",
        || d.ctl_json(&["status"])["connections_in"] == 1,
        || d.stderr(),
    );
    assert_serves(&d, &sink, "after-per-ip");
    // In total: two held from here, one from another address would still be over 3 - 1.
    let c2 = Client::connect(d.smtp);
    let _held = (b, c2);
    common::wait_until(
        Duration::from_secs(10),
        "two sessions",
        || d.ctl_json(&["status"])["connections_in"] == 2,
        || d.stderr(),
    );
    refused("from your address");
}

#[test]
fn sessions_in_total() {
    let (_dir, sink, d) = relay("smtp: (max_connections_per_ip: 10, max_connections: 2),");
    let held = (Client::connect(d.smtp), Client::connect(d.smtp));
    let mut s = std::net::TcpStream::connect(d.smtp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut all = String::new();
    std::io::Read::read_to_string(&mut s, &mut all).unwrap();
    assert!(
        all.starts_with("421 4.7.0 ") && all.contains("Too many connections, try again later"),
        "{all:?}"
    );
    wait_rejection(&d, 421, "Too many connections");
    drop(held);
    common::wait_until(
        Duration::from_secs(10),
        "the held sessions to end",
        || d.ctl_json(&["status"])["connections_in"] == 0,
        || d.stderr(),
    );
    assert_serves(&d, &sink, "after-total");
}

#[test]
fn messages_per_connection_errors_and_recipients() {
    let (_dir, sink, d) =
        relay("smtp: (max_messages_per_connection: 2, max_errors: 3, max_recipients: 2),");
    // Two messages, then the third MAIL closes the session.
    let mut c = Client::connect(d.smtp);
    expect(c.cmd("EHLO client.test"), 250, "EHLO");
    for i in 0..2 {
        expect(c.cmd("MAIL FROM:<s@client.test>"), 250, "MAIL");
        expect(c.cmd(&format!("RCPT TO:<m{i}@example.com>")), 250, "RCPT");
        expect(c.cmd("DATA"), 354, "DATA");
        expect(c.cmd("Subject: n\r\n\r\nx\r\n."), 250, "end of data");
    }
    let r = c.cmd("MAIL FROM:<s@client.test>");
    assert_eq!(r.code(), 421, "{r:?}");
    wait_rejection(&d, 421, "Too many messages");

    // Recipients past the limit: 452 4.5.3 for each, logged with the address.
    let mut c = Client::connect(d.smtp);
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<s@client.test>");
    expect(c.cmd("RCPT TO:<r1@example.com>"), 250, "RCPT 1");
    expect(c.cmd("RCPT TO:<r2@example.com>"), 250, "RCPT 2");
    let r = c.cmd("RCPT TO:<r3@example.com>");
    assert_eq!(r.code(), 452, "{r:?}");
    let rec = wait_rejection(&d, 452, "Too many recipients");
    assert_eq!(rec["recipient"], "r3@example.com");
    assert_eq!(rec["sender"], "s@client.test");
    // An over-long command line: one 500, and the session stays in step.
    let long = format!("NOOP {}", "x".repeat(2000));
    assert_eq!(c.cmd(&long).code(), 500);
    expect(c.cmd("NOOP"), 250, "in step after the long line");
    wait_rejection(&d, 500, "Line too long");

    // Three refused commands in a row: 421 and close.
    let mut c = Client::connect(d.smtp);
    for _ in 0..2 {
        assert_eq!(c.cmd("BOGUS").code(), 500);
    }
    assert_eq!(c.cmd("BOGUS").code(), 500);
    let r = c.reply();
    assert!(
        format!("{r:?}").contains("421 4.7.0 Too many errors"),
        "{r:?}"
    );
    assert!(c.drain_until_closed().is_empty());
    wait_rejection(&d, 421, "Too many errors");
    assert_serves(&d, &sink, "after-limits");
}

#[test]
fn a_data_phase_without_data_times_out() {
    let (_dir, sink, d) = relay(r#"smtp: (data_timeout: "1s", idle_timeout: "1m"),"#);
    let mut c = Client::connect(d.smtp);
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<s@client.test>");
    c.cmd("RCPT TO:<slow@example.com>");
    expect(c.cmd("DATA"), 354, "DATA");
    c.send(b"Subject: slow\r\n\r\nthen nothing");
    let replies = c.drain_until_closed();
    assert!(
        replies
            .iter()
            .any(|r| format!("{r:?}").contains("421 4.4.2 Timeout waiting for data")),
        "{replies:?}"
    );
    wait_rejection(&d, 421, "Timeout waiting for data");
    assert!(rejections(&d, 250).is_empty());
    assert_serves(&d, &sink, "after-data-timeout");
}

#[test]
fn each_phase_times_out_with_its_own_reply() {
    // Every phase short but the idle wait (which bounds them all): each stalled client is
    // told which wait ran out.
    let (_dir, sink, d) = relay(
        r#"smtp: (idle_timeout: "1m", greeting_timeout: "1s", mail_timeout: "1s",
                  rcpt_timeout: "1s", data_init_timeout: "1s", data_timeout: "1m"),"#,
    );
    type Setup = fn(&mut Client);
    let phases: [(&str, Setup); 4] = [
        ("Timeout waiting for EHLO", |_| {}),
        ("Timeout waiting for RCPT, closing", |c| {
            expect(c.cmd("EHLO client.test"), 250, "EHLO");
            expect(c.cmd("MAIL FROM:<s@client.test>"), 250, "MAIL");
        }),
        ("Timeout waiting for RCPT or DATA", |c| {
            expect(c.cmd("EHLO client.test"), 250, "EHLO");
            expect(c.cmd("MAIL FROM:<s@client.test>"), 250, "MAIL");
            expect(c.cmd("RCPT TO:<r@example.com>"), 250, "RCPT");
        }),
        ("Timeout waiting for data", |c| {
            expect(c.cmd("EHLO client.test"), 250, "EHLO");
            expect(c.cmd("MAIL FROM:<s@client.test>"), 250, "MAIL");
            expect(c.cmd("RCPT TO:<r@example.com>"), 250, "RCPT");
            expect(c.cmd("DATA"), 354, "DATA");
        }),
    ];
    for (text, setup) in phases {
        let mut c = Client::connect(d.smtp);
        setup(&mut c);
        let started = std::time::Instant::now();
        let replies = c.drain_until_closed();
        let waited = started.elapsed();
        assert!(
            replies
                .iter()
                .any(|r| format!("{r:?}").contains(&format!("421 4.4.2 {text}"))),
            "{text}: {replies:?}"
        );
        // The phase's 1 s, not the idle minute (with room for a loaded machine).
        assert!(waited < Duration::from_secs(30), "{text}: {waited:?}");
        wait_rejection(&d, 421, text);
    }
    assert!(rejections(&d, 250).is_empty());
    assert_serves(&d, &sink, "after-phase-timeouts");
}
