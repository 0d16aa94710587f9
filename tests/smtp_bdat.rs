//! CHUNKING end to end: a message sent with BDAT in several chunks (pipelined, with
//! content that would need dot-stuffing in DATA) is stored, relayed to the sink intact,
//! and logged; a refused BDAT is consumed without executing what it carries.

mod common;

use common::log::has;
use common::relay::{crlf_only, relay};
use common::{wait_for_rcpt, RawClient};

#[test]
fn a_message_in_chunks_is_delivered_whole() {
    let (_tmp, sink, d) = relay("");
    let mut c = RawClient::connect(d.smtp);
    let ehlo = c.ok("EHLO client.test", 250);
    assert!(ehlo.contains("CHUNKING"), "{ehlo}");
    let parts: [&[u8]; 3] = [
        b"Subject: chunked\r\nMessage-ID: <bdat@client.test>\r\n\r\n",
        b".a line starting with a dot\r\n.\r\n",
        b"the end\r\n",
    ];
    let mut wire = b"MAIL FROM:<s@client.test>\r\nRCPT TO:<chunks@example.com>\r\n".to_vec();
    for (i, p) in parts.iter().enumerate() {
        let last = if i == parts.len() - 1 { " LAST" } else { "" };
        wire.extend_from_slice(format!("BDAT {}{last}\r\n", p.len()).as_bytes());
        wire.extend_from_slice(p);
    }
    c.send(&wire);
    assert_eq!(c.reply().0, 250, "MAIL");
    assert_eq!(c.reply().0, 250, "RCPT");
    for p in &parts[..2] {
        let (code, text) = c.reply();
        assert_eq!(
            (code, text),
            (250, format!("250 2.0.0 {} octets received", p.len()))
        );
    }
    let (code, text) = c.reply();
    assert_eq!(code, 250, "{text}");
    assert!(text.contains("queued as"), "{text}");

    let m = wait_for_rcpt(&sink, &d, "chunks@example.com");
    let data = String::from_utf8(m.data).unwrap();
    let body = data.split_once("Subject: chunked").unwrap().1;
    assert_eq!(
        body,
        "\r\nMessage-ID: <bdat@client.test>\r\n\r\n.a line starting with a dot\r\n.\r\nthe end\r\n"
    );
    assert!(crlf_only(data.as_bytes()));
    d.wait_for_log(common::delivery::LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "chunks@example.com")
    });

    // A refused BDAT (no transaction) eats its chunk: the MAIL inside is not run.
    let inside = b"MAIL FROM:<evil@x.test>\r\n";
    c.send(format!("BDAT {}\r\n", inside.len()).as_bytes());
    c.send(inside);
    c.send(b"NOOP\r\n");
    assert_eq!(c.reply().0, 503);
    assert_eq!(c.reply().0, 250, "NOOP after the consumed chunk");
    assert_eq!(c.cmd("QUIT").0, 221);
}
