//! CHUNKING (RFC 3030) on the way out: to a next hop offering it, a message goes as one
//! `BDAT size LAST` in place of DATA — pipelined with MAIL and RCPT when small, after the
//! RCPT replies when large — with the body undotted and byte for byte what the client
//! sent; refused recipients still bounce.

mod common;

use common::delivery::LOG_WAIT;
use common::log::has;
use common::relay::{relay_with, wait_for_rcpt};
use common::RawClient;
use impulse_sink::{Rule, SinkConfig, Stage};

fn chunking_sink() -> SinkConfig {
    SinkConfig {
        chunking: true,
        rules: vec![Rule::always(
            "refused",
            Stage::Rcpt,
            "550 5.1.1 no such user",
        )],
        ..Default::default()
    }
}

/// Submit one message (already dot-stuffed) over SMTP's DATA.
fn submit(d: &common::Daemon, rcpts: &[&str], stuffed: &[u8]) {
    let mut c = RawClient::connect(d.smtp);
    c.ok("EHLO client.test", 250);
    c.open_data("alice@sender.test", rcpts);
    c.end_data(stuffed);
    let _ = c.cmd("QUIT");
}

#[test]
fn messages_go_as_bdat_and_arrive_unchanged() {
    let (_tmp, sink, d) = relay_with(chunking_sink(), "");
    let body = "Subject: chunks\r\n\r\n.a line with a leading dot\r\n.\r\nlast line\r\n";
    let stuffed = "Subject: chunks\r\n\r\n..a line with a leading dot\r\n..\r\nlast line\r\n";
    submit(
        &d,
        &["bob@example.com", "refused@example.com"],
        stuffed.as_bytes(),
    );
    let m = wait_for_rcpt(&sink, &d, "bob@example.com");
    assert!(m.chunked, "a next hop with CHUNKING gets BDAT");
    assert_eq!(m.recipients, ["bob@example.com"]);
    let data = String::from_utf8_lossy(&m.data).to_string();
    assert!(data.starts_with("Received: "), "{data}");
    assert!(
        data.ends_with(body),
        "the body arrives as the client meant it: {data:?}"
    );
    d.wait_for_log(LOG_WAIT, "the refused recipient's bounce", |r| {
        has(r, "Bounce", "refused@example.com") && has(r, "Delivery", "bob@example.com")
    });

    // Larger than what goes in the pipelined group: BDAT waits for the RCPT replies.
    let line = format!("{}\r\n", "x".repeat(998));
    let big = format!("Subject: big\r\n\r\n{}", line.repeat(400));
    assert!(big.len() > 256 << 10, "over the pipelined BDAT limit");
    submit(&d, &["carol@example.com"], big.as_bytes());
    let m = wait_for_rcpt(&sink, &d, "carol@example.com");
    assert!(m.chunked);
    assert!(m.data.ends_with(big.as_bytes()), "{} bytes", m.data.len());

    // Every recipient refused: no message arrives, the bounce is logged.
    submit(&d, &["refused2@example.com"], b"Subject: none\r\n\r\nx\r\n");
    d.wait_for_log(LOG_WAIT, "the bounce", |r| {
        has(r, "Bounce", "refused2@example.com")
    });
    assert!(sink
        .messages()
        .iter()
        .all(|m| !m.recipients.iter().any(|r| r.starts_with("refused"))));
}
